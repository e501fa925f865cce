"""Rendering (Jinja2, HTML escaped, plain text not), the message a notification becomes, the webhook signature, and
delivery: attempts recorded, backoff, give-up with the reason, a refused URL not retried, and the crash window (an
interrupted attempt is made again after the lease, with the same Message-ID)."""
import email
import json
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from services.notifications import mail, webhooks
from services.notifications.application import Notifications
from services.notifications.delivery import Deliverer
from services.notifications.domain import Notification, WebhookDelivery
from shared.outbound import refusal
from tests.kit.apps import IN_MEMORY, counting_reads

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_templates_render_both_parts_and_escape_only_html():
    subject, text, html = mail.render("nautilus.order_created", {"order_name": "<b>Gear</b>", "customer_name": "Ada",
                                                                 "order_uri": "https://x.test/order/1/"})
    assert subject == "New order <b>Gear</b>"
    assert "a new order was created: <b>Gear</b> (customer Ada)" in text
    assert "&lt;b&gt;Gear&lt;/b&gt;" in html and "<b>Gear</b>" not in html
    assert 'href="https://x.test/order/1/"' in html


def test_a_template_without_its_own_text_lists_its_context():
    subject, text, html = mail.render("vision.alert", {"camera": "north", "anomaly": 0.9})
    assert subject == "vision.alert"
    assert "camera: north" in text and "anomaly: 0.9" in text and "<td>north</td>" in html


def test_the_message_has_sender_name_reply_to_and_a_derived_message_id():
    fields = {"template": "nautilus.order_owner", "context": {"order_name": "O-1", "owner_name": "Olive"},
              "emails": ["a@example.com", "b@example.com"]}
    message = mail.build_message("0f0f", fields, "mail@stratum.test", "Acme Printing", "desk@acme.test")
    parsed = email.message_from_bytes(bytes(message))
    assert parsed["From"] == "Acme Printing <mail@stratum.test>"
    assert parsed["Reply-To"] == "desk@acme.test"
    assert parsed["To"] == "a@example.com, b@example.com"
    assert parsed["Message-ID"] == "<0f0f@stratum.test>"
    kinds = [part.get_content_type() for part in parsed.walk()]
    assert "text/plain" in kinds and "text/html" in kinds


def test_smtp_urls():
    plain = mail.SmtpTransport("smtp://127.0.0.1:2525")
    assert (plain.host, plain.port, plain.starttls, plain.username) == ("127.0.0.1", 2525, False, None)
    secure = mail.SmtpTransport("smtp://u%40x:p%3Aw@mail.example.com:587?starttls=1")
    assert (secure.port, secure.starttls, secure.username, secure.password) == (587, True, "u@x", "p:w")
    assert mail.SmtpTransport("smtps://mail.example.com").port == 465
    with pytest.raises(ValueError):
        mail.SmtpTransport("http://mail.example.com")


def test_the_outbox_keeps_one_file_per_message(tmp_path):
    outbox = mail.OutboxTransport(str(tmp_path / "outbox"))
    message = mail.build_message("abc", {"template": "users.welcome_mailer", "context": {}, "emails": ["a@x.test"]},
                                 "n@stratum.test")
    outbox.send(message)
    outbox.send(message)
    assert [p.name for p in (tmp_path / "outbox").iterdir()] == ["abc_at_stratum.test.eml"]


def test_webhook_signature_round_trip():
    secret = b"s3cret"
    body = json.dumps({"event": "OrderCreated"}).encode()
    header = webhooks.signature(secret, "1700000000", body)
    assert header.startswith("sha256=") and webhooks.verify(secret, "1700000000", body, header)
    assert not webhooks.verify(secret, "1700000001", body, header)
    assert not webhooks.verify(b"other", "1700000000", body, header)


def test_the_ssrf_guard_refuses_internal_addresses_unless_allowed():
    assert refusal("ftp://example.com/") == "not an http or https URL"
    assert "internal address" in refusal("http://127.0.0.1:9/hook")
    assert "internal address" in refusal("http://169.254.169.254/latest/meta-data")
    assert refusal("http://127.0.0.1:9/hook", "1") is None
    assert refusal("http://127.0.0.1:9/hook", "127.0.0.1/32") is None
    assert "internal address" in refusal("http://10.1.2.3/hook", "127.0.0.1/32")


# -- delivery -------------------------------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def app():
    application = Notifications(env=IN_MEMORY)
    yield application
    application.close()


def queue(app, kind=Notification, **fields):
    fields = fields or {"template": "users.welcome_mailer", "context": {}, "emails": ["a@example.com"]}
    delivery = kind.create(uuid4(), fields, BUREAU, None)
    app.save(delivery)
    return delivery.id


def deliverer(app, clock, email=None, webhook=None, **options):
    return Deliverer(app, email or (lambda n, f: {}), webhook or (lambda d, f: {}), now=clock,
                     **{"max_attempts": 3, "backoff_seconds": 10, "lease_seconds": 60, **options})


def test_a_delivered_mail_is_recorded_and_not_sent_again(app):
    sent = []
    clock = Clock()
    worker = deliverer(app, clock, email=lambda n, f: sent.append(n.id) or {"message_id": f"<{n.id}@x>"})
    delivery_id = queue(app)
    assert worker.deliver_due(None) == 1
    assert worker.deliver_due(None) == 0
    record = app.repository.get(delivery_id)
    assert sent == [delivery_id]
    assert record.fields["status"] == "sent" and record.fields["message_id"] == f"<{delivery_id}@x>"
    assert [a["outcome"] for a in record.fields["attempts"]] == ["sent"]


def test_failures_back_off_then_give_up_with_the_reason(app):
    clock = Clock()

    def unreachable(notification, facts):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    worker = deliverer(app, clock, email=unreachable)
    delivery_id = queue(app)
    assert worker.deliver_due(None) == 1
    record = app.repository.get(delivery_id)
    assert record.fields["status"] == "retrying" and "Connection refused" in record.fields["error"]
    clock.now += timedelta(seconds=9)
    assert worker.deliver_due(None) == 0  # backoff: 10 s after the first failure
    clock.now += timedelta(seconds=1)
    assert worker.deliver_due(None) == 1
    clock.now += timedelta(seconds=19)
    assert worker.deliver_due(None) == 0  # then 20 s
    clock.now += timedelta(seconds=1)
    assert worker.deliver_due(None) == 1
    record = app.repository.get(delivery_id)
    assert record.fields["status"] == "failed"
    assert record.fields["error"] == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert [a["outcome"] for a in record.fields["attempts"]] == ["failed"] * 3
    clock.now += timedelta(days=1)
    assert worker.deliver_due(None) == 0


def test_a_refused_webhook_is_not_retried(app):
    clock = Clock()

    def refuse(delivery, facts):
        raise webhooks.Refused("refused: 127.0.0.1 resolves to the internal address 127.0.0.1")

    worker = deliverer(app, clock, webhook=refuse)
    delivery_id = queue(app, WebhookDelivery, url="http://127.0.0.1/", event="OrderCreated", payload={})
    worker.deliver_due(None)
    record = app.repository.get(delivery_id)
    assert record.fields["status"] == "failed" and record.fields["error"].startswith("refused")
    assert [a["outcome"] for a in record.fields["attempts"]] == ["refused"]


def test_an_attempt_interrupted_by_a_crash_is_made_again_after_the_lease(app):
    """The crash window: AttemptStarted recorded, then the process died (the mail may or may not have left)."""
    clock = Clock()
    delivery_id = queue(app)
    interrupted = app.repository.get(delivery_id)
    interrupted.start_attempt(clock.now)
    app.save(interrupted)  # … and the process died here

    sent = []
    restarted = deliverer(app, clock, email=lambda n, f: sent.append(mail.message_id(n.id, "n@x.test")) or {})
    assert restarted.deliver_due(None) == 0  # within the lease: it may still be at work somewhere
    clock.now += timedelta(seconds=60)
    assert restarted.deliver_due(None) == 1
    record = app.repository.get(delivery_id)
    assert sent == [f"<{delivery_id}@x.test>"]  # the same Message-ID a first send had
    assert [a["outcome"] for a in record.fields["attempts"]] == ["interrupted", "sent"]


def test_a_restarted_deliverer_reads_only_what_is_new_and_still_sends_what_was_pending(app):
    """Issue 12 goal 4: the deliverer checkpoints how far it read its log and what still waits, so a restart reads
    what was queued since, not the whole log, and the delivery that failed before the restart is still retried."""
    clock = Clock()
    done = deliverer(app, clock)
    for _ in range(5):
        queue(app)
    assert done.deliver_due(None) == 5

    def unreachable(notification, facts):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    pending = queue(app)
    seen = app.recorder.max_notification_id()  # where the next pass reads to
    assert deliverer(app, clock, email=unreachable).deliver_due(None) == 1  # failed: retried after 10 s
    later = queue(app)

    sent = []
    read = counting_reads(app)
    restarted = deliverer(app, clock, email=lambda n, f: sent.append(n.id) or {})
    clock.now += timedelta(seconds=10)
    assert restarted.deliver_due(None) == 2
    assert read and min(read) > seen
    assert sorted(sent, key=str) == sorted([pending, later], key=str)


def test_two_workers_never_send_one_notification_twice(app):
    clock = Clock()
    sent = []
    first = deliverer(app, clock, email=lambda n, f: sent.append("first") or {})
    delivery_id = queue(app)
    second = deliverer(app, clock, email=lambda n, f: sent.append("second") or {})
    stale = app.repository.get(delivery_id)  # what the second worker loaded before the first one started
    assert first.deliver_due(None) == 1
    stale.start_attempt(clock.now)
    from eventsourcing.persistence import IntegrityError
    with pytest.raises(IntegrityError):
        app.save(stale)  # the store refuses the second start
    assert second.deliver_due(None) == 0
    assert sent == ["first"]


def test_a_generic_record_from_an_older_release_is_not_mailed(app):
    old = Notification._create(Notification.Created, id=uuid4(), bureau=BUREAU, actor=None,
                               fields={"template": "users.welcome_mailer", "context": {}, "emails": ["a@x.test"]})
    app.save(old)
    sent = []
    assert deliverer(app, Clock(), email=lambda n, f: sent.append(n) or {}).deliver_due(None) == 0
    assert sent == []

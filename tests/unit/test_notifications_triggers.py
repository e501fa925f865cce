"""The E2 trigger matrix: which event makes which notification for whom (bureau-settings bitmasks, custom e-mails,
mentioned users, model owners), and the subscriber's idempotency (a batch recorded twice, or out of order, makes
each notification once)."""
import uuid

import pytest

from services.notifications.application import Notifications
from services.notifications.domain import Notification
from services.notifications.triggers import intents_for, recipients_by_bitmask
from tests.kit.apps import IN_MEMORY

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
OWNER = "/users/22222222-2222-2222-2222-222222222222/"
CREATOR = "/users/33333333-3333-3333-3333-333333333333/"
MENTIONED = "/users/44444444-4444-4444-4444-444444444444/"


class FakeFacts:
    def __init__(self, settings=None, orders=None, resources=None):
        self._settings = settings or {}
        self.orders = orders or {}
        self.users = {OWNER: {"email": "owner@example.com", "name": "Olive Owner", "bureau": BUREAU},
                      CREATOR: {"email": "creator@example.com", "name": "Carl Creator", "bureau": BUREAU},
                      MENTIONED: {"email": "mentioned@example.com", "name": "Mia", "bureau": BUREAU}}
        self.resources = resources or {}

    def order(self, path, event):
        if event["kind"] == "created":
            return dict(event["fields"], bureau=event.get("bureau"))
        return dict(self.orders.get(path, {}), **event["fields"])

    def get(self, service, resource, uuid):
        return self.resources.get((resource, uuid), {})

    def user(self, path):
        return self.users.get(path, {})

    def email_of(self, path):
        return self.user(path).get("email")

    def bureau(self, path):
        return {"name": "Acme Bureau"}

    def settings(self, bureau):
        return self._settings

    def location(self, path):
        return self.resources.get(("location", path.strip("/").rsplit("/", 1)[-1]), {})

    def location_settings(self, location):
        return self.resources.get(("location-settings", location), {})

    def referencing(self, service, resource, field, target):
        return self.resources.get(("referencing", resource, field, target), [])

    def absolute(self, path):
        return "https://stratum.test" + path

    def absolute_fields(self, fields):
        return dict(fields)


def event(names, fields, kind="updated", resource="order", application="orders", position=7, uuid_=None, **extra):
    return {"application": application, "resource": resource, "uuid": uuid_ or str(uuid.uuid4()), "kind": kind,
            "names": names, "fields": fields, "position": position, "user": CREATOR,
            "timestamp": "2026-01-01T00:00:00+00:00", **({"bureau": BUREAU} if kind == "created" else {}), **extra}


ORDER = {"name": "Gearbox", "order_owner": OWNER, "user": CREATOR, "bureau": BUREAU, "customer_email": None}


@pytest.mark.parametrize("bits, expected", [
    (0, []),
    (1, ["owner@example.com"]),
    (2, ["creator@example.com"]),
    (4, ["ops@example.com", "boss@example.com"]),
    (5, ["owner@example.com", "ops@example.com", "boss@example.com"]),
    (7, ["owner@example.com", "creator@example.com", "ops@example.com", "boss@example.com"]),
])
def test_the_bitmask_says_who_receives(bits, expected):
    settings = {"notification_custom_emails": ["ops@example.com", "boss@example.com", "OPS@example.com"]}
    assert recipients_by_bitmask(bits, ORDER, settings, FakeFacts()) == expected


def test_the_customer_bit_prefers_the_customer_email():
    order = dict(ORDER, customer_email="buyer@example.com")
    assert recipients_by_bitmask(2, order, {}, FakeFacts()) == ["buyer@example.com"]


def test_order_created_goes_by_its_bitmask():
    facts = FakeFacts(settings={"notification_order_created": 5, "notification_custom_emails": ["ops@example.com"]})
    [intent] = intents_for(event(["OrderCreated"], ORDER, kind="created"), facts)
    assert intent.kind == "email" and intent.bureau == BUREAU
    assert intent.fields["template"] == "nautilus.order_created"
    assert intent.fields["emails"] == ["owner@example.com", "ops@example.com"]
    assert intent.fields["context"]["order_name"] == "Gearbox"
    assert intent.fields["context"]["owner_name"] == "Olive Owner"
    assert intent.fields["trigger"] == "orders:7:OrderCreated"


def test_no_notification_when_the_bits_are_off():
    assert intents_for(event(["OrderCreated"], ORDER, kind="created"), FakeFacts(settings={})) == []
    off = FakeFacts(settings={"notification_order_created": 0, "notification_line_items_confirmed": 0})
    assert intents_for(event(["OrderCreated"], ORDER, kind="created"), off) == []
    assert intents_for(event(["OrderUpdated", "OrderStatusChanged", "OrderConfirmed"], {"status": "confirmed"}),
                       off) == []


def test_all_line_items_confirmed_is_the_order_confirmed():
    path_uuid = str(uuid.uuid4())
    facts = FakeFacts(settings={"notification_line_items_confirmed": 3},
                      orders={f"/order/{path_uuid}/": dict(ORDER, line_items=["/line-item/1/", "/line-item/2/"])})
    [intent] = intents_for(event(["OrderUpdated", "OrderStatusChanged", "OrderConfirmed"], {"status": "confirmed"},
                                 uuid_=path_uuid), facts)
    assert intent.fields["template"] == "nautilus.order_line_items_confirmed"
    assert intent.fields["emails"] == ["owner@example.com", "creator@example.com"]
    assert intent.fields["context"]["line_items"] == 2


def test_a_status_change_to_printing_is_the_start_of_printing():
    order = str(uuid.uuid4())
    facts = FakeFacts(settings={"notification_order_started_printing": 1, "notification_order_shipped": 1},
                      orders={f"/order/{order}/": ORDER})
    [intent] = intents_for(event(["OrderUpdated", "OrderStatusChanged"], {"status": "printing"}, uuid_=order), facts)
    assert intent.fields["template"] == "nautilus.order_start_printing"
    assert intents_for(event(["OrderUpdated", "OrderStatusChanged"], {"status": "post-processing"}, uuid_=order),
                       facts) == []


def test_owner_change_tells_the_new_owner():
    facts = FakeFacts(settings={"notification_order_owner": 1})
    [intent] = intents_for(event(["OrderUpdated", "OrderOwnerChanged"], {"order_owner": OWNER}), facts)
    assert intent.fields["template"] == "nautilus.order_owner"
    assert intent.fields["emails"] == ["owner@example.com"]


def test_mentioned_users_are_told_once_per_comment():
    comment = str(uuid.uuid4())
    fields = {"text": "@Mia look", "mentioned_users": [{"uri": "https://x.test" + MENTIONED}], "user": CREATOR,
              "related_table_name": "order", "related_uuid": str(uuid.uuid4())}
    [first] = intents_for(event(["CommentCreated"], fields, kind="created", resource="comment", uuid_=comment),
                          FakeFacts())
    assert first.fields["template"] == "nautilus.user_mentioned_in_comment"
    assert first.fields["emails"] == ["mentioned@example.com"]
    assert first.fields["context"]["author_name"] == "Carl Creator"
    # an edit listing the same user again makes the same id: the subscriber does not make it twice
    facts = FakeFacts(resources={("comment", comment): fields})
    [again] = intents_for(event(["CommentUpdated"], {"mentioned_users": [MENTIONED]}, resource="comment",
                                uuid_=comment, position=9), facts)
    assert again.id == first.id


def test_a_failed_model_tells_its_owner():
    model = str(uuid.uuid4())
    facts = FakeFacts(resources={("model", model): {"name": "bracket.stl", "user_uri": OWNER}})
    [intent] = intents_for(event(["ModelUpdated", "ModelProcessingFailed"],
                                 {"status": "error", "analyses": {"error": "not a mesh"}}, application="files",
                                 resource="model", uuid_=model), facts)
    assert intent.fields["template"] == "nautilus.model_upload_failed"
    assert intent.fields["emails"] == ["owner@example.com"] and intent.bureau == BUREAU
    assert intent.fields["context"]["reason"] == "not a mesh"
    # whichever step found it: a quarantine by the scan fails the upload as well; a processed model is no news
    [quarantined] = intents_for(event(["ModelUpdated", "ModelVirusScanned"],
                                      {"virus_scan": "quarantined", "status": "error"}, application="files",
                                      resource="model", uuid_=model, position=8), facts)
    assert quarantined.fields["template"] == "nautilus.model_upload_failed"
    assert intents_for(event(["ModelUpdated", "ModelAnalyzed"], {"status": "processed"}, application="files",
                             resource="model", uuid_=model), facts) == []


def test_a_new_user_is_welcomed_and_a_locked_one_told():
    [welcome] = intents_for(event(["UserCreated"], {"email": "new@example.com", "username": "new@example.com"},
                                  kind="created", resource="users", application="identity"), FakeFacts())
    assert welcome.fields["template"] == "users.welcome_mailer" and welcome.fields["emails"] == ["new@example.com"]
    [locked] = intents_for(event(["UserUpdated"], {"blocked_until": "2026-01-01T00:15:00+00:00", "failed_logins": 0},
                                 resource="users", application="identity", uuid_=OWNER.split("/")[2]), FakeFacts())
    assert locked.fields["template"] == "users.blocked_for_login" and locked.fields["emails"] == ["owner@example.com"]
    assert intents_for(event(["UserUpdated"], {"failed_logins": 2}, resource="users", application="identity"),
                       FakeFacts()) == []


def test_a_password_reset_request_mails_the_user_without_the_token():
    user_uuid = OWNER.split("/")[2]
    [reset] = intents_for(event(["UserUpdated", "UserPasswordResetRequested"], {}, resource="users",
                                application="identity", uuid_=user_uuid), FakeFacts())
    assert reset.fields["template"] == "users.password_reset" and reset.fields["emails"] == ["owner@example.com"]
    assert reset.fields["user"] == OWNER and "token" not in repr(reset.fields)
    # an archived user gets no mail
    facts = FakeFacts()
    facts.users[OWNER]["archived"] = True
    assert intents_for(event(["UserUpdated", "UserPasswordResetRequested"], {}, resource="users",
                             application="identity", uuid_=user_uuid), facts) == []


def test_an_order_with_a_callback_url_gets_a_webhook_per_event():
    facts = FakeFacts(settings={})
    order = dict(ORDER, callback_url="https://hooks.example.com/stratum")
    [hook] = intents_for(event(["OrderCreated"], order, kind="created"), facts)
    assert hook.kind == "webhook" and hook.fields["url"] == "https://hooks.example.com/stratum"
    assert hook.fields["event"] == "OrderCreated" and hook.fields["payload"]["event"] == "OrderCreated"
    quiet = intents_for(event(["OrderUpdated", "OrderLineItemsChanged"], {"line_items": []}),
                        FakeFacts(orders={}))
    assert quiet == []


# -- the subscriber's write: idempotent and gap-free ---------------------------------------------------------------

@pytest.fixture
def notifications():
    app = Notifications(env=IN_MEMORY)
    yield app
    app.close()


def _stored(app):
    return [n for n in app.recorder.select_notifications(start=1, limit=1000)
            if n.topic == Notification.Created.TOPIC]


def test_a_batch_recorded_twice_or_late_makes_each_notification_once(notifications):
    facts = FakeFacts(settings={"notification_order_created": 1})
    batch = [event(["OrderCreated"], ORDER, kind="created", position=p) for p in (3, 4)]
    assert notifications.record_batch("orders", batch, 4, facts) == 4
    assert len(_stored(notifications)) == 2
    assert notifications.record_batch("orders", batch, 4, facts) == 4  # a repeated doorbell
    assert notifications.record_batch("orders", batch[:1], 3, facts) == 4  # a late, older batch
    assert len(_stored(notifications)) == 2
    assert notifications.feed_position("orders") == 4
    assert notifications.feed_position("files") == 0


def test_a_failing_lookup_records_nothing_and_keeps_the_position(notifications):
    class Broken(FakeFacts):
        def settings(self, bureau):
            raise RuntimeError("identity is down")

    with pytest.raises(RuntimeError):
        notifications.record_batch("orders", [event(["OrderCreated"], ORDER, kind="created", position=1)], 1,
                                   Broken())
    assert notifications.feed_position("orders") == 0 and _stored(notifications) == []


def test_a_feed_is_begun_once_where_the_migrate_step_found_its_end(notifications):
    assert notifications.begin_at("orders", 0) == 0  # a new deployment: from the start
    assert notifications.begin_at("orders", 40) == 0  # a later migrate does not skip what is not read yet
    assert notifications.begin_at("files", 12) == 12  # a deployment with history: from its end
    facts = FakeFacts(settings={"notification_order_created": 1})
    old = event(["OrderCreated"], ORDER, kind="created", position=12)
    assert notifications.record_batch("files", [dict(old, application="files")], 12, facts) == 12
    assert _stored(notifications) == []


def test_an_unreadable_event_is_passed_over_but_an_outage_stops_the_batch(notifications):
    from shared.errors import ServiceUnavailable

    class Odd(FakeFacts):
        def settings(self, bureau):
            return {"notification_order_created": "all of them"}  # no rule expects this shape

    batch = [event(["OrderCreated"], ORDER, kind="created", position=1)]
    assert notifications.record_batch("orders", batch, 1, Odd()) == 1  # logged, no notification, the feed moves on

    class Down(FakeFacts):
        def settings(self, bureau):
            raise ServiceUnavailable("The identity service is not running.")

    with pytest.raises(ServiceUnavailable):
        notifications.record_batch("orders", [event(["OrderCreated"], ORDER, kind="created", position=2)], 2, Down())
    assert notifications.feed_position("orders") == 1


# -- announcements (E3) and /contact-us/ (E5) ----------------------------------------------------------------------

class FakePeers:
    def __init__(self, config=None):
        self.config = config or {"STRATUM_ADMIN_EMAIL": "admin@stratum.test"}
        self.calls = []

    def call(self, service, method, resource, uuid_, ctx):
        self.calls.append((service, method, resource))
        return {"users": {"name": "Mona Manager", "email": "mona@example.com"},
                "bureau": {"name": "Acme"}}[resource]


def test_an_announcement_is_posted_under_its_authors_name(notifications):
    from services.notifications.domain import Announcement
    from tests.kit.apps import BUREAU, command_ctx

    ctx = Announcement.gather(FakePeers(), "create", None, {}, command_ctx(user=OWNER))
    assert ctx["author_name"] == "Mona Manager"
    made = notifications.create("bureau-notification", {"text": "**Closed** on Friday", "bureau": BUREAU}, ctx)
    events = [e for e in notifications.feed(1, 100)["events"] if e["resource"] == "bureau-notification"]
    assert [e["names"] for e in events] == [["BureauAnnouncementCreated", "BureauAnnouncementPosted"]]
    assert events[0]["fields"]["author_name"] == "Mona Manager" and events[0]["bureau"] == BUREAU
    assert made["uri"].startswith("/bureau-notification/")


def test_a_support_request_queues_one_mail_to_support_replying_to_the_user(notifications):
    from services.notifications.domain import SupportRequest
    from tests.kit.apps import command_ctx

    for config, support in (({"STRATUM_ADMIN_EMAIL": "admin@stratum.test"}, "admin@stratum.test"),
                            ({"STRATUM_ADMIN_EMAIL": "admin@stratum.test", "STRATUM_SUPPORT_EMAIL": "help@x.test"},
                             "help@x.test")):
        ctx = SupportRequest.gather(FakePeers(config), "create", None, {}, command_ctx(user=OWNER))
        notifications.create("contact-us", {"support_request_payload": "The printer is on fire"}, ctx)
        mails = [e for e in notifications.feed(1, 100)["events"] if e["resource"] == "notifications"]
        mail = mails[-1]["fields"]
        assert mail["template"] == "customer.support_request" and mail["emails"] == [support]
        assert mail["reply_to"] == "mona@example.com" and mail["status"] == "queued"
        assert mail["context"]["support_request_payload"] == "The printer is on fire"
        assert mail["context"]["requesting_bureau"] == "Acme"
    names = [e["names"] for e in notifications.feed(1, 100)["events"] if e["resource"] == "contact-us"]
    assert names == [["SupportRequestCreated", "SupportRequestSubmitted"]] * 2


# -- location contacts, production and materials triggers --------------------------------------------------------

LOCATION_ID = "55555555-5555-5555-5555-555555555555"
LOCATION = f"/location/{LOCATION_ID}/"


def test_a_locations_contact_is_told_when_its_switch_is_on():
    on = FakeFacts(settings={"notification_order_created": 0}, resources={
        ("location", LOCATION_ID): {"contact": MENTIONED, "bureau": BUREAU},
        ("location-settings", LOCATION): {"notification_order_created": True}})
    [created] = intents_for(event(["OrderCreated"], dict(ORDER, location=LOCATION), kind="created"), on)
    assert created.fields["emails"] == ["mentioned@example.com"]
    off = FakeFacts(settings={"notification_order_created": 1}, resources={
        ("location", LOCATION_ID): {"contact": MENTIONED, "bureau": BUREAU},
        ("location-settings", LOCATION): {"notification_order_created": False,
                                          "notification_order_owner": True}})
    [created] = intents_for(event(["OrderCreated"], dict(ORDER, location=LOCATION), kind="created"), off)
    assert created.fields["emails"] == ["owner@example.com"]  # the bitmask's, not the contact's
    assert intents_for(event(["OrderCreated"], dict(ORDER, location=LOCATION), kind="created"),
                       FakeFacts(settings={})) == []


def _order(uuid_, **fields):
    return (("order", uuid_), dict(ORDER, **fields))


def test_a_failed_run_tells_each_order_with_a_print_in_it_once():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    prints = {str(uuid.uuid4()): a, str(uuid.uuid4()): a, str(uuid.uuid4()): b}
    resources = dict([_order(a, name="Gearbox"), _order(b, name="Hinge", order_owner=CREATOR)])
    resources.update({("print", p): {"order": f"/order/{o}/"} for p, o in prints.items()})
    run = str(uuid.uuid4())
    resources[("run", run)] = {"name": "Run 7", "prints": [f"/print/{p}/" for p in prints]}
    facts = FakeFacts(settings={"notification_print_error": 1}, resources=resources)
    failed = event(["RunUpdated", "RunStatusChanged", "RunFailed"], {"status": "error"}, application="production",
                   resource="run", uuid_=run)
    intents = intents_for(failed, facts)
    assert [(i.fields["template"], i.fields["emails"], i.fields["context"]["order_name"]) for i in intents] == [
        ("nautilus.print_error", ["owner@example.com"], "Gearbox"),
        ("nautilus.print_error", ["creator@example.com"], "Hinge")]
    assert intents[0].fields["context"]["run_name"] == "Run 7" and intents[0].id != intents[1].id
    assert intents_for(failed, FakeFacts(settings={"notification_print_error": 0}, resources=resources)) == []
    # a run going back to the queue is no error
    assert intents_for(event(["RunUpdated", "RunStatusChanged"], {"status": "queued"}, application="production",
                             resource="run", uuid_=run), facts) == []


def test_an_order_is_scheduled_once_every_pieces_first_print_is_in_a_run():
    order, line_item = str(uuid.uuid4()), "/line-item/66666666-6666-6666-6666-666666666666/"
    order_path = f"/order/{order}/"

    def prints(second_piece_run):
        return [{"uri": "/print/1/", "fields": {"piece": "/piece/1/", "process_step_position": 0, "run": "/run/9/",
                                                "status": "queued", "order": order_path}},
                {"uri": "/print/2/", "fields": {"piece": "/piece/1/", "process_step_position": 1, "run": None,
                                                "status": "created", "order": order_path}},
                {"uri": "/print/3/", "fields": {"piece": "/piece/2/", "process_step_position": 0,
                                                "run": second_piece_run, "status": "created", "order": order_path}},
                {"uri": "/print/4/", "fields": {"piece": "/piece/3/", "process_step_position": 0, "run": None,
                                                "status": "cancelled", "order": order_path}}]

    def facts(second_piece_run):
        return FakeFacts(settings={"notification_order_scheduled": 1}, resources=dict(
            [_order(order, line_items=[line_item]),
             (("referencing", "print", "line_item", line_item), prints(second_piece_run)),
             (("print", "3"), {"order": order_path})]))

    assigned = event(["PrintUpdated", "PrintAssignedToRun"], {"run": "/run/9/", "status": "queued"},
                     application="production", resource="print", uuid_="3")
    assert intents_for(assigned, facts(None)) == []  # the second piece is not in a run yet
    [scheduled] = intents_for(assigned, facts("/run/9/"))
    assert scheduled.fields["template"] == "nautilus.order_scheduled"
    assert scheduled.fields["emails"] == ["owner@example.com"] and scheduled.fields["context"]["pieces"] == 2
    # whichever print completes the picture, the order is told once: the id is the order's
    [again] = intents_for(dict(assigned, position=99), facts("/run/9/"))
    assert again.id == scheduled.id
    # a print leaving its run is no news
    assert intents_for(event(["PrintUpdated", "PrintAssignedToRun"], {"run": None}, application="production",
                             resource="print", uuid_="3"), facts("/run/9/")) == []


def test_stock_below_its_minimum_mails_the_locations_contact_and_the_custom_emails():
    stock = str(uuid.uuid4())
    resources = {("location", LOCATION_ID): {"contact": MENTIONED, "bureau": BUREAU, "name": "Main hall"},
                 ("material", "77777777-7777-7777-7777-777777777777"): {"name": "PA12"},
                 ("stock", stock): {"location": LOCATION, "material": "/material/77777777-7777-7777-7777-777777777777/",
                                    "quantity": 2.0, "stock_min": 5.0, "on_order_quantity": None}}
    facts = FakeFacts(settings={"notification_custom_emails": ["buyer@example.com"]}, resources=resources)
    below = event(["StockUpdated", "StockBelowMinimum"], {"quantity": 2.0}, application="materials",
                  resource="stock", uuid_=stock)
    [mail] = intents_for(below, facts)
    assert mail.fields["template"] == "nautilus.stock_available_below_min_quantity" and mail.bureau == BUREAU
    assert mail.fields["emails"] == ["mentioned@example.com", "buyer@example.com"]
    assert mail.fields["context"]["material_name"] == "PA12" and mail.fields["context"]["location_name"] == "Main hall"
    # what is on order makes up for it: no mail
    resources[("stock", stock)]["on_order_quantity"] = 4.0
    assert intents_for(below, facts) == []
    # another event of the stock is no alert
    resources[("stock", stock)]["on_order_quantity"] = None
    assert intents_for(event(["StockUpdated"], {"quantity": 2.0}, application="materials", resource="stock",
                             uuid_=stock), facts) == []


@pytest.mark.parametrize("template, shows", [("nautilus.print_error", "Gearbox"),
                                             ("nautilus.order_scheduled", "Gearbox"),
                                             ("nautilus.stock_available_below_min_quantity", "PA12"),
                                             ("users.password_reset", "TOKEN"),
                                             ("customer.support_request", "help me")])
def test_every_new_template_renders_its_own_text(template, shows):
    from services.notifications.mail import render

    subject, text, html = render(template, {"order_name": "Gearbox", "material_name": "PA12", "pieces": 2,
                                            "reset_token": "TOKEN", "support_request_payload": "help me"})
    assert subject and subject != template  # its own subject line
    assert shows in text and shows in html and "<html>" in html


def test_webhook_secrets_are_per_bureau_and_replaced_by_a_new_generation(notifications):
    from services.notifications import webhooks

    other = "/bureau/99999999-9999-9999-9999-999999999999/"
    key = b"deployment-key"
    assert notifications.webhook_generation(BUREAU) == 0
    first = webhooks.bureau_secret(key, BUREAU, notifications.webhook_generation(BUREAU))
    assert first != webhooks.bureau_secret(key, other, 0) and first != key
    assert notifications.rotate_webhook_key(BUREAU) == 1
    second = webhooks.bureau_secret(key, BUREAU, notifications.webhook_generation(BUREAU))
    assert second != first and notifications.webhook_generation(other) == 0
    body = b'{"event":"OrderCreated"}'
    signed = webhooks.signature(second, "1700000000", body)
    assert webhooks.verify(second, "1700000000", body, signed) and not webhooks.verify(first, "1700000000", body,
                                                                                        signed)
    assert "deployment-key" not in repr([n.state for n in notifications.recorder.select_notifications(1, 100)])


def test_a_position_an_earlier_release_stored_still_counts(notifications):
    """Releases before the move to shared.follower kept the position as a FeedPosition aggregate: it loads, and
    the subscriber goes on after it (nothing mailed twice, nothing skipped); tracking takes over from there."""
    from services.notifications.domain import FeedPosition

    old = FeedPosition.start("orders")
    old.advance(5)
    notifications.save(old)
    facts = FakeFacts(settings={"notification_order_created": 1})
    assert notifications.feed_position("orders") == 5
    assert notifications.begin_at("orders", 9) == 5  # begun long ago: the migrate step moves nothing
    batch = [event(["OrderCreated"], ORDER, kind="created", position=p) for p in (5, 6)]
    assert notifications.record_batch("orders", batch, 6, facts) == 6
    assert len(_stored(notifications)) == 1  # position 5 was mailed by the earlier release
    assert notifications.recorder.max_tracking_id("orders") == 6
    assert notifications.repository.get(FeedPosition.id_for("orders")).position == 5  # nothing writes it now


# -- the process's copy of the bureaus' settings (services.notifications.facts.SettingsCopy) --------------------------

from services.notifications.facts import Facts, SettingsCopy  # noqa: E402

BUREAU = "/bureau/7b0b6a5e-2f6b-4d8e-9a43-0a3c1c1c0001/"


class Identity:
    """identity's `referencing` of bureau-settings, counting the asks."""

    def __init__(self, fields):
        self.fields = fields
        self.asked = 0

    def call(self, service, method, *args):
        assert (service, method, args[:3]) == ("identity", "referencing", ("bureau-settings", "bureau", BUREAU))
        self.asked += 1
        return [{"uri": "/bureau-settings/x/", "fields": dict(self.fields)}]


def settings_event(kind="updated", resource="bureau-settings"):
    return {"application": "identity", "resource": resource, "kind": kind, "uuid": "x", "position": 9,
            "names": ["BureauSettingsUpdated"], "fields": {}}


def test_the_settings_copy_asks_identity_once_until_a_settings_event_is_seen():
    identity, copy = Identity({"notification_order_created": 4}), SettingsCopy()
    assert Facts(identity.call, "http://x", copy).settings(BUREAU) == {"notification_order_created": 4}
    assert Facts(identity.call, "http://x", copy).settings(BUREAU) == {"notification_order_created": 4}
    assert identity.asked == 1  # the next batch's facts answered from the copy

    copy.saw([settings_event(resource="users"), settings_event(resource="bureau")])  # not about settings: kept
    assert Facts(identity.call, "http://x", copy).settings(BUREAU) == {"notification_order_created": 4}
    assert identity.asked == 1

    identity.fields = {"notification_order_created": 0}
    copy.saw([settings_event()])  # the change, as a doorbell or a pull of identity's feed shows it
    assert Facts(identity.call, "http://x", copy).settings(BUREAU) == {"notification_order_created": 0}
    assert identity.asked == 2


def test_an_answer_fetched_while_a_settings_event_was_seen_is_not_kept():
    copy = SettingsCopy()

    def fetch_while_it_changes():
        copy.saw([settings_event()])  # the change lands between identity's answer and its keeping
        return {"notification_order_created": 4}

    assert copy.get(BUREAU, fetch_while_it_changes) == {"notification_order_created": 4}
    assert copy.get(BUREAU, lambda: {"notification_order_created": 0}) == {"notification_order_created": 0}


def test_reading_identitys_feed_shows_the_copy_every_batch_and_facts_without_a_copy_ask_per_batch():
    copy = SettingsCopy()
    copy.get(BUREAU, lambda: {"a": 1})
    feed = {"events": [settings_event(kind="created")], "last": 9, "complete": True}
    assert copy.watching(lambda start, limit: feed)(1, 100) is feed
    assert copy.get(BUREAU, lambda: {"a": 2}) == {"a": 2}

    identity = Identity({})
    Facts(identity.call, "http://x").settings(BUREAU)
    Facts(identity.call, "http://x").settings(BUREAU)
    assert identity.asked == 2

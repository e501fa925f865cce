"""Notifications end to end, over HTTP, with a real SMTP server process (aiosmtpd, its Maildir read back) and a
local webhook receiver: the E2 triggers deliver the right mails to the right recipients and none when the
bureau-settings bits are off; a crash of the notifications service between the event and the send delivers once;
an unreachable SMTP server is retried, then the failure is recorded; webhooks are signed, retried after a 500, and
refused for internal addresses."""
import json
import mailbox
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.notifications import webhooks
from tests.e2e.test_files_http import new_model, put_file, settled
from tests.kit.plugin import ApiSession, eventually, free_port, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e
SECRET = "whsec-test-" + uuid.uuid4().hex
SUPPORT = "support@stratum.test"


class SmtpProcess:
    """aiosmtpd as its own process, delivering into a Maildir (its Mailbox handler adds X-RcptTo: the envelope)."""

    def __init__(self, port, maildir):
        self.port = port
        self.maildir = maildir
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}", "-c",
             "aiosmtpd.handlers.Mailbox", self.maildir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("aiosmtpd did not start")

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def messages(self, to=None, template=None):
        found = []
        for message in mailbox.Maildir(self.maildir, create=False):
            recipients = [r.strip().lower() for r in (message["X-RcptTo"] or "").split(",")]
            if to is not None and to.lower() not in recipients:
                continue
            if template is not None and message["X-Stratum-Template"] != template:
                continue
            found.append(message)
        return found


@pytest.fixture(scope="module")
def smtp(tmp_path_factory):
    server = SmtpProcess(free_port(), str(tmp_path_factory.mktemp("smtp") / "maildir"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def config_overrides(smtp):
    return {"STRATUM_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "STRATUM_MAIL_FROM": "mail@stratum.test",
            "STRATUM_CALLBACKS_ALLOW_PRIVATE": "127.0.0.1/32", "STRATUM_WEBHOOK_SECRET": SECRET,
            "STRATUM_DELIVERY_MAX_ATTEMPTS": "3", "STRATUM_DELIVERY_BACKOFF_SECONDS": "0.3",
            "STRATUM_DELIVERY_LEASE_SECONDS": "5", "STRATUM_SUPPORT_EMAIL": SUPPORT}


def tag():
    return uuid.uuid4().hex[:8]


def email_of(api, user):
    return api.get(user).json()["email"]


def set_notifications(tenant, **settings):
    """The manager sets the bureau's bureau-settings (made with the bureau: find it, then PUT)."""
    rows = eventually(lambda: tenant.manager.get("/bureau-settings/").json()["resources"])
    assert len(rows) == 1 and rows[0]["bureau"] == tenant.bureau
    response = tenant.manager.put(rows[0]["uri"], json=settings)
    assert response.status_code == 204, response.text


def create_order(api, **fields):
    fields.setdefault("name", f"order-{tag()}")
    response = api.post("/order/", json=fields)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def confirm_line_items(api, order):
    product = api.post("/product/", json={"order": order, "no_model_upload": True})
    assert product.status_code == 201, product.text
    line_item = api.post("/line-item/", json={"product": product.headers["Location"], "quantity": 1,
                                              "type": "product"}).headers["Location"]
    for status in ("calculating_estimates", "pending", "confirmed"):
        assert api.put(line_item, json={"status": status}).status_code == 204, status
    return line_item


def notifications_of(api, template, order=None):
    rows = api.get(f"/notifications/?filter[template]={template}").json()["resources"]
    return [r for r in rows if order is None or r["context"].get("order_uri") == order]


@pytest.fixture(scope="module")
def tenant(admin):
    return make_tenant(admin, login, "notify")


def test_order_created_mails_the_owner_and_the_custom_emails(tenant, smtp):
    ops = f"ops-{tag()}@example.com"
    set_notifications(tenant, notification_order_created=5, notification_custom_emails=[ops],
                      email_sender_name="Acme Printing", email_reply_to="desk@acme.test")
    owner_email = email_of(tenant.manager, tenant.standard_user)
    order = create_order(tenant.manager, order_owner=tenant.standard_user, customer_email=f"buyer-{tag()}@x.test")

    [message] = eventually(lambda: smtp.messages(to=ops, template="nautilus.order_created"))
    recipients = sorted(r.strip() for r in message["X-RcptTo"].split(","))
    assert recipients == sorted([owner_email, ops])  # the owner (1) and the custom e-mails (4), not the customer
    assert message["From"] == "Acme Printing <mail@stratum.test>"
    assert message["Reply-To"] == "desk@acme.test"
    assert message["Subject"].startswith("New order order-")
    parts = {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
             if not part.is_multipart()}
    assert order in parts["text/plain"] and f'href="{order}"' in parts["text/html"]

    record = eventually(lambda: [r for r in notifications_of(tenant.manager, "nautilus.order_created", order)
                                 if r["status"] == "sent"])[0]
    assert record["message_id"] == message["Message-ID"]
    assert sorted(record["emails"]) == recipients and record["trigger"].startswith("orders:")
    assert [a["outcome"] for a in record["attempts"]] == ["sent"]


def test_a_settings_change_is_seen_by_the_next_orders_evaluation(admin):
    """The notifications service keeps each bureau's settings between orders (services.notifications.facts
    .SettingsCopy): the order placed right after a change is evaluated with the new settings, never the old."""
    bureau = make_tenant(admin, login, "settings")
    first, second = f"first-{tag()}@example.com", f"second-{tag()}@example.com"

    def recipients(order):
        return [r["emails"] for r in notifications_of(bureau.manager, "nautilus.order_created", order)]

    set_notifications(bureau, notification_order_created=4, notification_custom_emails=[first])
    order = create_order(bureau.manager)
    assert eventually(lambda: recipients(order)) == [[first]]  # the service holds these settings now

    set_notifications(bureau, notification_order_created=4, notification_custom_emails=[second])
    changed = create_order(bureau.manager)
    assert eventually(lambda: recipients(changed)) == [[second]]

    set_notifications(bureau, notification_order_created=0, notification_custom_emails=[first])
    silent = create_order(bureau.manager)
    set_notifications(bureau, notification_order_created=4, notification_custom_emails=[second])
    last = create_order(bureau.manager)
    assert eventually(lambda: recipients(last)) == [[second]]
    assert recipients(silent) == []  # read before `last` (the feed is read in order), and mailed nobody


def test_confirmed_line_items_mail_the_customer_and_bits_off_mail_nobody(tenant, admin, smtp):
    buyer = f"buyer-{tag()}@x.test"
    quiet_buyer = f"quiet-{tag()}@x.test"
    quiet = make_tenant(admin, login, "quiet")
    set_notifications(quiet, notification_order_created=0, notification_line_items_confirmed=0,
                      notification_custom_emails=[f"never-{tag()}@x.test"])
    quiet_order = create_order(quiet.manager, customer_email=quiet_buyer, order_owner=quiet.standard_user)
    confirm_line_items(quiet.manager, quiet_order)

    set_notifications(tenant, notification_order_created=0, notification_line_items_confirmed=2)
    order = create_order(tenant.manager, customer_email=buyer)
    confirm_line_items(tenant.manager, order)
    [message] = eventually(lambda: smtp.messages(to=buyer))
    assert message["X-Stratum-Template"] == "nautilus.order_line_items_confirmed"
    assert message["X-RcptTo"].strip() == buyer

    # the quiet bureau's events came first in the orders feed, and the subscriber reads it in order: by now they
    # were read, and made no mail (and no record) for anyone
    assert smtp.messages(to=quiet_buyer) == []
    assert smtp.messages(to=email_of(quiet.manager, quiet.standard_user), template="nautilus.order_created") == []
    assert quiet.manager.get("/notifications/?filter[template]=nautilus.order_line_items_confirmed") \
        .json()["resources"] == []


def test_a_crash_between_the_event_and_the_send_delivers_exactly_once(tenant, system, smtp):
    ops = f"crash-{tag()}@example.com"
    set_notifications(tenant, notification_order_created=4, notification_custom_emails=[ops])
    system.stop_service("notifications")
    try:
        order = create_order(tenant.manager)
        time.sleep(1)
        assert smtp.messages(to=ops) == []  # nobody is there to send it
    finally:
        system.start_service("notifications")
    eventually(lambda: smtp.messages(to=ops))
    time.sleep(3)  # doorbells, timers and catch-ups after the restart: none of them sends it again
    assert len(smtp.messages(to=ops)) == 1
    assert len(notifications_of(tenant.manager, "nautilus.order_created", order)) == 1


def test_an_unreachable_smtp_server_is_retried_then_the_failure_recorded(tenant, smtp):
    smtp.stop()
    try:
        response = tenant.manager.post("/notifications/", json={
            "template": "vision.alert", "context": {"camera": "north"}, "emails": [f"alert-{tag()}@x.test"]})
        assert response.status_code == 201, response.text
        location = response.headers["Location"]
        record = eventually(lambda: (lambda r: r if r["status"] == "failed" else None)(
            tenant.manager.get(location).json()), timeout=20)
    finally:
        smtp.start()
    assert [a["outcome"] for a in record["attempts"]] == ["failed", "failed", "failed"]
    assert "Connection refused" in record["error"] or "ConnectionRefused" in record["error"]


def test_a_mentioned_user_is_mailed_once(tenant, smtp):
    mentioned = email_of(tenant.manager, tenant.standard_user)
    order = create_order(tenant.manager)
    text = f"please check the walls, {tag()}"
    response = tenant.manager.post("/comment/", json={
        "related_table_name": "order", "related_uuid": order.rstrip("/").rsplit("/", 1)[1], "text": text,
        "mentioned_users": [{"uri": tenant.standard_user}]})
    assert response.status_code == 201, response.text
    comment = response.headers["Location"]
    [message] = eventually(lambda: [m for m in smtp.messages(to=mentioned,
                                                             template="nautilus.user_mentioned_in_comment")
                                    if text.encode() in m.as_bytes()])
    assert message["X-RcptTo"].strip() == mentioned
    # an edit that lists the same user again does not mail them again
    assert tenant.manager.put(comment, json={"text": text + " (edited)",
                                             "mentioned_users": [{"uri": tenant.standard_user}]}).status_code == 204
    time.sleep(3)
    assert len([m for m in smtp.messages(to=mentioned, template="nautilus.user_mentioned_in_comment")
                if text.encode() in m.as_bytes()]) == 1


def test_a_failed_model_upload_mails_its_owner(tenant, smtp, tmp_path):
    owner = email_of(tenant.manager, tenant.standard_user)
    name = f"broken-{tag()}.stl"
    uri, upload = new_model(tenant.standard, name=name)
    path = tmp_path / name
    path.write_bytes(b"this is not a mesh at all, just words")
    assert put_file(upload, path).status_code == 204
    assert settled(tenant.standard, uri)["status"] == "error"
    [message] = eventually(lambda: [m for m in smtp.messages(to=owner, template="nautilus.model_upload_failed")
                                    if name in m["Subject"]])
    assert message["X-RcptTo"].strip() == owner


# -- webhooks -------------------------------------------------------------------------------------------------------

class Receiver:
    """A local webhook receiver: answers 500 to the first `failures` calls, 200 after; keeps what it got."""

    def __init__(self, failures=0):
        self.failures = failures
        self.calls = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                status = 500 if len(receiver.calls) <= receiver.failures else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/stratum"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def deliveries_of(api, order):
    return api.get(f"/webhook-delivery/?filter[order]={order}").json()["resources"]


def test_order_webhooks_are_signed_and_retried_after_a_500(tenant):
    receiver = Receiver(failures=1)
    try:
        order = create_order(tenant.manager, callback_url=receiver.url)
        eventually(lambda: len(receiver.calls) >= 2, timeout=20)
        (first_headers, first_body), (headers, body) = receiver.calls[:2]
    finally:
        receiver.close()
    secret = tenant.manager.get("/webhook-secret/").json()["secret"].encode()
    assert webhooks.verify(secret, headers["X-Stratum-Timestamp"], body, headers["X-Stratum-Signature"])
    assert not webhooks.verify(b"wrong", headers["X-Stratum-Timestamp"], body, headers["X-Stratum-Signature"])
    # the bureau's own secret: not the deployment's key
    assert not webhooks.verify(SECRET.encode(), headers["X-Stratum-Timestamp"], body, headers["X-Stratum-Signature"])
    assert headers["X-Stratum-Delivery"] == first_headers["X-Stratum-Delivery"]  # the retry is the same delivery
    payload = json.loads(body)
    assert payload["event"] == "OrderCreated" and payload["order"] == order
    assert payload["delivery"] == headers["X-Stratum-Delivery"] and headers["X-Stratum-Event"] == "OrderCreated"

    created = eventually(lambda: [d for d in deliveries_of(tenant.manager, order)
                                  if d["event"] == "OrderCreated" and d["status"] == "sent"])[0]
    assert [a["outcome"] for a in created["attempts"]] == ["failed", "sent"]
    assert "500" in created["attempts"][0]["error"] and created["url"] == receiver.url


def test_a_webhook_to_an_internal_address_is_refused(tenant):
    url = "http://10.255.255.1:9/hooks"  # private, and not in STRATUM_CALLBACKS_ALLOW_PRIVATE
    order = create_order(tenant.manager, callback_url=url)
    delivery = eventually(lambda: [d for d in deliveries_of(tenant.manager, order) if d["status"] == "failed"])[0]
    assert delivery["error"] == "refused: 10.255.255.1 resolves to the internal address 10.255.255.1"
    assert [a["outcome"] for a in delivery["attempts"]] == ["refused"]


def test_another_bureau_sees_neither_notifications_nor_deliveries(tenant, admin):
    other = make_tenant(admin, login, "other")
    assert other.manager.get("/webhook-delivery/").json()["resources"] == []
    assert all(n["template"] == "users.welcome_mailer" for n in
               other.manager.get("/notifications/").json()["resources"])


# -- identity's mails: password reset, lock-out (capture-and-platform.md C1, C4, E2) --------------------------------

TOKEN = re.compile(r"\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[A-Za-z0-9_-]{43})\b")


def new_user(admin, tenant):
    """A fresh user of the tenant's bureau (its password is changed by these tests): (e-mail, password, uri)."""
    email, password = f"reset-{tag()}@example.com", f"pw-{tag()}"
    response = admin.post("/users/", json={"username": email, "email": email, "name": "Rita Reset",
                                           "bureau": tenant.bureau, "password": password})
    assert response.status_code == 201, response.text
    return email, password, response.headers["Location"]


def text_of(message):
    return next(part.get_payload(decode=True).decode() for part in message.walk()
                if part.get_content_type() == "text/plain")


def token_in(message):
    found = set(TOKEN.findall(text_of(message)))
    assert len(found) == 1, text_of(message)
    return found.pop()


def login_status(system, username, password):
    with ApiSession(system.base_url) as anonymous:
        return anonymous.post("/sessions/", json={"username": username, "password": password}).status_code


def test_a_password_reset_mails_a_single_use_token_and_tells_nobody_which_accounts_exist(tenant, admin, smtp,
                                                                                         system):
    email, old_password, user = new_user(admin, tenant)
    nobody = f"nobody-{tag()}@example.com"
    anonymous = ApiSession(system.base_url)
    asked = anonymous.post("/password-reset/", json={"username": email})
    unknown = anonymous.post("/password-reset/", json={"username": nobody})
    assert asked.status_code == unknown.status_code == 202
    assert asked.json() == unknown.json()  # the same answer: no user enumeration

    [message] = eventually(lambda: smtp.messages(to=email, template="users.password_reset"))
    assert message["X-RcptTo"].strip() == email  # the user, nobody else
    token = token_in(message)
    assert f"{system.base_url}/password-reset/confirm/" in text_of(message)
    # the token is in the mail only: not in the notification record the bureau can read
    record = eventually(lambda: [r for r in tenant.manager.get(
        "/notifications/?filter[template]=users.password_reset").json()["resources"]
        if r["emails"] == [email] and r["status"] == "sent"])[0]
    assert token not in json.dumps(record) and token.split(".")[1] not in json.dumps(record)

    refused = anonymous.post("/password-reset/confirm/", json={"token": token[:-3] + "abc", "password": "x-new-1"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "token"
    new_password = f"new-{tag()}"
    done = anonymous.post("/password-reset/confirm/", json={"token": token, "password": new_password})
    assert done.status_code == 204, done.text
    assert login_status(system, email, new_password) == 201
    assert login_status(system, email, old_password) == 401
    again = anonymous.post("/password-reset/confirm/", json={"token": token, "password": "y-new-2"})
    assert again.status_code == 400 and "already used" in again.json()["errors"][0]["title"]
    assert login_status(system, email, new_password) == 201

    time.sleep(2)  # the unknown account's request had time to make a mail, if it were to make one
    assert smtp.messages(to=nobody) == []
    assert len(smtp.messages(to=email, template="users.password_reset")) == 1
    anonymous.close()


def test_repeated_password_reset_requests_answer_alike_and_mail_no_more(tenant, admin, smtp, system):
    """The limit (services.identity.domain.PasswordResetRequests; at most 3 an hour per address, unit-tested with
    a clock) and the spacing of requests: asked again and again, known or not, the answer is the same 202 and the
    known account gets one mail."""
    email, _, _ = new_user(admin, tenant)
    nobody = f"nobody-{tag()}@example.com"
    with ApiSession(system.base_url) as anonymous:
        answers = [anonymous.post("/password-reset/", json={"username": name})
                   for name in [email] * 5 + [nobody] * 5]
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    eventually(lambda: smtp.messages(to=email, template="users.password_reset"))
    time.sleep(2)
    assert len(smtp.messages(to=email, template="users.password_reset")) == 1
    assert smtp.messages(to=nobody) == []


def test_an_account_locked_after_failed_logins_mails_its_user_once(tenant, admin, smtp, system):
    email, password, user = new_user(admin, tenant)
    manager = email_of(tenant.manager, tenant.manager_user)
    for _ in range(5):
        assert login_status(system, email, "not-the-password") == 401
    assert login_status(system, email, password) == 429  # locked, even with the right password

    [message] = eventually(lambda: smtp.messages(to=email, template="users.blocked_for_login"))
    assert message["X-RcptTo"].strip() == email
    assert "locked after too many failed logins" in text_of(message)
    locked_until = admin.get(user).json()["blocked_until"]
    assert locked_until and locked_until[:16] in text_of(message)

    # a password reset lifts the lock: the mailbox's owner proved who they are
    with ApiSession(system.base_url) as anonymous:
        assert anonymous.post("/password-reset/", json={"email": email}).status_code == 202
        [reset] = eventually(lambda: smtp.messages(to=email, template="users.password_reset"))
        new_password = f"new-{tag()}"
        assert anonymous.post("/password-reset/confirm/",
                              json={"token": token_in(reset), "password": new_password}).status_code == 204
    assert login_status(system, email, new_password) == 201
    time.sleep(2)
    assert len(smtp.messages(to=email, template="users.blocked_for_login")) == 1  # one lock, one mail
    assert smtp.messages(to=manager, template="users.blocked_for_login") == []


# -- announcements (E3), /contact-us/ (E5), who may POST a notification ----------------------------------------------

@pytest.fixture(scope="module")
def other(admin):
    return make_tenant(admin, login, "other")


def test_a_managers_announcement_reaches_the_bureaus_users_and_no_other_bureau(tenant, other):
    text = f"**Closed** on Friday ({tag()})"
    posted = tenant.manager.post("/bureau-notification/", json={"text": text})
    assert posted.status_code == 201, posted.text
    location = posted.headers["Location"]
    manager_name = tenant.manager.get(tenant.manager_user).json()["name"]
    [seen] = [a for a in tenant.standard.get("/bureau-notification/").json()["resources"] if a["text"] == text]
    assert seen["uri"] == location and seen["author_name"] == manager_name and seen["bureau"] == tenant.bureau
    assert seen["created"]
    # only managers post; nobody changes or deletes one; another bureau neither sees it nor posts into this one
    refused = tenant.standard.post("/bureau-notification/", json={"text": "I am the manager now"})
    assert refused.status_code == 403
    assert tenant.manager.put(location, json={"text": "changed"}).status_code == 405
    assert tenant.manager.delete(location).status_code == 405
    assert other.manager.get(location).status_code == 404
    assert all(a["text"] != text for a in other.manager.get("/bureau-notification/").json()["resources"])
    foreign = other.manager.post("/bureau-notification/", json={"text": "hello", "bureau": tenant.bureau})
    assert foreign.status_code in (400, 403, 404), foreign.text
    assert all(a["text"] != "hello" for a in tenant.standard.get("/bureau-notification/").json()["resources"])
    # the author's name comes from the session, not the payload
    forged = tenant.manager.post("/bureau-notification/", json={"text": f"forged {tag()}", "author_name": "CEO"})
    if forged.status_code == 201:
        assert tenant.manager.get(forged.headers["Location"]).json()["author_name"] == manager_name
    else:
        assert forged.status_code == 400


def test_contact_us_mails_support_with_the_users_address_to_reply_to(tenant, smtp):
    text = f"The printer makes a strange noise ({tag()})"
    user_email = email_of(tenant.standard, tenant.standard_user)
    answered = tenant.standard.post("/contact-us/", json={"support_request_payload": text})
    assert answered.status_code == 204, answered.text
    [message] = eventually(lambda: [m for m in smtp.messages(to=SUPPORT, template="customer.support_request")
                                    if text.encode() in m.as_bytes()])
    assert message["X-RcptTo"].strip() == SUPPORT  # support only: not the user, not the bureau
    assert message["Reply-To"] == user_email
    assert text in text_of(message)
    missing = tenant.standard.post("/contact-us/", json={})
    assert missing.status_code == 400


def test_only_managers_post_notifications(tenant, smtp):
    address = f"spam-{tag()}@x.test"
    refused = tenant.standard.post("/notifications/", json={"template": "vision.alert", "context": {},
                                                            "emails": [address]})
    assert refused.status_code == 403
    time.sleep(2)
    assert smtp.messages(to=address) == []


# -- production's events (E2: order scheduled, print error) -----------------------------------------------------------

def test_an_order_scheduled_then_failing_to_print_mails_its_owner_once_each(tenant, smtp):
    from tests.e2e.test_production_http import Shop, created, settled_count
    from tests.e2e.test_shop_floor import Floor

    set_notifications(tenant, notification_order_scheduled=1, notification_print_error=1,
                      notification_order_started_printing=0)
    owner = email_of(tenant.manager, tenant.standard_user)
    manager = email_of(tenant.manager, tenant.manager_user)
    floor = Floor(tenant.manager, Shop(tenant.manager))
    order = create_order(tenant.manager, order_owner=tenant.standard_user)
    name = tenant.manager.get(order).json()["name"]
    product = created(tenant.manager, "/product/", {"order": order, "no_model_upload": True})
    item = created(tenant.manager, "/line-item/", {"product": product, "quantity": 2, "workflow": floor.workflow})
    floor.becomes(item, "pending")
    assert tenant.manager.put(item, json={"status": "confirmed"}).status_code == 204
    settled_count(tenant.manager, "print", item, 6)

    def mails(template):
        return [m for m in smtp.messages(template=template) if name in m["Subject"]]

    time.sleep(2)
    assert mails("nautilus.order_scheduled") == []  # pieces exist, none in a run yet
    run = floor.run(item, 0, printer=floor.shop.printer)  # both pieces' first prints: the order is scheduled
    [scheduled] = eventually(lambda: mails("nautilus.order_scheduled"), timeout=30)
    assert scheduled["X-RcptTo"].strip() == owner

    floor.moved(run, "in-progress")
    floor.moved(run, "error")
    [failed] = eventually(lambda: mails("nautilus.print_error"), timeout=30)
    assert failed["X-RcptTo"].strip() == owner
    assert run in text_of(failed) and order in text_of(failed)
    time.sleep(2)
    assert len(mails("nautilus.order_scheduled")) == 1 and len(mails("nautilus.print_error")) == 1
    assert mails("nautilus.order_start_printing") == []  # its bits are off
    assert all(manager not in (m["X-RcptTo"] or "") for m in mails("nautilus.print_error"))


def test_each_bureau_signs_with_its_own_webhook_secret_which_its_managers_may_replace(tenant, other):
    assert tenant.standard.get("/webhook-secret/").status_code == 403
    mine = tenant.manager.get("/webhook-secret/").json()
    theirs = other.manager.get("/webhook-secret/").json()
    assert mine["secret"] != theirs["secret"] and mine["bureau"] == tenant.bureau
    receiver = Receiver(failures=0)
    try:
        replaced = tenant.manager.post("/webhook-secret/").json()
        assert replaced["secret"] != mine["secret"] and replaced["generation"] == mine["generation"] + 1
        assert tenant.manager.get("/webhook-secret/").json()["secret"] == replaced["secret"]
        create_order(tenant.manager, callback_url=receiver.url)
        eventually(lambda: receiver.calls, timeout=20)
        headers, body = receiver.calls[0]
    finally:
        receiver.close()
    stamp, signed = headers["X-Stratum-Timestamp"], headers["X-Stratum-Signature"]
    assert webhooks.verify(replaced["secret"].encode(), stamp, body, signed)
    assert not webhooks.verify(mine["secret"].encode(), stamp, body, signed)  # the old one no longer signs
    assert not webhooks.verify(theirs["secret"].encode(), stamp, body, signed)


# -- materials' events (E2: stock below its minimum) ------------------------------------------------------------------

def test_stock_falling_below_its_minimum_mails_the_locations_contact_and_the_custom_emails(tenant, smtp):
    from shared import catalogue
    from tests.kit.payloads import PayloadFactory

    buyer = f"buyer-{tag()}@example.com"
    set_notifications(tenant, notification_custom_emails=[buyer])
    contact = email_of(tenant.manager, tenant.standard_user)
    manager = email_of(tenant.manager, tenant.manager_user)
    api = tenant.manager
    factory = PayloadFactory(api, tenant.bureau, tenant.manager_user)
    material_name = f"PA12 {tag()}"
    material = api.post("/material/", json=dict(factory.minimal(catalogue.resource("material")), name=material_name,
                                                 units="kg", density=1.01))
    assert material.status_code == 201, material.text
    location = api.post("/location/", json={"name": f"Store {tag()}", "address": "1 Loop Rd",
                                            "contact": tenant.standard_user})
    assert location.status_code == 201, location.text
    stock = api.post("/stock/", json={"material": material.headers["Location"],
                                      "location": location.headers["Location"], "quantity": 10.0, "stock_min": 8.0})
    assert stock.status_code == 201, stock.text

    def consume(amount):
        response = api.post("/material-stock-action/", json={"action_type": "consume", "action_quantity": amount,
                                                             "source_stock": stock.headers["Location"],
                                                             "metadata": {}})
        assert response.status_code == 201, response.text

    def mails():
        return [m for m in smtp.messages(template="nautilus.stock_available_below_min_quantity")
                if material_name in m["Subject"]]

    consume(1.0)  # 9: still above its minimum
    time.sleep(2)
    assert mails() == []
    consume(2.5)  # 6.5 < 8
    [message] = eventually(mails, timeout=20)
    assert sorted(r.strip() for r in message["X-RcptTo"].split(",")) == sorted([contact, buyer])
    assert "6.5" in text_of(message) and manager not in message["X-RcptTo"]
    consume(1.0)  # under it already: no new fall, no new mail
    time.sleep(2)
    assert len(mails()) == 1


# -- order owner changes (E2 `nautilus.order_owner`) ------------------------------------------------------------------

def test_an_order_owner_change_mails_the_new_owner_and_nobody_else(tenant, admin, smtp):
    set_notifications(tenant, notification_order_created=0, notification_order_owner=1,
                      notification_custom_emails=[f"not-bit-4-{tag()}@x.test"])
    first_email, _, first = new_user(admin, tenant)
    second_email, _, second = new_user(admin, tenant)
    order = create_order(tenant.manager, order_owner=first)
    name = tenant.manager.get(order).json()["name"]

    def mails(to=None):
        return [m for m in smtp.messages(to=to, template="nautilus.order_owner") if name in m["Subject"]]

    assert tenant.manager.put(order, json={"order_owner": second}).status_code == 204
    [message] = eventually(lambda: mails(second_email))
    assert message["X-RcptTo"].strip() == second_email  # the new owner (bit 1) only: bit 4 is off
    assert order in text_of(message)
    assert tenant.manager.put(order, json={"priority": 5}).status_code == 204  # not an owner change
    time.sleep(2)
    assert len(mails()) == 1 and mails(first_email) == []


# -- location contacts (materials.md §3.18–3.19: a location's switches, capture-and-platform.md E2) ------------------

def settings_of_location(api, location):
    """A location's one location-settings row, made with the location (the resource has no POST)."""
    rows = eventually(lambda: [r for r in api.get("/location-settings/").json()["resources"]
                               if r["location"] == location])
    assert len(rows) == 1, rows
    return rows[0]


def new_location(api, contact, **switches):
    response = api.post("/location/", json={"name": f"Site {tag()}", "address": "1 Loop Rd", "contact": contact})
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    settings = settings_of_location(api, location)
    assert not any(v for k, v in settings.items() if k.startswith("notification_"))  # all off until switched on
    if switches:
        assert api.put(settings["uri"], json=switches).status_code == 204
        eventually(lambda: all(settings_of_location(api, location)[k] == v for k, v in switches.items()))
    return location


def order_mails(smtp, to):
    """The mails to `to` but the welcome a new user gets."""
    return [m for m in smtp.messages(to=to) if m["X-Stratum-Template"] != "users.welcome_mailer"]


# the order switches whose triggers HTTP alone drives (production's two, scheduled and print error, are below)
ORDER_SWITCHES = {
    "notification_order_created": "nautilus.order_created",
    "notification_line_items_confirmed": "nautilus.order_line_items_confirmed",
    "notification_order_owner": "nautilus.order_owner",
    "notification_order_started_printing": "nautilus.order_start_printing",
    "notification_order_shipped": "nautilus.order_shipped",
    "notification_order_completed": "nautilus.order_complete",
}


def live_order(api, location, new_owner):
    """An order at `location` through every step above: created, its line item confirmed, its owner changed, then
    printing, shipping and complete (the line item moved by PUT: no workflow, so production makes no pieces)."""
    order = create_order(api, location=location)
    line_item = confirm_line_items(api, order)
    assert api.put(order, json={"order_owner": new_owner}).status_code == 204
    for status in ("printing", "shipping", "complete"):
        assert api.put(line_item, json={"status": status}).status_code == 204, status
        eventually(lambda: api.get(order).json()["status"] == status)
    return order


def test_a_locations_contact_is_mailed_for_each_switch_that_is_on_and_only_for_those(tenant, admin, smtp):
    set_notifications(tenant, **{setting: 0 for setting in ORDER_SWITCHES}, notification_custom_emails=[])
    names = sorted(ORDER_SWITCHES)
    half = names[::2]  # each switch is on at one of the two locations and off at the other
    contacts, orders = {}, {}
    for label, on in (("half", half), ("other-half", [n for n in names if n not in half])):
        contacts[label], _, contact = new_user(admin, tenant)
        location = new_location(tenant.manager, contact, **{setting: setting in on for setting in names})
        orders[label] = (live_order(tenant.manager, location, tenant.standard_user), on)
    quiet_email, _, quiet_contact = new_user(admin, tenant)
    quiet = live_order(tenant.manager, new_location(tenant.manager, quiet_contact), tenant.standard_user)

    def templates(to, order):
        name = tenant.manager.get(order).json()["name"]
        return sorted(m["X-Stratum-Template"] for m in smtp.messages(to=to) if name in m["Subject"] or
                      order in text_of(m))

    for label, (order, on) in orders.items():
        expected = sorted(ORDER_SWITCHES[setting] for setting in on)
        eventually(lambda: templates(contacts[label], order) == expected, timeout=30)
    time.sleep(2)  # the quiet order's events came before the last mail was made: by now they were read
    for label, (order, on) in orders.items():
        assert templates(contacts[label], order) == sorted(ORDER_SWITCHES[setting] for setting in on)
        for message in order_mails(smtp, contacts[label]):
            assert message["X-RcptTo"].strip() == contacts[label]  # the bureau's bits are 0: the contact alone
    assert order_mails(smtp, quiet_email) == []  # every switch of its location is off
    assert templates(contacts["half"], quiet) == []


def test_a_locations_contact_hears_of_its_orders_scheduling_and_print_error(tenant, admin, smtp):
    from tests.e2e.test_production_http import Shop, created, settled_count
    from tests.e2e.test_shop_floor import Floor

    set_notifications(tenant, notification_order_scheduled=0, notification_print_error=0,
                      notification_order_started_printing=0)
    contact_email, _, contact = new_user(admin, tenant)
    location = new_location(tenant.manager, contact, notification_order_scheduled=True,
                            notification_print_error=True)
    floor = Floor(tenant.manager, Shop(tenant.manager))
    order = create_order(tenant.manager, location=location)
    product = created(tenant.manager, "/product/", {"order": order, "no_model_upload": True})
    item = created(tenant.manager, "/line-item/", {"product": product, "quantity": 1, "workflow": floor.workflow})
    floor.becomes(item, "pending")
    assert tenant.manager.put(item, json={"status": "confirmed"}).status_code == 204
    settled_count(tenant.manager, "print", item, 3)
    run = floor.run(item, 0, printer=floor.shop.printer)
    [scheduled] = eventually(lambda: smtp.messages(to=contact_email, template="nautilus.order_scheduled"),
                             timeout=30)
    floor.moved(run, "in-progress")
    floor.moved(run, "error")
    [failed] = eventually(lambda: smtp.messages(to=contact_email, template="nautilus.print_error"), timeout=30)
    assert scheduled["X-RcptTo"].strip() == failed["X-RcptTo"].strip() == contact_email
    assert order in text_of(failed)
    time.sleep(2)
    assert sorted(m["X-Stratum-Template"] for m in order_mails(smtp, contact_email)) == [
        "nautilus.order_scheduled", "nautilus.print_error"]  # printing started: its switch is off

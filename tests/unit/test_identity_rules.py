from uuid import UUID

import pytest

from gateway.ratelimit import FailedLogins
from shared import access
from shared.errors import InvalidPayload, TooManyRequests


def test_highest_role_counts():
    assert access.highest(["restricted", "manager", "standard-user"]) == "manager"
    assert access.highest([]) == access.DEFAULT_ROLE


def test_write_rules():
    assert access.write_refusal("role", "POST", "standard-user", False)
    assert access.write_refusal("role", "POST", "manager", False) is None
    assert access.write_refusal("bureau", "POST", "manager", False)
    assert access.write_refusal("bureau", "POST", "standard-user", True) is None
    assert access.write_refusal("order", "POST", "restricted", False) is None
    assert access.write_refusal("order", "PUT", "unknown", False)


def test_failed_logins_per_address_are_limited_then_forgiven():
    now = [0.0]
    limiter = FailedLogins(max_failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("1.2.3.4")
        limiter.failed("1.2.3.4")
    with pytest.raises(TooManyRequests) as error:
        limiter.check("1.2.3.4")
    assert error.value.status == 429 and 0 < error.value.retry_after <= 61
    limiter.check("5.6.7.8")  # other addresses are not affected
    now[0] = 61.0
    limiter.check("1.2.3.4")


OWNER = "/users/11111111-0000-0000-0000-000000000001/"
COLLEAGUE = "/users/11111111-0000-0000-0000-000000000002/"


@pytest.fixture
def identity():
    from services.identity.application import Identity
    from tests.kit.apps import IN_MEMORY

    app = Identity(env=IN_MEMORY)
    yield app
    app.close()


def test_an_api_token_is_revoked_only_by_its_owner_or_a_platform_administrator(identity):
    from shared.errors import NotFound
    from tests.kit.apps import command_ctx

    mine = identity.create("api_tokens", {"name": "script"}, command_ctx(user=OWNER))["uuid"]
    theirs = identity.create("api_tokens", {"name": "other"}, command_ctx(user=OWNER))["uuid"]
    with pytest.raises(NotFound) as refused:
        identity.delete("api_tokens", mine, command_ctx(user=COLLEAGUE, role="manager"))
    assert refused.value.title == "The requested api_tokens cannot be found."
    identity.delete("api_tokens", mine, command_ctx(user=OWNER))
    identity.delete("api_tokens", theirs, command_ctx(user=COLLEAGUE, platform_admin=True))
    assert all(identity.repository.get(UUID(t)).deleted for t in (mine, theirs))


def test_archiving_and_password_changes_are_named_in_the_feed_without_the_hash(identity):
    from services.identity.domain import User
    from tests.kit.apps import BUREAU, command_ctx

    user = identity.create("users", {"username": "ada", "password": "old", "bureau": BUREAU}, command_ctx())
    user_id = user["uri"].split("/")[2]
    identity.update("users", user_id, {"password": "new"}, command_ctx())
    identity.update("users", user_id, {"archived": True}, command_ctx())
    # a password change stored as a plain Updated (as releases before named events did) is named the same way
    stored = identity.repository.get(UUID(user_id))
    stored.trigger_event(User.Updated, changes={"password_hash": "argon2-of-something"}, actor=None)
    identity.save(stored)
    events = [e for e in identity.feed(1, 100)["events"] if e["resource"] == "users"]
    assert [e["names"] for e in events[1:]] == [["UserUpdated", "UserPasswordChanged"],
                                                ["UserUpdated", "UserArchived"],
                                                ["UserUpdated", "UserPasswordChanged"]]
    assert "password_hash" not in repr(events) and "argon2" not in repr(events)


@pytest.mark.parametrize("url, origin", [
    ("https://Stratum.example", "https://stratum.example"),
    ("https://stratum.example:443/x?y", "https://stratum.example"),
    ("http://127.0.0.1:8000/docs", "http://127.0.0.1:8000"), ("http://[::1]:8000", "http://[::1]:8000"),
    ("null", None), ("/relative/page", None), ("http://host:99999", None)])
def test_origins_are_compared_in_one_form(url, origin):
    from gateway.auth import origin_of

    assert origin_of(url) == origin


def test_cookie_writes_from_another_origin_are_refused():
    from werkzeug.test import EnvironBuilder

    from gateway.auth import authenticate
    from shared.errors import Forbidden, Unauthorized

    config = {"STRATUM_BASE_URL": "https://mes.example/", "STRATUM_CORS_ORIGINS": " https://ui.partner.test/ ,"}

    def attempt(method="POST", **headers):
        environ = EnvironBuilder(path="/order/", method=method, base_url="http://internal:8000",
                                 headers={"Cookie": "session=abc.def", **headers}).get_request()
        try:
            authenticate(environ, store=None, config=config)  # no store: refused earlier, or the key is not valid
        except Unauthorized:
            return "checked the key"
        except Forbidden as refused:
            return refused.title

    for headers in ({"Origin": "https://mes.example"}, {"Origin": "http://internal:8000"},
                    {"Origin": "https://internal:8000"}, {"Origin": "https://ui.partner.test"},
                    {"Referer": "https://mes.example/page"}, {}):
        assert attempt(**headers) == "checked the key", headers
    assert attempt("GET", Origin="https://evil.example") == "checked the key"
    assert attempt("DELETE", Authorization="Bearer abc.def", Origin="https://evil.example") == "checked the key"
    refused = attempt("PATCH", Referer="https://evil.example/page")
    assert refused.startswith("This cross-origin request was refused: it is authenticated by the session cookie and "
                              "comes from 'https://evil.example',")
    for origin in ("null", "https://mes.example.evil.example", "http://mes.example"):
        assert attempt(Origin=origin).startswith("This cross-origin request was refused"), origin


# -- password reset and lock-out (capture-and-platform.md C1, C4) ---------------------------------------------------

def _user(identity, username="grace@example.com", password="first"):
    from tests.kit.apps import BUREAU, command_ctx

    identity.secret_key = b"test-secret-key"
    created = identity.create("users", {"username": username, "email": username, "password": password,
                                        "bureau": BUREAU}, command_ctx())
    return UUID(created["uri"].split("/")[2])


def _feed_names(identity, user_id):
    return [e["names"] for e in identity.feed(1, 100)["events"] if e["uuid"] == str(user_id)]


def test_a_reset_token_works_once_and_only_for_its_user(identity):
    from services.identity.domain import RESET_REFUSED

    user_id = _user(identity)
    other_id = _user(identity, "hopper@example.com")
    assert reset(identity, "Grace@Example.com")  # login names are case-insensitive
    token = identity.password_reset_token(user_id)["token"]
    assert identity.password_reset_token(other_id) is None  # nobody else has a pending reset
    for wrong in ("", "not-a-token", f"{other_id}.{token.split('.')[1]}", token[:-2] + "xx"):
        with pytest.raises(InvalidPayload) as refused:
            identity.reset_password(wrong, "second")
        assert refused.value.title == RESET_REFUSED and refused.value.status == 400
    identity.reset_password(token, "second")
    assert identity.repository.get(user_id).check_password("second")
    assert not identity.repository.get(user_id).check_password("first")
    with pytest.raises(InvalidPayload):  # single use
        identity.reset_password(token, "third")
    assert identity.password_reset_token(user_id) is None
    assert identity.repository.get(user_id).check_password("second")


def test_unknown_accounts_mail_nobody_and_requests_are_spaced(identity):
    user_id = _user(identity)
    assert reset(identity, "nobody@example.com") is False
    assert reset(identity, "grace@example.com") is True
    first = identity.password_reset_token(user_id)["token"]
    assert reset(identity, "grace@example.com") is False  # within a minute: no 2nd mail
    assert identity.password_reset_token(user_id)["token"] == first


def reset(identity, login, now=None):
    """A reset request and its background side, as the identity service runs them: whether a mail follows (None
    when the limit refused it)."""
    granted = identity.request_password_reset(login, now=now)
    if granted is None:
        return None
    applied = identity.apply_password_reset(granted["requests"])
    return bool(applied and applied["mailed"])


def _saves(identity):
    """Counts the transactions of the application's own saves (the store writes of one request)."""
    calls = []
    original = identity.save

    def counting(*objs, **kwargs):
        calls.append(sorted(type(o).__name__ for o in objs))
        return original(*objs, **kwargs)

    identity.save = counting
    return calls


def test_a_known_and_an_unknown_address_do_the_same_work(identity):
    """The same answer is not enough: the same work too (one transaction each, of one rate-limit event), so the time
    it takes tells nobody whether an account exists. The account's side follows in the background, once: only
    then does the feed carry the known account's UserPasswordResetRequested, and nothing of the unknown one."""
    user_id = _user(identity)
    before = identity.feed(1, 1000)["events"]
    calls = _saves(identity)
    known = identity.request_password_reset("grace@example.com")
    unknown = identity.request_password_reset("nobody@example.com")
    assert calls == [["PasswordResetRequests"], ["PasswordResetRequests"]]
    assert identity.feed(1, 1000)["events"] == before
    assert identity.apply_password_reset(unknown["requests"]) is None  # nothing waits for an unknown address
    assert identity.apply_password_reset(known["requests"])["mailed"] is True
    assert identity.apply_password_reset(known["requests"]) is None  # applied once, whatever the repeats
    assert calls[2:] == [["PasswordResetRequests", "User"]]
    new = identity.feed(1, 1000)["events"][len(before):]
    assert [(e["uuid"], e["names"][-1]) for e in new] == [(str(user_id), "UserPasswordResetRequested")]


def test_password_resets_are_limited_per_address_known_or_not(identity):
    from datetime import datetime, timedelta, timezone

    from services.identity.domain import PasswordResetRequests, User

    user_id = _user(identity)
    start = datetime.now(timezone.utc)
    spaced = [start + i * (User.RESET_INTERVAL + timedelta(seconds=1)) for i in range(PasswordResetRequests.PER_HOUR)]
    for when in spaced:
        assert reset(identity, "grace@example.com", now=when) is True
        assert reset(identity, "nobody@example.com", now=when) is False
    token = identity.password_reset_token(user_id)["token"]
    later = spaced[-1] + User.RESET_INTERVAL + timedelta(seconds=1)
    calls = _saves(identity)
    assert reset(identity, "grace@example.com", now=later) is None  # the limit: nothing recorded
    assert reset(identity, "GRACE@example.com ", now=later) is None  # the same address, typed else
    assert reset(identity, "nobody@example.com", now=later) is None  # limited alike
    assert calls == []
    assert identity.password_reset_token(user_id)["token"] == token  # no new request, so no new mail
    mails = [n for n in _feed_names(identity, user_id) if n[-1] == "UserPasswordResetRequested"]
    assert len(mails) == PasswordResetRequests.PER_HOUR
    assert reset(identity, "hopper@example.com", now=later) is False  # others still may
    an_hour_on = spaced[0] + PasswordResetRequests.WINDOW + timedelta(seconds=1)
    assert reset(identity, "grace@example.com", now=max(an_hour_on, later)) is True


def test_a_reset_token_expires_and_a_newer_request_replaces_it(identity):
    from datetime import datetime, timedelta, timezone

    from services.identity.domain import User, password_reset_token

    user_id = _user(identity)
    user = identity.repository.get(user_id)
    then = datetime.now(timezone.utc) - User.RESET_LIFETIME - timedelta(seconds=1)
    assert user.request_password_reset(then, "old-nonce")
    identity.save(user)
    expired = password_reset_token(identity.secret_key, user_id, "old-nonce")
    assert identity.password_reset_token(user_id) is None
    with pytest.raises(InvalidPayload):
        identity.reset_password(expired, "second")
    reset(identity, "grace@example.com")  # a new request: a new token, the old one dead
    fresh = identity.password_reset_token(user_id)["token"]
    assert fresh != expired
    identity.reset_password(fresh, "second")


def test_a_lock_out_and_a_reset_request_are_named_in_the_feed_without_their_secrets(identity):
    from shared.errors import TooManyRequests as Locked, Unauthorized

    user_id = _user(identity)
    for _ in range(5):
        with pytest.raises(Unauthorized):
            identity.login("grace@example.com", "wrong")
    with pytest.raises(Locked):
        identity.login("grace@example.com", "first")
    reset(identity, "grace@example.com")
    token = identity.password_reset_token(user_id)["token"]
    identity.reset_password(token, "second")  # proves the mailbox: lifts the lock-out too
    assert identity.login("grace@example.com", "second")["session_key"]
    names = _feed_names(identity, user_id)
    assert ["UserUpdated", "UserBlockedForLogin"] in names
    assert ["UserUpdated", "UserPasswordResetRequested"] in names
    assert names.count(["UserUpdated", "UserBlockedForLogin"]) == 1  # the unblock is a plain update
    events = repr(identity.feed(1, 100)["events"])
    assert "nonce" not in events and token.split(".")[1] not in events and "password_reset" not in events


def test_a_granted_request_whose_message_was_lost_is_found_and_applied_once(identity):
    """The service publishes a message for each granted request and applies the account's side from it; a crash
    that loses the message leaves the request pending in the log, where the identity service's sweeper finds it."""
    from services.identity.domain import PasswordResetRequests
    from shared.sweep import Sweeper

    user_id = _user(identity)
    known = identity.request_password_reset("grace@example.com")
    identity.request_password_reset("nobody@example.com")  # nothing waits for it
    sweeper = Sweeper(identity, [(PasswordResetRequests, PasswordResetRequests.Granted)], 0)
    resumed = []
    sweeper.sweep(lambda requests: requests.pending is not None, lambda requests: resumed.append(str(requests.id)))
    assert resumed == [known["requests"]]
    assert identity.password_reset_token(user_id) is None  # not applied yet: no token, no mail
    assert identity.apply_password_reset(resumed[0])["mailed"] is True
    assert identity.password_reset_token(user_id)["token"]
    identity.request_password_reset("nobody@example.com")
    sweeper.sweep(lambda requests: requests.pending is not None, lambda requests: resumed.append(str(requests.id)))
    assert resumed == [known["requests"]]

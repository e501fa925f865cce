from uuid import UUID

import pytest

from gateway.ratelimit import FailedLogins
from shared import access
from shared.errors import TooManyRequests


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

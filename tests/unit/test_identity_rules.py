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

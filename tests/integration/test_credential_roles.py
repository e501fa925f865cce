"""A credential read from the read side carries its user's roles in its bureau (one statement a request: every write
needs the roles), on SQLite and PostgreSQL: the user's live roles there and no one else's, nowhere else."""
import pytest

from gateway import auth
from tests.kit.readside import empty_read_store

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
OTHER = "/bureau/22222222-2222-2222-2222-222222222222/"
USER = "/users/33333333-3333-3333-3333-333333333333/"
SOMEONE = "/users/44444444-4444-4444-4444-444444444444/"
SESSION = "55555555-5555-5555-5555-555555555555"


def event(position, resource, uuid, fields, kind="created", bureau=BUREAU):
    return {"position": position, "application": "identity", "resource": resource, "uuid": uuid, "version": 1,
            "event": f"identity/{resource}/Created", "user": USER, "timestamp": "2026-12-01T00:00:00+00:00",
            "kind": kind, "bureau": bureau, "fields": fields, "names": ["Created"]}


def role(position, number, user, name, bureau=BUREAU, kind="created"):
    return event(position, "role", f"{number:08d}-0000-4000-8000-000000000000",
                 {} if kind == "deleted" else {"user": user, "role": name, "bureau": bureau}, kind, bureau)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    read_store = empty_read_store(request, tmp_path)
    yield read_store
    read_store.dispose()


def session(position, secret_hash="0" * 64):
    return event(position, "sessions", SESSION, {"secret_hash": secret_hash, "user": USER, "expires": None})


def test_a_credential_of_a_user_without_roles_has_none(store):
    store.apply_feed("identity", [session(1)], 1)
    assert store.credential(SESSION).roles == ()


def test_a_credential_carries_its_users_live_roles_in_its_bureau_only(store):
    store.apply_feed("identity", [
        session(1),
        role(2, 1, USER, "manager"),
        role(3, 2, USER, "global-user"),
        role(4, 3, USER, "restricted", kind="created"),
        role(5, 3, USER, "restricted", kind="deleted"),  # revoked
        role(6, 4, USER, "manager", bureau=OTHER),  # another bureau's
        role(7, 5, SOMEONE, "manager"),  # another user's
    ], 7)
    row = store.credential(SESSION)
    assert sorted(row.roles) == ["global-user", "manager"]
    assert (row.uuid, row.user, row.bureau, row.kind) == (SESSION, USER, BUREAU, "session")


def test_the_caller_has_the_highest_of_its_roles(store, monkeypatch):
    monkeypatch.setattr(auth, "secret_matches", lambda stored, presented: True)
    store.apply_feed("identity", [session(1), role(2, 1, USER, "global-user"), role(3, 2, USER, "manager")], 3)
    caller = auth.caller_for_key(store, f"{SESSION}.secret", {})
    assert sorted(caller.roles) == ["global-user", "manager"]

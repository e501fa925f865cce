"""A credential read for a write carries its user's roles in its bureau (one statement: every write needs the roles),
on SQLite and PostgreSQL: the user's live roles there and no one else's, nowhere else; a read's credential does not."""
import itertools

import pytest

from gateway import auth
from tests.kit.readside import empty_read_store

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
OTHER = "/bureau/22222222-2222-2222-2222-222222222222/"
SOMEONE = "/users/44444444-4444-4444-4444-444444444444/"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request, tmp_path_factory):
    read_store = empty_read_store(request, tmp_path_factory.mktemp("roles"))
    read_store.numbers = itertools.count(1)  # the feed's positions and the tests' uuids, one store for all
    yield read_store
    read_store.dispose()


def event(position, resource, number, fields, kind="created", bureau=BUREAU):
    return {"position": position, "application": "identity", "resource": resource,
            "uuid": f"{number:08d}-0000-4000-8000-000000000000", "version": 1, "event": f"identity/{resource}/x",
            "user": None, "timestamp": "2026-12-01T00:00:00+00:00", "kind": kind, "bureau": bureau, "fields": fields,
            "names": ["x"]}


def apply(store, *changes, bureau=BUREAU):
    """A session of a new user in `bureau`, then `changes` ((role, user or None for the session's, its bureau,
    "created" or "deleted" for the role made just before)); returns (the session's uuid, its user)."""
    number = next(store.numbers)
    user = f"/users/{number:08d}-0000-4000-8000-000000000000/"
    feed = [event(next(store.numbers), "sessions", number, {"secret_hash": "0" * 64, "user": user}, bureau=bureau)]
    for name, holder, where, kind in changes:
        if kind == "deleted":  # the role just made
            feed.append(dict(feed[-1], position=next(store.numbers), kind="deleted", fields={}))
        else:
            feed.append(event(next(store.numbers), "role", next(store.numbers),
                              {"user": holder or user, "role": name, "bureau": where}, bureau=where))
    store.apply_feed("identity", feed, feed[-1]["position"])
    return feed[0]["uuid"], user


def test_a_credential_of_a_user_without_roles_has_none(store):
    session, _ = apply(store)
    assert store.credential(session, with_roles=True).roles == ()


def test_a_credential_carries_its_users_live_roles_in_its_bureau_only(store):
    session, user = apply(store, ("manager", None, BUREAU, "created"), ("global-user", None, BUREAU, "created"),
                          ("restricted", None, BUREAU, "created"), ("restricted", None, BUREAU, "deleted"),
                          ("manager", None, OTHER, "created"), ("manager", SOMEONE, BUREAU, "created"))
    row = store.credential(session, with_roles=True)
    assert sorted(row.roles) == ["global-user", "manager"]
    assert (row.uuid, row.user, row.bureau, row.kind) == (session, user, BUREAU, "session")


def test_a_writes_caller_comes_with_its_roles_and_a_reads_without(store, monkeypatch):
    monkeypatch.setattr(auth, "secret_matches", lambda stored, presented: True)
    session, _ = apply(store, ("global-user", None, BUREAU, "created"), ("manager", None, BUREAU, "created"))
    assert sorted(auth.caller_for_key(store, f"{session}.secret", {}, with_roles=True).roles) == [
        "global-user", "manager"]
    assert auth.caller_for_key(store, f"{session}.secret", {}).roles is None
    assert not hasattr(store.credential(session), "roles")


def test_a_credential_without_a_bureau_has_its_users_roles_without_one(store):
    session, _ = apply(store, ("manager", None, None, "created"), ("global-user", None, BUREAU, "created"),
                       bureau=None)
    assert store.credential(session, with_roles=True).roles == ("manager",)

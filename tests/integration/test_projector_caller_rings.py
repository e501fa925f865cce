"""Who applies a command's events that its caller (the gateway, read-your-writes) applies too: on SQLite the caller
alone (two processes racing for the one writer lock cost more than they saved), on PostgreSQL whichever of the
caller and the projector comes first (the projector's apply runs on the other core beside a busy gateway, and keeps
the lag other readers see lower). See gateway/projector.py."""
import pytest
from sqlalchemy import event

from gateway.follower import Follower
from gateway.projector import ProjectorService
from gateway.readside import ReadSide
from shared.service import CALLER_APPLIES
from tests.kit.readside import empty_read_store

pytestmark = pytest.mark.integration


class NoFeed:
    def __init__(self):
        self.pulls = []

    def fetcher(self, application):
        return lambda start, limit: self.pulls.append((application, start)) or {"events": [], "last": None}


@pytest.fixture(params=["sqlite", "postgres"])
def projector(request, tmp_path):
    store = empty_read_store(request, tmp_path)
    store.apply_feed("orders", [], 2)
    read = ReadSide()
    read.store, read.follower = store, Follower(store)
    service = ProjectorService()
    service.read, service.services = read, NoFeed()
    yield service
    store.dispose()


def test_a_ring_its_caller_applies_is_the_projectors_too_on_postgresql_only(projector):
    store = projector.read.store
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    ring = {"application": "orders", "position": 3, "first": 3, "last": 3, "events": [], CALLER_APPLIES: True}
    projector._handle_news("orders", ring)
    if store.is_sqlite:
        assert statements == [] and store.position("orders") == 2  # left to the caller (its timer, should it fail)
    else:
        assert store.position("orders") == 3  # applied at once, the ring's own events: no pull
    assert projector.services.pulls == []
    projector._handle_news("orders", {"application": "orders", "position": 4, "first": 3, "last": 4, "events": []})
    assert store.position("orders") == 4  # a service rule's write: the projector's on both

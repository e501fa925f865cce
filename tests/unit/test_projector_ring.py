"""The projector's doorbell handler reads its read-side position once per ring that carries its events (the
catch-up reads it anyway and stops at the ring's position), and still never pulls for a ring it already holds."""
import pytest
from sqlalchemy import event

from gateway.follower import Follower
from gateway.projector import ProjectorService
from gateway.readside import ReadSide
from gateway.readstore import ReadStore


class Feeds:
    def __init__(self):
        self.pulls = []

    def fetcher(self, application):
        return lambda start, limit: self.pulls.append((application, start)) or {"events": [], "last": None}


@pytest.fixture
def projector(tmp_path):
    store = ReadStore("sqlite:///" + str(tmp_path / "read.sqlite"))
    store.create_tables()
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    read = ReadSide()
    read.store, read.follower = store, Follower(store)
    service = ProjectorService()
    service.read, service.services = read, Feeds()
    service.statements = statements
    yield service
    store.dispose()


def position_reads(statements):
    return [s for s in statements if "FROM tracking" in s]


@pytest.mark.parametrize("held", [2, 3])  # the projector first, or the gateway applied the command already
def test_a_ring_with_its_events_reads_the_position_once(projector, held):
    projector.read.store.apply_feed("orders", [], held)
    del projector.statements[:]
    ring = {"application": "orders", "position": 3, "first": 3, "last": 3, "events": []}
    projector._handle_news("orders", ring)
    assert len(position_reads(projector.statements)) == 1, projector.statements
    assert projector.services.pulls == []


def test_a_ring_without_events_already_held_is_not_pulled(projector):
    projector.read.store.apply_feed("orders", [], 3)
    projector._handle_news("orders", {"application": "orders", "position": 3})
    assert projector.services.pulls == []
    projector._handle_news("orders", {"application": "orders", "position": 4})
    assert projector.services.pulls == [("orders", 4)]


def test_a_ring_whose_callers_apply_its_events_costs_the_projector_no_statement(projector):
    """The gateway applies its own commands' events before it answers (read-your-writes): the projector applying the
    same ring raced it for the one write transaction (on SQLite, from another process, throwing away each other's
    page cache). Such a ring is left to its callers; the timer catches up if one of them fails."""
    from shared.service import CALLER_APPLIES

    store = projector.read.store
    store.apply_feed("orders", [], 2)
    writes = []
    event.listen(store._writer, "before_cursor_execute", lambda *args: writes.append(args[2]))
    del projector.statements[:]
    ring = {"application": "orders", "position": 3, "first": 3, "last": 3, "events": [], CALLER_APPLIES: True}
    projector._handle_news("orders", ring)
    assert projector.statements == [] and writes == [] and projector.services.pulls == []
    assert store.position("orders") == 2  # left to the caller (or, should it fail, to the timer)
    projector._handle_news("orders", dict(ring, **{CALLER_APPLIES: False}))  # a rule's write: the projector's
    assert store.position("orders") == 3

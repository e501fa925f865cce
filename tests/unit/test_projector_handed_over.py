"""A ring whose writes were handed back to a caller that catches up on them (the gateway: HANDED_OVER) costs the
projector no read-side query and no pull; a ring without the mark is handled as before, and the projector's timer
still pulls whatever such a caller failed to apply."""
import pytest
from sqlalchemy import event

from gateway.follower import Follower
from gateway.projector import ProjectorService
from gateway.readside import ReadSide
from gateway.readstore import ReadStore
from shared.service import HANDED_OVER


class Feeds:
    """Every service's feed, empty; remembers where each pull started."""

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


def test_a_handed_over_ring_costs_the_projector_nothing(projector):
    projector._handle_news("orders", {"application": "orders", "position": 3, HANDED_OVER: True})
    assert projector.statements == [] and projector.services.pulls == []


def test_a_ring_without_the_mark_is_caught_up_on(projector):
    projector._handle_news("orders", {"application": "orders", "position": 3})
    assert projector.statements and projector.services.pulls == [("orders", 1)]


def test_the_timer_pulls_what_a_handed_over_ring_announced(projector):
    projector._handle_news("orders", {"application": "orders", "position": 3, HANDED_OVER: True})
    projector.catch_up_all()
    assert ("orders", 1) in projector.services.pulls

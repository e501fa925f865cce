"""A follower asks the read side's position for every ring it hears (the projector) and for every write it hands
over (the gateway): on PostgreSQL the question runs in autocommit, one round trip, not BEGIN, SELECT, ROLLBACK."""
import pytest
from sqlalchemy import event

from tests.kit.readside import empty_read_store

pytestmark = pytest.mark.integration


def _at_seven(request, tmp_path):
    """An empty read store whose orders position is 7."""
    read_store = empty_read_store(request, tmp_path)
    read_store.apply_feed("orders", [], 7)
    yield read_store
    read_store.dispose()


@pytest.fixture(params=["postgres"])
def store(request, tmp_path):
    yield from _at_seven(request, tmp_path)


def test_position_reads_open_no_transaction(store):
    import psycopg2.extensions as ext
    seen = []

    def after(conn, cursor, statement, parameters, context, executemany):
        if "tracking" in statement:
            seen.append(conn.connection.dbapi_connection.get_transaction_status())

    event.listen(store.engine, "after_cursor_execute", after)
    assert store.position("orders") == 7 and store.positions() == {"orders": 7}
    assert seen == [ext.TRANSACTION_STATUS_IDLE] * 2
    with store.engine.connect() as conn:  # the connection went back to the pool ready for a writer's transaction
        assert conn.connection.dbapi_connection.autocommit is False


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path):
    yield from _at_seven(request, tmp_path)


def test_events_past_a_gap_are_applied_only_once_the_gap_is_filled(any_store):
    """gateway.follower: a writer's slice past another process's gap is applied at its turn only if the store holds
    the gap by then; otherwise nothing moves and the writer pulls."""
    assert any_store.apply_feed("orders", [], 12, after=10) == 7  # 8–10 not held: refused
    assert any_store.position("orders") == 7
    assert any_store.apply_feed("orders", [], 10) == 10  # another applier fills the gap
    assert any_store.apply_feed("orders", [], 12, after=10) == 12
    assert any_store.apply_feed("orders", [], 11, after=9) == 12  # held already: positions only grow

"""A follower asks the read side's position for every ring it hears (the projector) and for every write it hands
over (the gateway): on PostgreSQL the question runs in autocommit, one round trip, not BEGIN, SELECT, ROLLBACK."""
import pytest
from sqlalchemy import event

from tests.kit.readside import empty_read_store

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgres"])
def store(request, tmp_path):
    read_store = empty_read_store(request, tmp_path)
    read_store.apply_feed("orders", [], 7)
    yield read_store
    read_store.dispose()


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

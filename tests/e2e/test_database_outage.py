"""Self-healing on the database side: PostgreSQL ends every connection of the test database (what a failover or a
server restart does to a client) several times while requests flow; every process must serve again afterwards from
fresh connections, without a restart, and clients must see answers or 503s meanwhile, never a hang."""
import uuid

import eventlet
import psycopg
import pytest

from gateway import readstore
from tests.e2e.test_broker_outage import Load, every_service_answers, recovered
from tests.kit.plugin import PG_ADMIN_DSN, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def storage(tmp_path_factory, postgres_dsn):
    return {"STRATUM_DATA_DIR": str(tmp_path_factory.mktemp("data")), "STRATUM_POSTGRES_DSN": postgres_dsn}


def terminate_backends(database):
    """End every connection to `database` but this one (scoped to the test's own database)."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        return conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchone()[0]


def test_every_process_serves_again_after_the_database_dropped_its_connections(system, admin, config):
    database = config["STRATUM_POSTGRES_DSN"].rsplit("/", 1)[1]
    load = Load(admin)
    eventlet.sleep(2)
    for _ in range(3):
        assert terminate_backends(database) > 0
        eventlet.sleep(1.5)
    eventually(lambda: recovered(system, admin), timeout=60, interval=1)
    statuses = load.stop()

    assert system.dead() == []
    assert load.failures == [], (statuses, load.failures[:5])
    assert every_service_answers(system, admin)


def test_a_write_whose_read_side_connection_is_cut_still_answers(system, admin, config, monkeypatch):
    """The database ends the read side's connection while the gateway applies a write's events (read-your-writes):
    the command has committed in its service, so the client must get its 201, not a 500 for a lost connection."""
    database = config["STRATUM_POSTGRES_DSN"].rsplit("/", 1)[1]
    name = f"slow-{uuid.uuid4().hex[:8]}"
    applying = []
    apply_event = readstore.apply_event

    def slow_apply_event(conn, item):
        if (item.get("fields") or {}).get("name") == name and not applying:
            applying.append(item)
            eventlet.sleep(2)  # inside the read side's transaction, on its connection
        return apply_event(conn, item)

    monkeypatch.setattr(readstore, "apply_event", slow_apply_event)
    response = eventlet.spawn(admin.post, "/order/", json={"name": name})
    eventually(lambda: applying, timeout=20)
    assert terminate_backends(database) > 0
    created = response.wait()
    assert created.status_code == 201, created.text
    assert admin.get(created.headers["Location"]).json()["name"] == name

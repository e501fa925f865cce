"""D11: a running system holds no more PostgreSQL connections than its computed budget (runtime.budget), at rest
and under load (counted in pg_stat_activity for the test's own database). At rest a pool may still hold connections
it opened while busy (psycopg_pool closes those after 10 idle minutes), so the bound is the budget's maximum."""
import uuid

import eventlet
import psycopg
import pytest

from runtime.budget import connection_budget, total
from tests.kit.plugin import PG_ADMIN_DSN

pytestmark = pytest.mark.e2e

CLIENTS = 16


@pytest.fixture(scope="module")
def storage(tmp_path_factory, postgres_dsn):
    return {"STRATUM_DATA_DIR": str(tmp_path_factory.mktemp("data")), "STRATUM_POSTGRES_DSN": postgres_dsn}


def backends(database):
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()[0]


def test_the_running_system_stays_within_its_connection_budget(system, admin, config):
    database = config["STRATUM_POSTGRES_DSN"].rsplit("/", 1)[1]
    kept, most = total(connection_budget(config))

    admin.get("/order/")  # the read side has been used once, like every other pool
    eventlet.sleep(2)
    at_rest = backends(database)

    running, peak, answered = True, [0], []

    def client():
        while running:
            created = admin.post("/order/", json={"name": f"budget-{uuid.uuid4().hex[:8]}"}, timeout=60)
            answered.append(created.status_code)
            admin.get("/order/?page[limit]=20", timeout=60)

    def watch():
        while running:
            peak[0] = max(peak[0], backends(database))
            eventlet.sleep(0.1)

    threads = [eventlet.spawn(client) for _ in range(CLIENTS)] + [eventlet.spawn(watch)]
    eventlet.sleep(8)
    running = False
    for thread in threads:
        thread.wait()

    print(f"\nPostgreSQL backends: {at_rest} at rest (the pools keep {kept}, budget {most}), peak {peak[0]} under load with {CLIENTS} "
          f"clients (budget {most}); {len(answered)} orders")
    assert answered and set(answered) == {201}
    assert at_rest <= most and peak[0] <= most

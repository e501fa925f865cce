"""The event store's pool checks a PostgreSQL connection with a round trip only when it sat idle in the pool
(shared.eventstore.ping_when_idle): a connection the server dropped while it was idle is replaced before anyone uses
it, and a connection given back and lent again at once costs no check."""
import time
import uuid

import psycopg
import pytest

from runtime.config import build_config
from services.identity.application import Identity
from shared.eventstore import create_store, ping_when_idle
from shared.settings import event_store_env
from tests.kit.plugin import PG_ADMIN_DSN

pytestmark = pytest.mark.integration
IDLE = 0.3


@pytest.fixture
def app(tmp_path, postgres_dsn):
    config = build_config({"STRATUM_DATA_DIR": str(tmp_path), "STRATUM_POSTGRES_DSN": postgres_dsn})
    env = dict(event_store_env(config, "identity"), POSTGRES_SCHEMA=f"identity_{uuid.uuid4().hex[:8]}",
               POSTGRES_POOL_SIZE="1", POSTGRES_MAX_OVERFLOW="0")
    create_store(env, Identity)
    app = Identity(env=env)
    yield app
    app.close()


def counting_checks(app):
    pool = app.recorder.datastore.pool
    checks = []
    real = pool._check
    pool._check = lambda conn: (checks.append(conn), real(conn))
    assert ping_when_idle(app, idle_seconds=IDLE) is pool
    return checks


def select_one(app):
    with app.recorder.datastore.get_connection() as conn:
        return conn.execute("SELECT 1").fetchone()


def terminate_backends(dsn):
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        return conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (dsn.rsplit("/", 1)[1],)).fetchone()[0]


def test_a_connection_lent_again_at_once_is_not_checked(app):
    checks = counting_checks(app)
    select_one(app)  # never given back through the pool yet: checked
    assert len(checks) == 1
    for _ in range(5):
        select_one(app)
    assert len(checks) == 1


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(app, postgres_dsn):
    checks = counting_checks(app)
    select_one(app)
    assert terminate_backends(postgres_dsn) >= 1
    time.sleep(IDLE + 0.1)
    assert select_one(app) == {"?column?": 1}  # the check found it dead; the pool lent a new one
    assert len(checks) >= 2


def test_without_the_check_a_dropped_connection_fails_its_first_statement(app, postgres_dsn):
    """What the check is for (and why it is made after an idle spell): the same drop, lent again unchecked."""
    counting_checks(app)
    select_one(app)
    assert terminate_backends(postgres_dsn) >= 1
    time.sleep(0.05)
    with pytest.raises(Exception):
        select_one(app)


def test_sqlite_stores_are_left_as_they_are(tmp_path):
    app = Identity(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "i.sqlite"),
                        "CREATE_TABLE": "y"})
    try:
        assert ping_when_idle(app) is None
    finally:
        app.close()

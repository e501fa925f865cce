"""The PostgreSQL connection budget (D11): from the settings, per process, and under PostgreSQL's default limit."""
from gateway.readstore import ReadStore
from runtime.budget import connection_budget, describe_budget, total
from runtime.config import build_config
from runtime.topology import APPLICATIONS, PROCESSES
from shared.settings import event_store_env

DSN = "postgresql://stratum@db:5432/stratum"
POSTGRES_DEFAULT_MAX_CONNECTIONS = 100
SUPERUSER_RESERVED = 3  # PostgreSQL's default superuser_reserved_connections


def test_the_default_budget_stays_well_under_postgres_default_limit():
    budget = connection_budget(build_config({"STRATUM_POSTGRES_DSN": DSN}, environ={}))
    kept, most = total(budget)
    assert most < POSTGRES_DEFAULT_MAX_CONNECTIONS
    # room for a second gateway and projector replica, and for the superuser reserve
    replicas = total({name: budget[name] for name in ("gateway", "projector")})[1]
    assert most + replicas <= POSTGRES_DEFAULT_MAX_CONNECTIONS - SUPERUSER_RESERVED
    assert (kept, most) == (20, 51)


def test_every_process_is_counted_by_what_it_holds():
    budget = connection_budget(build_config({"STRATUM_POSTGRES_DSN": DSN}, environ={}))
    assert set(budget) == set(PROCESSES)
    assert {name for name, pools in budget.items() if "event store" in pools} == set(APPLICATIONS)
    assert {name for name, pools in budget.items() if "read side" in pools} == {"gateway", "projector"}


def test_the_budget_follows_the_settings():
    config = build_config({}, environ={"STRATUM_POSTGRES_DSN": DSN, "STRATUM_PG_POOL_SIZE": "4",
                                       "STRATUM_PG_MAX_OVERFLOW": "0", "STRATUM_READ_POOL_SIZE": "1",
                                       "STRATUM_READ_MAX_OVERFLOW": "2"})
    budget = connection_budget(config)
    assert budget["orders"] == {"event store": (4, 4)} and budget["gateway"] == {"read side": (1, 3)}
    assert total(budget) == (7 * 4 + 2 * 1, 7 * 4 + 2 * 3)
    env = event_store_env(config, "orders")  # what the event store's pool is actually given
    assert (env["POSTGRES_POOL_SIZE"], env["POSTGRES_MAX_OVERFLOW"]) == ("4", "0")
    assert "at most 34, 30 kept at rest" in describe_budget(budget)


def test_the_read_store_pool_has_the_configured_size():
    store = ReadStore("postgresql+psycopg2://stratum@db:5432/stratum", pool_size=1, max_overflow=2)
    try:
        assert (store.engine.pool.size(), store.engine.pool._max_overflow) == (1, 2)
    finally:
        store.dispose()


def test_sqlite_needs_no_budget(tmp_path):
    budget = connection_budget(build_config({"STRATUM_DATA_DIR": str(tmp_path)}, environ={}))
    assert total(budget) == (0, 0)

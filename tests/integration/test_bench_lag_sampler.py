"""bench.write_path's (a′) sampler reads the real orders event store and read side, as a run configures them, on
either database; its own PostgreSQL backends are left out of the CPU the bench charges to the database."""
import pytest

from bench.write_path import infrastructure_pids, lag_sampler
from runtime import rebuild as rebuild_module
from runtime.config import build_config
from runtime.migrate import migrate
from services.orders.application import Orders
from shared.settings import event_store_env
from tests.kit.apps import command_ctx

BACKENDS = "postgresql (this database's backends)"


@pytest.fixture(params=["sqlite", "postgres"])
def env(request, tmp_path):
    """A migrated system's environment, as bench.write_path hands it to every process."""
    env = {"STRATUM_DATA_DIR": str(tmp_path), "STRATUM_POSTGRES_DSN": ""}
    if request.param == "postgres":
        env["STRATUM_POSTGRES_DSN"] = request.getfixturevalue("postgres_dsn")
    migrate(build_config(environ=env))
    return env


def test_the_sampler_sees_orders_stored_then_the_read_side_reaching_them(env):
    config = build_config(environ=env)
    sampler = lag_sampler(env)
    try:
        _, stored_before, read_before = sampler.sample()
        app = Orders(env=event_store_env(config, "orders"))
        try:
            app.create("order", {"name": "sampled"}, command_ctx())
        finally:
            app.close()
        _, stored, read = sampler.sample()
        assert stored > stored_before and read == read_before  # stored, not yet applied
        rebuild_module.rebuild(config, report=lambda line: None)  # the read side catches up with every store
        _, stored_after, read_after = sampler.sample()
        assert stored_after == stored and read_after == stored
    finally:
        summary = sampler.stop()  # never started: no samples, nothing to summarise
    assert summary["notifications"] == 0 and summary["samples"] == 0


def test_the_samplers_postgresql_backends_are_not_charged_to_the_database(postgres_dsn, tmp_path):
    env = {"STRATUM_DATA_DIR": str(tmp_path), "STRATUM_POSTGRES_DSN": postgres_dsn}
    migrate(build_config(environ=env))
    sampler = lag_sampler(env)
    try:
        assert len(sampler.backend_pids) == 2
        assert set(sampler.backend_pids) <= set(infrastructure_pids(postgres_dsn)[BACKENDS])
        assert not set(sampler.backend_pids) & set(infrastructure_pids(postgres_dsn, sampler.backend_pids)[BACKENDS])
    finally:
        sampler.stop()

from gateway.readstore import read_store_url
from runtime.config import build_config
from shared.settings import event_store_env, postgres_params


def test_sqlite_by_default(tmp_path):
    config = build_config({"STRATUM_DATA_DIR": str(tmp_path)}, environ={})
    env = event_store_env(config, "orders")
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == str(tmp_path / "orders.sqlite")
    assert str(read_store_url(config)).startswith("sqlite:///")
    assert config["WEB_SERVER_ADDRESS"] == "127.0.0.1:8000"


def test_postgres_when_a_dsn_is_given():
    config = build_config({}, environ={"STRATUM_POSTGRES_DSN": "postgresql://u:p%40ss@db:5433/mes"})
    env = event_store_env(config, "orders")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_PASSWORD"], env["POSTGRES_SCHEMA"]) == (
        "db", "5433", "p@ss", "orders")
    assert env["CREATE_TABLE"] == "n"  # the migrate step creates tables
    assert read_store_url(config).password == "p@ss"
    assert postgres_params("") is None


def test_every_setting_the_readme_and_compose_name_is_read_from_the_environment():
    """A setting documented but missing from DEFAULTS would be silently ignored when set in the environment."""
    import re
    from pathlib import Path

    from runtime.config import DEFAULTS

    root = Path(__file__).resolve().parents[2]
    named = set()
    for document in ("README.md", "docker-compose.yml"):
        named |= set(re.findall(r"STRATUM_[A-Z_]+[A-Z]", (root / document).read_text()))
    named -= {name for name in named if name.startswith(("STRATUM_TEST_", "STRATUM_BENCH_"))}
    assert named - set(DEFAULTS) == set()
    environment = {name: "from-env" for name in named}
    config = build_config({}, environ=environment)
    assert all(config[name] == "from-env" for name in named)


def test_the_read_side_follows_every_event_store():
    """The gateway does not import the wiring, so it names the feeds it follows itself: every service's."""
    from gateway.readside import FOLLOWED_SERVICES
    from runtime.topology import APPLICATIONS, FOLLOWED

    assert FOLLOWED_SERVICES == FOLLOWED == tuple(APPLICATIONS)

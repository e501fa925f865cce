"""runtime.rebuild imports a service's code only when its event store holds something to replay: an empty log (or
one the read side already applied) is read with one query, and a store it cannot read is replayed as before."""
import os
import sqlite3

import pytest

from runtime import rebuild as rebuild_module
from runtime.config import build_config
from runtime.migrate import migrate
from runtime.topology import APPLICATIONS, load
from services.orders.application import Orders
from shared.settings import event_store_env
from tests.kit.apps import command_ctx


@pytest.fixture
def config(tmp_path):
    config = build_config({"STRATUM_DATA_DIR": str(tmp_path)})
    migrate(config)
    return config


def test_only_the_services_with_events_are_imported_and_replayed(config, monkeypatch):
    app = Orders(env=event_store_env(config, "orders"))
    try:
        order = app.create("order", {"name": "the only order"}, command_ctx())
    finally:
        app.close()
    with_events = {"orders", "materials"}  # the migrate step records materials' lot index marker
    for name in APPLICATIONS:
        assert rebuild_module.has_news(event_store_env(config, name), name, 0) == (name in with_events), name
    assert not rebuild_module.has_news(event_store_env(config, "orders"), "orders", 10_000)  # applied already
    loaded = []
    monkeypatch.setattr(rebuild_module, "load", lambda dotted: loaded.append(dotted) or load(dotted))
    events, _ = rebuild_module.rebuild(config, report=lambda line: None)
    assert loaded == [APPLICATIONS[name] for name in APPLICATIONS if name in with_events] and events > 0
    store = rebuild_module.read_store(config)
    try:
        assert store.document(order["uri"], None)["name"] == "the only order"
    finally:
        store.dispose()


def test_a_store_that_cannot_be_read_is_replayed(tmp_path):
    missing = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "absent.sqlite")}
    assert rebuild_module.has_news(missing, "orders", 0)
    assert not os.path.exists(missing["SQLITE_DBNAME"])  # looked at, not created
    sqlite3.connect(tmp_path / "other.sqlite").close()  # a file without the table
    assert rebuild_module.has_news(dict(missing, SQLITE_DBNAME=str(tmp_path / "other.sqlite")), "orders", 0)
    assert rebuild_module.has_news({"PERSISTENCE_MODULE": "eventsourcing.popo"}, "orders", 0)

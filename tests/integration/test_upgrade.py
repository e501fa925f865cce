"""Stores written by earlier releases load with this code, on SQLite and on PostgreSQL: every aggregate, the whole
feed, and a read side rebuilt from zero identical to the one the earlier release built (fixtures and how they were
recorded: tests/fixtures/upgrade/README.md)."""
import json
import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic
from sqlalchemy import select

from gateway.readside import FOLLOWED_SERVICES
from gateway.readstore import ReadStore
from gateway.tables import credentials, documents
from services.files.application import Files
from services.identity.application import Identity
from services.materials.application import Materials
from services.orders.application import Orders
from services.production.application import Production
from runtime.config import build_config
from shared.settings import event_store_env
from shared.eventstore import create_store
from shared.resource import Resource
from shared.topics import registered

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent.parent / "fixtures" / "upgrade"
APPLICATIONS = {"identity": Identity, "orders": Orders, "files": Files, "production": Production,
                "materials": Materials}
RELEASES = {  # fixture directory → the services it holds stores of
    "v0.1.0-25a73e5": ("identity", "orders", "files", "production", "materials"),
    "generic-comment-afcec25": ("orders",),
    "generic-model-d26e898": ("files",),
}


# Read views of the gateway that v0.1.0 did not have (gateway.production_views, and its hidden run_status documents)
VIEWS_SINCE_V0_1_0 = {"workstation", "flat-piece", "pieces-by-run", "line-items-by-run", "run-material",
                      "piece-actuals", "line-item-actuals", "order-run-status", "line-item-available-for-run",
                      "run-schedule"}


def stored_rows(path):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT originator_id, originator_version, topic, state FROM stored_events "
                            "ORDER BY rowid").fetchall()


@pytest.fixture(params=["sqlite", "postgres"])
def open_release(request, tmp_path):
    """Opens a release's store of one service with this code: the SQLite file as the release left it, or the same
    stored events (same topics, same bytes, same order) in a fresh PostgreSQL schema made by the migrate step."""
    opened = []
    config = build_config({"STRATUM_DATA_DIR": str(tmp_path / "data")})
    if request.param == "postgres":
        config["STRATUM_POSTGRES_DSN"] = request.getfixturevalue("postgres_dsn")

    def open_store(release, service):
        app_cls = APPLICATIONS[service]
        source = FIXTURES / release / f"{service}.sqlite"
        if request.param == "sqlite":
            copy = tmp_path / release / source.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy)  # opening a store switches it to WAL: never touch the fixture itself
            app = app_cls(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(copy)})
        else:
            env = dict(event_store_env(config, service), POSTGRES_SCHEMA=f"{service}_{uuid.uuid4().hex[:8]}")
            create_store(env, app_cls)
            app = app_cls(env=env)
            app.recorder.insert_events([StoredEvent(originator_id=r[0], originator_version=r[1], topic=r[2],
                                                    state=bytes(r[3])) for r in stored_rows(source)])
        opened.append(app)
        return app

    yield open_store
    for app in opened:
        app.close()


def full_feed(app):
    events, start = [], 1
    while True:
        batch = app.feed(start, 500)
        events += batch["events"]
        if batch["complete"]:
            return events
        start = batch["last"] + 1


@pytest.mark.parametrize("release", RELEASES)
def test_every_stored_aggregate_and_event_of_an_earlier_release_loads(open_release, release):
    for service in RELEASES[release]:
        app = open_release(release, service)
        rows = stored_rows(FIXTURES / release / f"{service}.sqlite")
        for topic in {row[2] for row in rows}:
            assert registered(topic) is resolve_topic(topic) is not None, f"no alias for the stored topic {topic}"
        for originator_id in {row[0] for row in rows}:
            aggregate = app.repository.get(originator_id)
            assert aggregate.version == max(r[1] for r in rows if r[0] == originator_id)
            if isinstance(aggregate, Resource):
                assert aggregate.resource in app.aggregates and isinstance(aggregate, app.aggregates[aggregate.resource])


@pytest.mark.parametrize("release", RELEASES)
def test_the_feed_of_an_earlier_release_is_served_with_the_same_facts_and_names(open_release, release):
    recorded = json.loads((FIXTURES / release / "feeds.json").read_text())["feeds"]
    for service in RELEASES[release]:
        served = full_feed(open_release(release, service))
        then = recorded[service]["events"]
        assert [_facts(e) for e in served] == [_facts(e) for e in then]
        for now_event, then_event in zip(served, then):
            # names are never lost; an event is now also named by its kind (ModelUpdated ⊂ ModelFileReceived)
            assert set(then_event.get("names", [])) <= set(now_event["names"]), now_event  # (0.0 had none)
            assert now_event["event"].startswith(f"{service}/{now_event['resource']}/")


@pytest.mark.parametrize("order", ["as recorded", "as the projector follows"])
def test_a_read_side_rebuilt_from_an_earlier_release_equals_the_one_it_built(open_release, tmp_path, order):
    """v0.1.0 built its read side with the events interleaved as they were recorded; a rebuild applies one feed after
    another, in any order (the projector's own is identity, orders, production, …): views joining several feeds
    (a flat line item reads its material's and workflow's names) must converge to the same rows either way."""
    release = "v0.1.0-25a73e5"
    expected = json.loads((FIXTURES / release / "expected_read_side.json").read_text())
    services = expected["applied_in_order"] if order == "as recorded" else [
        s for s in FOLLOWED_SERVICES if s in expected["applied_in_order"]]
    store = ReadStore("sqlite:///" + str(tmp_path / "readside.sqlite"))
    store.create_tables()
    try:
        for service in services:
            events = full_feed(open_release(release, service))
            store.apply_feed(service, events, events[-1]["position"])
        rebuilt = _read_side(store)
    finally:
        store.dispose()
    # views added after the release derive rows from its feeds that it never built (its printer and shipping station
    # are workstations now): those are left out, everything it did build must be equal
    rebuilt["documents"] = [row for row in rebuilt["documents"] if row["resource"] not in VIEWS_SINCE_V0_1_0]
    for table in ("documents", "credentials"):
        want = sorted(_canonical(_as_read(row)) for row in expected[table])
        assert sorted(_canonical(_as_read(row)) for row in rebuilt[table]) == want, table
    # Every /event/ item, by uuid, all its columns equal. Compared as values, not as JSON text: the earlier release
    # kept each value in a JSON column of its own, where SQLite's numeric affinity turned a float like 1.0 into the
    # integer 1; inside a change's list it stays 1.0 (as PostgreSQL kept it anyway). 1 == 1.0, but not as text.
    want = {row["uuid"]: row for row in expected["audit_events"]}
    got = {row["uuid"]: row for row in rebuilt["audit_events"]}
    assert len(got) == len(rebuilt["audit_events"]) and got.keys() == want.keys()
    assert [uuid for uuid in want if got[uuid] != want[uuid]] == []


def _facts(event):
    """What the read side projects from a feed event (its names and topic are checked apart)."""
    return {k: v for k, v in event.items() if k not in ("names", "event")}


def _read_side(store):
    with store.engine.connect() as conn:
        return {
            "documents": [dict(r._mapping) for r in conn.execute(select(documents))],
            # the audit log as /event/ shows it: one item per changed field, with the columns (uuid included) of
            # the per-field table the earlier release kept (this one stores a change once: gateway.tables.audit_log)
            "audit_events": store.audit_items(),
            "credentials": [dict(r._mapping) for r in conn.execute(select(credentials))],
        }


def _as_read(row):
    """A documents row as it reads: a null field and a missing one are the same (the release stored its nulls, this
    one leaves them out: gateway.batch.stored)."""
    if not isinstance(row.get("doc"), dict):
        return row
    return dict(row, doc={key: value for key, value in row["doc"].items() if value is not None})


def _canonical(row):
    return json.dumps(row, sort_keys=True, default=str)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_read_database_of_an_earlier_release_is_migrated_with_every_event_uuid(request, tmp_path, backend):
    """v0.1.0's read database kept the audit log as one audit_events row per field; the migrate step converts it
    into this release's audit log: the same /event/ items (uuid, values and all), and the old table is gone."""
    from sqlalchemy import inspect

    from gateway.readstore import read_store_url
    from gateway.tables import READ_SCHEMA, legacy_audit_events, legacy_metadata

    expected = json.loads((FIXTURES / "v0.1.0-25a73e5" / "expected_read_side.json").read_text())["audit_events"]
    config = build_config({"STRATUM_DATA_DIR": str(tmp_path / "data")})
    if backend == "postgres":
        config["STRATUM_POSTGRES_DSN"] = request.getfixturevalue("postgres_dsn")
    store = ReadStore(read_store_url(config))
    try:
        if backend == "postgres":
            with store.engine.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{READ_SCHEMA}"')
        legacy_metadata.create_all(store.engine)  # the table as 0.1.0 made it, rows in the order it wrote them
        with store.engine.begin() as conn:
            conn.execute(legacy_audit_events.insert(), expected)
        store.create_tables()  # runtime.migrate
        migrated = store.audit_items()
        assert not inspect(store.engine).has_table("audit_events", schema=None if backend == "sqlite" else READ_SCHEMA)
    finally:
        store.dispose()
    assert [row["uuid"] for row in migrated] == [row["uuid"] for row in expected]
    assert migrated == expected


def test_a_location_of_an_earlier_release_has_no_settings_until_its_next_change(open_release):
    """materials.md §3.19: v0.1.0 stored locations without their location-settings. Such a location loads as a
    Location, counts as every switch off (no row: what the notifications service reads), and its next PUT makes
    its row."""
    from services.materials.locations import Location, settings_id

    app = open_release("v0.1.0-25a73e5", "materials")
    [location_id] = {row[0] for row in stored_rows(FIXTURES / "v0.1.0-25a73e5" / "materials.sqlite")
                     if row[2] == "shared.generic:Location.Created"}
    location = app.repository.get(location_id)
    assert isinstance(location, Location)
    path, admin = f"/location/{location.id}/", {"platform_admin": True}
    assert app.referencing("location-settings", "location", path, admin) == []
    app.update("location", str(location_id), {"phone": "+1 555 0100"}, dict(admin, bureau=location.bureau))
    [found] = app.referencing("location-settings", "location", path, admin)
    assert found["uri"] == f"/location-settings/{settings_id(location.id)}/"
    assert not any(value for key, value in found["fields"].items() if key.startswith("notification_"))
    assert app.repository.get(settings_id(location.id)).bureau == location.bureau


def test_the_genealogy_projection_of_an_earlier_release_is_filled_once(open_release):
    """The first migrate step after the upgrade fills the materials service's stored genealogy projection from the
    whole log (services.materials.genealogy_projection.fill); the next one reads nothing of it again."""
    from services.materials.genealogy_projection import fill
    app = open_release("v0.1.0-25a73e5", "materials")
    assert fill(app) == app.recorder.max_notification_id() > 0
    assert fill(app) == 0

"""Compact list keys (gateway.indexes): ties broken by the document's uuid in the same order as by its path, on a
read side built from the v0.1.0 fixture's feeds (every resource and view it has); and a read side whose list keys
have the layout of the release before (bureau and path text in every index entry) migrated by the migrate step,
its lists answering as before."""
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from gateway import indexes, listing
from gateway.tables import READ_SCHEMA, documents
from shared import catalogue
from tests.kit.readside import empty_read_store

pytestmark = pytest.mark.integration

RELEASE = Path(__file__).parent.parent / "fixtures" / "upgrade" / "v0.1.0-25a73e5"
CANONICAL = re.compile(r"/(?P<resource>[^/]+)/(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    read_store = empty_read_store(request, tmp_path)
    recorded = json.loads((RELEASE / "feeds.json").read_text())
    for service in json.loads((RELEASE / "expected_read_side.json").read_text())["applied_in_order"]:
        events = recorded["feeds"][service]["events"]
        read_store.apply_feed(service, events, events[-1]["position"])
    assert not read_store.parked()
    yield read_store
    if not read_store.is_sqlite:  # the module's database is shared by both tests
        with read_store.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{READ_SCHEMA}" CASCADE')
    read_store.dispose()


def _listed(store):
    """{resource: [(path, id) in id order]} of every resource with list keys."""
    found = {}
    with store.engine.connect() as conn:
        for spec in indexes.listable():
            keys = indexes.keys_table(spec.name)
            rows = conn.execute(keys.select().with_only_columns(keys.c.path, keys.c.id).order_by(keys.c.id)).all()
            if rows:
                found[spec.name] = [tuple(row) for row in rows]
    return found


def test_every_listed_document_is_at_its_resource_and_uuid_so_uuid_order_is_path_order(store):
    listed = _listed(store)
    assert {"order", "line-item", "flat-order", "flat-line-item", "users", "material"} <= listed.keys()
    for resource, rows in listed.items():
        for path, uuid in rows:
            match = CANONICAL.fullmatch(path)
            assert match and match["resource"] == resource and match["uuid"] == uuid, (resource, path, uuid)
        assert [path for path, _ in rows] == sorted(path for path, _ in rows), resource  # byte order, as C collates


def _old_layout(store):
    """The list keys as the release before kept them: bureau and path text in every index entry, no tenants."""
    pg = not store.is_sqlite
    q = (lambda name: f'"{READ_SCHEMA}"."{name}"') if pg else (lambda name: f'"{name}"')
    with store.engine.begin() as conn:
        for spec in indexes.listable():
            keys = indexes.keys_table(spec.name)
            fields = list(indexes.indexed_fields(spec))
            columns = ", ".join(f'k."{indexes.column_name(f)}"' for f in fields)
            conn.exec_driver_sql(f'CREATE TABLE {q("old")} AS SELECT k.path, d.bureau, {columns} '
                                 f'FROM {q(keys.name)} k JOIN {q("documents")} d ON d.path = k.path')
            conn.exec_driver_sql(f"DROP TABLE {q(keys.name)}")
            conn.exec_driver_sql(f'CREATE TABLE {q(keys.name)} (path VARCHAR(200) PRIMARY KEY, bureau VARCHAR(200), '
                                 + ", ".join(f'"{indexes.column_name(f)}"' + (" " + str(keys.c[indexes.column_name(f)]
                                             .type.compile(conn.dialect)) if pg else "") for f in fields) + ")")
            conn.exec_driver_sql(f'INSERT INTO {q(keys.name)} SELECT * FROM {q("old")}')
            conn.exec_driver_sql(f'DROP TABLE {q("old")}')
            for field in fields:
                conn.exec_driver_sql(f'CREATE INDEX "{indexes._index_name(keys.name, field)}" ON {q(keys.name)} '
                                     f'(bureau, "{indexes.column_name(field)}", path)')
        conn.exec_driver_sql(f"UPDATE {q('list_keys_schema')} SET digest = 'the release before'")
        conn.exec_driver_sql(f"DROP TABLE {q('tenants')}")


def _pages(store, resource, bureau, query_string):
    spec = catalogue.resource(resource)
    return [row.path for row in store.documents(spec, bureau, listing.parse(spec, query_string)).rows]


def test_list_keys_of_the_release_before_are_rebuilt_compact_by_the_migrate_step(store):
    with store.engine.connect() as conn:
        bureaus = list(conn.execute(select(documents.c.bureau).distinct().where(
            documents.c.resource == "order", documents.c.bureau.is_not(None))).scalars())
    assert bureaus
    queries = [(resource, bureau, query) for resource in ("order", "flat-order", "line-item", "material")
               for bureau in bureaus + [None]
               for query in ("", "page[limit]=2&page[offset]=1", f"sort=-{sorted(catalogue.resource(resource).fields)[0]}")]
    before = [_pages(store, *asked) for asked in queries]
    listed = _listed(store)
    assert sum(map(len, before)) > 20

    _old_layout(store)
    with store.engine.connect() as conn:
        assert "id" not in {c["name"] for c in inspect(conn).get_columns(
            "lk_order", schema=None if store.is_sqlite else READ_SCHEMA)}
    store.create_tables()  # the migrate step (runtime.migrate)

    assert _listed(store) == listed
    assert [_pages(store, *asked) for asked in queries] == before
    # upkeep works on the new layout, a new bureau included
    event = {"position": 10_000, "application": "orders", "resource": "order", "version": 1,
             "uuid": "ffffffff-0000-4000-8000-000000000000", "event": "orders/order/Created", "user": None,
             "timestamp": "2026-11-30T00:00:00+00:00", "kind": "created",
             "bureau": "/bureau/33333333-3333-3333-3333-333333333333/", "fields": {"name": "after"}, "names": []}
    store.apply_feed("orders", [event], 10_000)
    assert _pages(store, "order", event["bureau"], "") == ["/order/ffffffff-0000-4000-8000-000000000000/"]

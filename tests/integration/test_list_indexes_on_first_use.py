"""The list keys' indexes built on a field's first use (gateway.list_index_builds), on SQLite and PostgreSQL: a LIST
on a field without an index is answered at once and builds it, the next LIST plans on it; two builders at once
build it once; an index a crash left invalid is dropped and built again; the migrate step and a rebuild's end build
exactly the always-indexed fields' indexes and the recorded ones."""
import threading

import pytest
from sqlalchemy import text

from gateway import indexes, listing
from gateway.readstore import READ_SCHEMA, ReadStore
from shared import catalogue
from tests.integration.test_list_indexes import BUREAU, executed, fresh_schema, order_event
from tests.kit.readside import empty_read_store

SPEC = catalogue.resource("order")
ORDERS = 60


def fields_of(number):
    return {"name": f"order-{number:04d}", "status": "new", "region": ["north", "south", "east"][number % 3],
            "country": ["fr", "de"][number % 2], "customer_name": f"customer-{number % 4}",
            "due_date": f"2026-12-{1 + number % 28:02d}T00:00:00+00:00", "callback_url": f"https://x/{number}"}


def feed():
    return [order_event(n + 1, n, fields=fields_of(n)) for n in range(ORDERS)]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request, tmp_path_factory):
    read_store = empty_read_store(request, tmp_path_factory.mktemp("first-use"))
    read_store.apply_feed("orders", feed(), ORDERS)
    yield read_store
    read_store.dispose()


def page(store, query_string):
    return store.documents(SPEC, BUREAU, listing.parse(SPEC, query_string))


def built(store, resource="order"):
    """{field} of `resource` whose list-key index exists (and, on PostgreSQL, is valid)."""
    table = indexes.keys_table(resource).name
    with store.engine.connect() as conn:
        if store.is_sqlite:
            names = {row[0] for row in conn.exec_driver_sql(
                f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}'")}
        else:
            names = {row[0] for row in conn.execute(text(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON "
                "t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = :schema AND "
                "t.relname = :table AND i.indisvalid"), {"schema": READ_SCHEMA, "table": table})}
    return {field for field in indexes.indexed_fields(catalogue.resource(resource))
            if indexes.index_name(resource, field) in names}


def recorded(store):
    with store.engine.connect() as conn:
        return {(row.resource, row.field): row.state for row in conn.execute(indexes.used_indexes.select())}


def plan_of(store, statement, parameters):
    with store.engine.connect() as conn:
        if store.is_sqlite:
            fresh_schema(conn)
            return "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                      parameters).all())
        conn.exec_driver_sql(f'ANALYZE "{READ_SCHEMA}"."{indexes.keys_table("order").name}"')
        conn.exec_driver_sql("SET enable_seqscan = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters).all())


def expected_paths(predicate):
    return sorted(f"/order/{n:08d}-0000-4000-8000-000000000000/" for n in range(ORDERS) if n % 10 != 9 and
                  predicate(fields_of(n)))


def test_only_the_always_indexed_fields_have_an_index_from_the_start(store):
    """`created` (the default sort) and nothing else of an order before any LIST used a field; a line item also has
    its default filter's (`type`), an API token its owner's (`user_uuid`)."""
    assert built(store) == {"created"}
    assert indexes.always_indexed(catalogue.resource("line-item")) == {"created", "type"}
    assert indexes.always_indexed(catalogue.resource("api_tokens")) == {"created", "user_uuid"}


def test_a_field_s_first_use_is_answered_at_once_and_builds_its_index_which_the_next_list_uses(store, monkeypatch):
    """The first LIST filtering on `customer_name` and sorting on `due_date` is answered in full while their indexes
    are not there yet (the builder held); once built, the same LIST's statement plans on one of them."""
    builds = store.list_index_builds
    release = threading.Event()
    real = builds.build
    monkeypatch.setattr(builds, "build", lambda *args: release.wait(60) and real(*args))
    listed = page(store, "filter[customer_name]=customer-1&sort=-due_date&page[limit]=100")
    assert sorted(row.path for row in listed.rows) == expected_paths(lambda f: f["customer_name"] == "customer-1")
    assert [row.doc["due_date"] for row in listed.rows] == sorted((row.doc["due_date"] for row in listed.rows),
                                                                  reverse=True)
    assert not {"customer_name", "due_date"} & built(store)  # answered without them
    release.set()
    builds.settle()
    assert {"customer_name", "due_date"} <= built(store)
    assert {key: state for key, state in recorded(store).items() if key[1] in ("customer_name", "due_date")} == {
        ("order", "customer_name"): "built", ("order", "due_date"): "built"}
    statement, parameters = executed(store, monkeypatch, lambda: page(
        store, "filter[customer_name]=customer-2&sort=-due_date&page[limit]=5"))[0]
    shown = plan_of(store, statement, parameters)
    assert indexes.index_name("order", "customer_name") in shown or \
        indexes.index_name("order", "due_date") in shown, shown


def test_two_builders_at_once_build_an_index_once(store):
    """Two gateway processes (two read stores on one database) asked for the same index at the same moment, and
    for another of the same table: each build ends without error, each index is there once, recorded once."""
    other = ReadStore(store.engine.url.render_as_string(hide_password=False))
    try:
        start = threading.Barrier(3)
        errors = []

        def build(builder, *fields):
            start.wait()
            try:
                for field in fields:
                    builder.build("order", field)
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=build, args=(store.list_index_builds, "region")),
                   threading.Thread(target=build, args=(other.list_index_builds, "region")),
                   threading.Thread(target=build, args=(other.list_index_builds, "country"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == [] and not any(thread.is_alive() for thread in threads)
    finally:
        other.dispose()
    assert {"region", "country"} <= built(store)
    assert recorded(store)[("order", "region")] == recorded(store)[("order", "country")] == "built"
    assert sorted(r.path for r in page(store, "filter[region]=east&page[limit]=100").rows) == \
        expected_paths(lambda f: f["region"] == "east")


def _leave_invalid(store, field):
    """What a CREATE INDEX CONCURRENTLY cut short leaves: an invalid index of the field's name (here, a unique
    index that failed on duplicates), present in the catalogue, never used by the planner."""
    name = indexes.index_name("order", field)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        with pytest.raises(Exception, match="could not create unique index"):
            conn.exec_driver_sql(f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON "{READ_SCHEMA}".'
                                 f'"{indexes.keys_table("order").name}" (bureau)')
        assert name in indexes.invalid_list_indexes(conn)


def test_an_index_a_crash_left_invalid_is_dropped_and_built_again(store):
    """PostgreSQL: the first use of a field whose index a crashed build left invalid (IF NOT EXISTS alone would keep
    it, unused, for ever) drops it and builds it; so does the migrate step for a recorded field, but not while a
    builder holds the field's lock (then the invalid index is one being built right now)."""
    if store.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite builds an index in a transaction, never leaves one invalid")
    _leave_invalid(store, "external_id")
    page(store, "filter[external_id]=x")
    store.list_index_builds.settle()
    assert "external_id" in built(store)
    with store.engine.connect() as conn:
        assert "f_external_id" in conn.execute(text("SELECT pg_get_indexdef(to_regclass(:name))"), {
            "name": f'"{READ_SCHEMA}"."{indexes.index_name("order", "external_id")}"'}).scalar()

    _leave_invalid(store, "currency")
    with store.engine.begin() as conn:
        conn.execute(indexes.used_indexes.insert().values(resource="order", field="currency", state="requested"))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": indexes.build_lock_key("order", "currency")})
        store.create_tables()  # a builder holds it: left to that builder
        assert "currency" not in built(store)
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": indexes.build_lock_key("order", "currency")})
    store.create_tables()
    assert "currency" in built(store)
    assert recorded(store)[("order", "currency")] == "built"


def test_the_migrate_step_and_a_rebuild_build_exactly_the_recorded_indexes(store, monkeypatch):
    """A rebuild's bulk load and the migrate step after a catalogue change (the list keys made again) build the
    always-indexed fields' indexes and those some LIST used, and no other: a field never listed on has none. With
    STRATUM_LIST_INDEXES=all, every field's, as the releases before built them."""
    page(store, "sort=country")
    store.list_index_builds.settle()
    used = {field for (resource, field) in recorded(store) if resource == "order"}
    assert "country" in used and "callback_url" not in used
    expected = {"created"} | used
    assert built(store) == expected

    store.reset()
    store.begin_bulk_load()
    store.apply_feed("orders", feed(), ORDERS)
    store.end_bulk_load()
    assert built(store) == expected
    assert sorted(r.path for r in page(store, "filter[country]=de&page[limit]=100").rows) == \
        expected_paths(lambda f: f["country"] == "de")

    def catalogue_changed():
        with store.engine.begin() as conn:  # what a new catalogue field does: the resource's digest differs
            conn.execute(indexes.schema_versions.update().where(indexes.schema_versions.c.resource == "order")
                         .values(digest="an earlier catalogue"))
        store.create_tables()

    catalogue_changed()
    assert built(store) == expected
    monkeypatch.setenv(indexes.LIST_INDEXES, "all")
    catalogue_changed()
    assert built(store) == set(indexes.indexed_fields(SPEC))
    assert sorted(r.path for r in page(store, "filter[callback_url]=https://x/7").rows) == expected_paths(
        lambda f: f["callback_url"] == "https://x/7")


def test_a_build_asked_during_a_bulk_load_waits_for_its_end(store, monkeypatch):
    """PostgreSQL: a first use while a rebuild's bulk load runs records the field and waits for the load's end
    (which builds every recorded index) before it builds: a CREATE INDEX CONCURRENTLY beside the end's transaction
    would wait for it while the end's DROP INDEX waited for the build, and the deadlock detector would end one."""
    if store.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite's builds and the load's end take turns on the one writer")
    from gateway import list_index_builds

    waited = []

    def end_the_load(seconds):  # the builder's wait: the load ends meanwhile
        waited.append(seconds)
        store.end_bulk_load()

    store.begin_bulk_load()
    monkeypatch.setattr(list_index_builds, "_pause", end_the_load)
    store.list_index_builds.build("order", "ip_sensitivity")
    assert waited and not store.bulk_loading()
    assert "ip_sensitivity" in built(store)
    assert recorded(store)[("order", "ip_sensitivity")] == "built"


def test_an_index_built_after_an_analyze_gets_its_statistics(store, monkeypatch):
    """SQLite: an index without statistics beside analyzed ones looks selective to the planner. Built on first use
    after an ANALYZE, a (bureau, field, id) index then served the bureau's first page instead of the `created` index,
    sorting the whole bureau; with its statistics, the first page stays on `created`."""
    if not store.is_sqlite:
        pytest.skip("SQLite only: PostgreSQL plans a plain column's index on the table's statistics")
    position = store.position("orders")
    more = [order_event(position + i + 1, 1000 + i, fields=fields_of(i)) for i in range(3000)]  # enough rows that
    store.apply_feed("orders", more, position + len(more))  # the statistics say the bureau is most of the table
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    page(store, "filter[order_type]=r-d")
    store.list_index_builds.settle()
    assert "order_type" in built(store)
    statement, parameters = executed(store, monkeypatch, lambda: page(store, "page[limit]=5&page[offset]=1"))[0]
    shown = plan_of(store, statement, parameters)
    chosen = next(line for line in shown.splitlines() if "SEARCH lk_order" in line)  # the page's rows (then count)
    assert indexes.index_name("order", "created") in chosen, shown

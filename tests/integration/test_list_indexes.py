"""LIST on the read store, on SQLite and PostgreSQL: every filter and sort of a resource planned on an index of its
list keys (gateway.indexes), keyset pages equal to offset pages, counts exact up to the bound and flagged past it,
bad cursors refused."""

import functools
import re
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from gateway import cursors, indexes, listing, readstore, shapes, totals
from shared import catalogue
from shared.errors import InvalidPayload
from tests.kit.readside import empty_read_store

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
OTHER = "/bureau/22222222-2222-2222-2222-222222222222/"
ORDERS = 120


def order_event(position, number, kind="created", fields=None):
    created = f"2026-11-30T00:{number % 7:02d}:00+00:00"  # ties on purpose: the path breaks them
    fields = fields if fields is not None else {
        "name": f"order-{number:04d}", "status": ["new", "cancelled", "confirmed"][number % 3],
        "priority": None if number % 5 == 0 else number % 11, "quote_required": number % 2 == 0}
    return {"position": position, "application": "orders", "resource": "order",
            "uuid": f"{number:08d}-0000-4000-8000-000000000000",
            "version": 1, "event": "orders/order/Created", "user": None, "timestamp": created, "kind": kind,
            "bureau": OTHER if number % 10 == 9 else BUREAU, "fields": fields, "names": ["OrderCreated"]}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request, tmp_path_factory):
    read_store = empty_read_store(request, tmp_path_factory.mktemp("lists"))
    feed = [order_event(n + 1, n) for n in range(ORDERS)]
    feed.append(order_event(ORDERS + 1, 3, "updated", {"name": "renamed", "priority": 99}))
    feed.append(order_event(ORDERS + 2, 4, "deleted", {}))
    read_store.apply_feed("orders", feed, ORDERS + 2)
    yield read_store
    read_store.dispose()


SPEC = catalogue.resource("order")


def page(store, query_string, bureau=BUREAU):
    return store.documents(SPEC, bureau, listing.parse(SPEC, query_string))


def walk_offsets(store, query_string, limit):
    paths, offset = [], 0
    while True:
        rows = page(store, f"{query_string}&page[limit]={limit}&page[offset]={offset}").rows
        paths += [row.path for row in rows]
        if len(rows) < limit:
            return paths
        offset += limit


def walk_keyset(store, query_string, limit):
    paths, after = [], None
    while True:
        current = page(store, f"{query_string}&page[limit]={limit}" + (f"&page[after]={after}" if after else ""))
        paths += [row.path for row in current.rows]
        if current.next is None:
            return paths
        after = current.next


@pytest.mark.parametrize("query_string", [
    "", "sort=-created", "sort=priority", "sort=-priority", "filter[status]=new&sort=-created",
    "sort=name", "sort=status,-priority", "filter[priority]>3&sort=-quote_required", "sort=line_items"])
def test_keyset_pages_concatenate_to_the_offset_pages(store, query_string):
    everything = [row.path for row in page(store, query_string + "&page[limit]=1000").rows]
    assert len(everything) == len(set(everything)) > 10
    for limit in (1, 7, 50):
        assert walk_offsets(store, query_string, limit) == everything
        assert walk_keyset(store, query_string, limit) == everything


def test_lists_see_updates_deletes_and_bureaus(store):
    renamed = page(store, "filter[name]=renamed")
    assert [row.doc["priority"] for row in renamed.rows] == [99] and renamed.total == 1
    assert page(store, "filter[name]=order-0004").total == 0  # deleted
    assert page(store, "filter[name]=order-0009").total == 0  # another bureau's
    assert page(store, "filter[name]=order-0009", bureau=OTHER).total == 1


def test_lists_of_one_shape_share_their_statements_and_answer_their_own_values(store):
    """gateway.shapes: a LIST's statements are built once per shape (filters, sort, kind of page) and run again
    with the next LIST's values: its filter values, bureau, page size and offset, and its cursor."""
    store._shapes = shapes.Shapes()
    names = lambda query_string, bureau=BUREAU: [row.doc["name"] for row in page(store, query_string, bureau).rows]
    for number in (1, 2, 5, 8):
        assert names(f"filter[name]=order-{number:04d}") == [f"order-{number:04d}"]
    assert names("filter[name]=order-0009") == [] and names("filter[name]=order-0009", OTHER) == ["order-0009"]
    assert sorted(names("filter[name]=order-0001,order-0005,order-0009")) == ["order-0001", "order-0005"]
    assert len(store._shapes._kept) == 1  # one shape so far: a name filter (of any number of names), any bureau
    new = [name for name in names("filter[status]=new&page[limit]=1000")]
    for limit, offset in ((3, 0), (5, 4), (2, len(new) - 1), (4, len(new) + 10)):
        listed = page(store, f"filter[status]=new&page[limit]={limit}&page[offset]={offset}")
        assert ([row.doc["name"] for row in listed.rows], listed.total) == (new[offset:offset + limit], len(new))
    first = page(store, "filter[status]=new&sort=-name&page[limit]=4")
    second = page(store, f"filter[status]=new&sort=-name&page[limit]=4&page[after]={first.next}")
    third = page(store, f"filter[status]=new&sort=-name&page[limit]=4&page[after]={second.next}")
    by_name = sorted(new, reverse=True)
    assert [[row.doc["name"] for row in p.rows] for p in (first, second, third)] == [
        by_name[:4], by_name[4:8], by_name[8:12]]
    assert len(store._shapes._kept) == 4  # and the status filter's pages, first pages by name, keyset pages by name


def test_lists_of_two_shapes_with_one_count_are_both_estimated_past_the_bound(store, monkeypatch):
    """Two sorts of one filter keep two shapes whose counts (and estimates) are the same statement."""
    monkeypatch.setattr(readstore, "COUNT_BOUND", 40)
    for query_string in ("page[limit]=5", "sort=name&page[limit]=5", "sort=-name&page[limit]=5&page[offset]=3"):
        listed = page(store, query_string)
        assert listed.estimate is True and listed.total > 40 and len(listed.rows) == 5


def test_counts_are_exact_up_to_the_bound_then_flagged(store, monkeypatch):
    visible = len([n for n in range(ORDERS) if n % 10 != 9 and n != 4])
    exact = page(store, "page[limit]=5")
    assert (exact.total, exact.estimate) == (visible, False)
    monkeypatch.setattr(readstore, "COUNT_BOUND", 40)
    capped = page(store, "page[limit]=5")
    assert capped.estimate is True and capped.total > 40
    small = page(store, "filter[status]=new&page[limit]=5")
    new = len([n for n in range(ORDERS) if n % 3 == 0 and n % 10 != 9 and n != 4])
    assert new <= 40 and (small.total, small.estimate) == (new, False)
    last = page(store, f"page[limit]=5&page[offset]={visible - 2}")  # the last page knows its total
    assert (last.total, last.estimate, len(last.rows)) == (visible, False, 2)


def test_a_keyset_page_of_a_list_past_the_bound_carries_the_estimate_without_counting(store, monkeypatch):
    """The first page's estimate rides in its cursor; the pages after it answer it again, flagged, and run no count
    (nor the planner's estimate): only their page statement. Under the bound every page counts exactly."""
    monkeypatch.setattr(readstore, "COUNT_BOUND", 40)
    first = page(store, "sort=name&page[limit]=5")
    assert first.estimate is True and first.total > 40
    pages = []
    ran = executed(store, monkeypatch,
                   lambda: pages.append(page(store, f"sort=name&page[limit]=5&page[after]={first.next}")))
    second = pages[0]
    assert (second.total, second.estimate, len(second.rows)) == (first.total, True, 5)
    assert len(ran) == 1 and "count(" not in ran[0][0].lower() and "explain" not in ran[0][0].lower()
    assert [r.path for r in second.rows] == walk_offsets(store, "sort=name", 1000)[5:10]
    third = page(store, f"sort=name&page[limit]=5&page[after]={second.next}")  # carried on
    assert (third.total, third.estimate) == (first.total, True)
    monkeypatch.setattr(readstore, "COUNT_BOUND", 10_000)
    exact = page(store, "sort=name&page[limit]=5")
    after = page(store, f"sort=name&page[limit]=5&page[after]={exact.next}")
    assert (after.total, after.estimate) == (exact.total, False) and exact.total <= 120
    hand_made = cursors.encode(("order", (("name", False),), "id"), cursors.decode(exact.next, (
        "order", (("name", False),), "id"), 3), 7)  # an "estimate" under the bound: counted anyway
    assert (page(store, f"sort=name&page[limit]=5&page[after]={hand_made}").total, after.estimate) == (exact.total, False)


def test_an_offset_page_of_a_list_estimated_lately_answers_the_estimate_without_counting(store, monkeypatch):
    """gateway.totals: a list found past the bound keeps its estimate ESTIMATE_TTL seconds; its pages by offset in
    that time run only their page statement (no count, no planner's estimate) and answer it again, flagged. Another
    filter value is another list; the last page still knows its exact total; after the TTL the list is counted."""
    now = [1000.0]
    store._estimates = totals.Estimates(ttl=10.0, clock=lambda: now[0])
    monkeypatch.setattr(readstore, "COUNT_BOUND", 40)
    first = page(store, "sort=-name&page[limit]=5")
    assert first.estimate is True and first.total > 40
    pages = []
    ran = executed(store, monkeypatch, lambda: pages.append(page(store, "sort=-name&page[limit]=5&page[offset]=20")))
    assert (pages[0].total, pages[0].estimate) == (first.total, True)
    assert len(ran) == 1 and "count(" not in ran[0][0].lower() and "explain" not in ran[0][0].lower()
    assert [r.path for r in pages[0].rows] == walk_offsets(store, "sort=-name", 1000)[20:25]
    visible = len(walk_offsets(store, "sort=-name", 1000))
    last = page(store, f"sort=-name&page[limit]=5&page[offset]={visible - 2}")
    assert (last.total, last.estimate, len(last.rows)) == (visible, False, 2)
    other = page(store, "sort=-name&page[limit]=5&page[offset]=5", bureau=OTHER)  # another bureau: another list
    assert (other.total, other.estimate) == (len([n for n in range(ORDERS) if n % 10 == 9]), False)
    new = page(store, "filter[status]=new&sort=-name&page[limit]=5")  # under the bound: exact, never kept
    assert new.estimate is False and new.total <= 40
    assert page(store, "filter[status]=new&sort=-name&page[limit]=5&page[offset]=5").estimate is False
    now[0] += 10.0
    ran = executed(store, monkeypatch, lambda: page(store, "sort=-name&page[limit]=5&page[offset]=20"))
    assert len(ran) == (1 if store.is_sqlite else 2) and "count(" in ran[0][0].lower()  # counted (and planned) again


def test_the_same_list_asked_again_is_not_built_again(store, monkeypatch):
    """A list by offset (resource, scope, filters and their values, sort) keeps its plan (statements and values, no
    rows): asked again, none of its expressions or their cache key is built (shapes.shape_of). Another value, bureau
    or sort is another list, and a page after a cursor is always built."""
    store._plans = shapes.Shapes()
    built = []
    real = shapes.shape_of
    monkeypatch.setattr(shapes, "shape_of", lambda *elements: built.append(1) or real(*elements))
    first = page(store, "filter[status]=new&sort=-name&page[limit]=5")
    again = page(store, "filter[status]=new&sort=-name&page[limit]=5&page[offset]=5")
    assert len(built) == 1 and [r.path for r in first.rows + again.rows] == walk_offsets(
        store, "filter[status]=new&sort=-name", 1000)[:10]
    assert (again.total, again.estimate) == (first.total, False)
    for other in ("filter[status]=cancelled&sort=-name", "filter[status]=new&sort=name", "filter[status]=new,new"):
        page(store, other + "&page[limit]=5")
    page(store, "filter[status]=new&sort=-name&page[limit]=5", bureau=OTHER)
    page(store, f"filter[status]=new&sort=-name&page[limit]=5&page[after]={first.next}")
    assert len(built) == 1 + 5


@pytest.mark.parametrize("estimate", ["many", True, -1, 2 ** 64, 1.5])
def test_a_cursor_carrying_no_count_is_refused(store, estimate):
    signature = ("order", (("name", False),), "id")
    keys = cursors.decode(page(store, "sort=name&page[limit]=3").next, signature, 3)
    with pytest.raises(InvalidPayload, match="is not a cursor"):
        page(store, f"sort=name&page[after]={cursors.encode(signature, keys, estimate)}")


@pytest.mark.parametrize("cursor, problem", [
    ("not a cursor!", "is not a cursor"), ("eyJ4IjoxfQ", "is not a cursor"), ("", "must be the `meta.next`")])
def test_bad_cursors_are_refused_naming_the_problem(store, cursor, problem):
    with pytest.raises(InvalidPayload, match=problem) as refused:
        page(store, f"page[after]={cursor}")
    assert refused.value.field == "page[after]"


def test_a_cursor_of_another_sort_is_refused(store):
    cursor = page(store, "sort=name&page[limit]=3").next
    with pytest.raises(InvalidPayload, match="another list or sort"):
        page(store, f"sort=-name&page[after]={cursor}")
    with pytest.raises(InvalidPayload, match="cannot be used together"):
        page(store, f"sort=name&page[offset]=3&page[after]={cursor}")


def test_a_cursor_of_the_path_keyed_list_keys_is_refused_and_a_forged_uuid_is_a_400(store):
    """Cursors of the release before ended in the document's path (now its uuid): refused as made for another
    list, never misread nor a database error. A cursor whose last key is not a uuid is a 400 as well on PostgreSQL,
    whose uuid column would refuse it; SQLite compares anything, so there it is just a page."""
    from gateway import cursors

    issued = page(store, "sort=name&page[limit]=3")
    created, uuid = cursors.decode(issued.next, ("order", (("name", False),), "id"), 3)[1:]
    path = f"/order/{uuid}/"
    assert issued.rows[-1].path == path
    name = issued.rows[-1].doc["name"]
    earlier = cursors.encode(("order", (("name", False),)), [name, created, path])  # as the release before made it
    with pytest.raises(InvalidPayload, match="another list or sort"):
        page(store, f"sort=name&page[after]={earlier}")
    forged = cursors.encode(("order", (("name", False),), "id"), [name, created, path])
    if store.is_sqlite:
        page(store, f"sort=name&page[after]={forged}")
    else:
        with pytest.raises(InvalidPayload, match="is not a cursor"):
            page(store, f"sort=name&page[after]={forged}")
    following = page(store, f"sort=name&page[limit]=3&page[after]={issued.next}")
    assert [r.path for r in following.rows] == walk_offsets(store, "sort=name", 1000)[3:6]


SAMPLE = ["order", "line-item", "flat-order", "flat-line-item", "run", "material", "users", "api_tokens"]


def fresh_schema(conn):
    """SQLite: read the schema again on this pooled connection. EXPLAIN QUERY PLAN plans on the schema a connection
    last read, and is never run, so never finds it stale (a statement that runs re-reads it when another connection
    changed it, e.g. an index built on first use: gateway.list_index_builds)."""
    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")


def plan(store, statement):
    with store.engine.connect() as conn:
        if store.is_sqlite:
            fresh_schema(conn)
            return "\n".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + statement)))
        conn.execute(text("SET enable_seqscan = off"))  # tiny tables: ask whether an index *can* serve it
        return "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + statement)))


@pytest.mark.parametrize("resource", SAMPLE)
def test_every_filter_and_sort_of_a_resource_is_planned_on_its_index(store, resource):
    """Once a LIST has used it (its first use builds its index: gateway.list_index_builds)."""
    spec = catalogue.resource(resource)
    keys = indexes.keys_table(resource)
    schema = "" if store.is_sqlite else '"gateway".'
    for field in indexes.indexed_fields(spec):
        try:
            store.documents(spec, BUREAU, listing.parse(spec, f"sort={field}&page[limit]=1"))
        except InvalidPayload:  # not sortable (`created` of a resource without it): a filter would be its use
            store.list_index_builds.use(resource, [field])
    store.list_index_builds.settle()
    if not store.is_sqlite:  # with statistics, as autovacuum keeps them: unanalyzed, the planner's ties fall anywhere
        with store.engine.begin() as conn:
            conn.execute(text(f'ANALYZE {schema}"{keys.name}"'))
    for field in indexes.indexed_fields(spec):
        column = '"' + indexes.column_name(field) + '"'
        table = f'{schema}"{keys.name}"'
        filtered = plan(store, f"SELECT path FROM {table} WHERE bureau = 1 AND {column} = '1' "
                               f"ORDER BY id LIMIT 5")
        ordered = plan(store, f"SELECT path FROM {table} WHERE bureau = 1 ORDER BY {column} DESC, "
                              f"id DESC LIMIT 5")
        expected = indexes._index_name(keys.name, field)
        assert expected in filtered, f"{resource}.{field} filter: {filtered}"
        assert expected in ordered and "SORT" not in ordered.upper().replace("SORT KEY", ""), \
            f"{resource}.{field} sort: {ordered}"


def executed(store, monkeypatch, read):
    """[(SQL, parameters)] of the statements `read()` ran on the read store's driver cursors (ReadStore._cursor)."""
    captured = []
    reading = store._cursor

    class Recording:
        def __init__(self, cursor):
            self.cursor = cursor

        def execute(self, statement, parameters):
            captured.append((statement, parameters))
            return self.cursor.execute(statement, parameters)

        def __getattr__(self, name):
            return getattr(self.cursor, name)

    @contextmanager
    def recording():
        with reading() as cursor:
            yield Recording(cursor)
    with monkeypatch.context() as patched:  # undone on return, without undoing the test's own patches
        patched.setattr(store, "_cursor", recording)
        read()
    return captured


def test_the_served_query_uses_the_index(store, monkeypatch):
    """The statement documents() runs for a filter, planned on that field's index (not a scan of documents)."""
    query = listing.parse(SPEC, "filter[name]=order-0010&sort=-created&page[limit]=5")
    keys = indexes.keys_table("order")
    statement, parameters = executed(store, monkeypatch, lambda: store.documents(SPEC, BUREAU, query))[0]
    with store.engine.connect() as conn:
        if store.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            shown = "\n".join(str(r[-1]) for r in rows)
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            shown = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters).all())
    assert indexes._index_name(keys.name, "name") in shown or indexes._index_name(keys.name, "created") in shown, \
        shown


def _explained(store, statement, parameters):
    """The plan of a statement the read store ran (`executed`): SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN
    with its statistics fresh and sequential scans off (tiny tables: whether an index *can* serve it)."""
    with store.engine.connect() as conn:
        if store.is_sqlite:
            return "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                      parameters).all())
        conn.exec_driver_sql(f'ANALYZE "{readstore.READ_SCHEMA}"."{indexes.keys_table("order").name}"')
        conn.exec_driver_sql("SET enable_seqscan = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters).all())


@pytest.mark.parametrize("descending", [True, False])
def test_a_keyset_page_chooses_its_rows_on_an_index_range_of_the_sort_key(store, monkeypatch, descending):
    """A page after a cursor seeks to the cursor's place in the sort key's index (a range on the key), in either
    direction, on both databases, whichever side the database sorts NULLs on. Once, the direction in which NULLs
    come last (SQLite descending, PostgreSQL ascending) was asked as `key < :bound OR key IS NULL OR ...`, which no
    index range serves: the database walked the list from its start to the cursor, a deep page cost what an offset
    page did."""
    query_string = f"filter[status]=new&sort={'-' if descending else ''}created&page[limit]=5"
    first = page(store, query_string)
    assert first.next is not None
    statement, parameters = executed(store, monkeypatch,
                                     lambda: page(store, f"{query_string}&page[after]={first.next}"))[0]
    shown = _explained(store, statement, parameters)
    index = indexes._index_name(indexes.keys_table("order").name, "created")
    sign = "<" if descending else ">"
    if store.is_sqlite:
        assert re.search(rf"SEARCH lk_order USING (COVERING )?INDEX {index} \(bureau=\? AND f_created{sign}\?\)",
                         shown), shown
        assert not re.search(rf"INDEX {index} \(bureau=\?\)", shown), shown  # no walk of the bureau's orders
        if descending:  # NULLs last: they are sought on the same index (`IS NULL` is an equality there)
            assert re.search(rf"INDEX {index} \(bureau=\? AND f_created=\?\)", shown), shown
    else:
        assert re.search(rf"Index Cond: \(.*f_created {sign}=? ", shown), shown
        assert index in shown, shown


def _sorted_as_the_database_sorts(store, rows, sort):
    """`rows` (documents) in the order a LIST with `sort` gives: its keys, `created` when it is not one of them, then
    the uuid in the last key's direction; NULL below every value on SQLite, above on PostgreSQL."""
    keys = [(name, descending) for name, descending in sort]
    if "created" not in {name for name, _ in sort}:
        keys.append(("created", False))
    keys.append(("uri", keys[-1][1] if sort else False))
    null_rank = 1 if not store.is_sqlite else -1

    def value(row, name):
        return row.path if name == "uri" else row.doc.get(name)

    def compare(a, b):
        for name, descending in keys:
            x, y = value(a, name), value(b, name)
            if x == y:
                continue
            order = null_rank if x is None else -null_rank if y is None else (-1 if x < y else 1)
            return -order if descending else order
        return 0

    return sorted(rows, key=functools.cmp_to_key(compare))


@pytest.mark.parametrize("query_string", [
    "sort=priority", "sort=-priority", "filter[status]=new&sort=priority", "filter[status]=new&sort=-priority",
    "filter[quote_required]=true&sort=-priority,name", "filter[status]=new&sort=-created"])
def test_keyset_pages_of_a_sort_key_with_nulls_are_the_whole_sorted_list(store, query_string):
    """Paged by page[after] (cursors whose first key is NULL among them), a list sorted on a key some rows have no
    value for is the whole list sorted as the database sorts NULLs, each row once, every page with the list's
    total, in both directions and on both databases."""
    keys = walk_by_cursor(store, query_string, limits=(1, 4, 7))
    if "priority" in query_string:
        assert any(values[0] is None for values in keys)  # pages after a cursor on a NULL key were asked


def walk_by_cursor(store, query_string, limits):
    """Pages `query_string`'s list by cursor to its end at each page size of `limits`: the rows are the whole list
    sorted as the database sorts NULLs, each once, every page with the list's total. Returns each cursor's keys."""
    query = listing.parse(SPEC, query_string)
    everything = page(store, query_string + "&page[limit]=1000")
    expected = [row.path for row in _sorted_as_the_database_sorts(store, everything.rows, query.sort)]
    assert len(expected) == everything.total > 10
    signature = ("order", tuple(query.sort), "id")
    keys = len(query.sort) + ("created" not in {name for name, _ in query.sort}) + 1
    seen = []
    for limit in limits:
        paths, after = [], None
        while True:
            current = page(store, f"{query_string}&page[limit]={limit}" + (f"&page[after]={after}" if after else ""))
            assert current.total == len(expected) and current.estimate is False
            paths += [row.path for row in current.rows]
            if current.next is None:
                break
            after = current.next
            seen.append(cursors.decode(after, signature, keys))
        assert paths == expected, limit
    return seen


def counting_builds(monkeypatch):
    """[1 per LIST whose expressions were built] (shapes.shape_of is called once per LIST built)."""
    built = []
    real = shapes.shape_of
    monkeypatch.setattr(shapes, "shape_of", lambda *elements: built.append(1) or real(*elements))
    return built


@pytest.mark.parametrize("query_string", [
    "sort=priority", "sort=-priority", "filter[status]=new&sort=priority,-name",
    "filter[quote_required]=true&sort=-priority"])
def test_keyset_pages_run_from_the_kept_plan_are_the_whole_sorted_list(store, monkeypatch, query_string):
    """A list paged by cursor to its end keeps one plan per NULL pattern of its cursors (readstore._KeysetPlans) and
    runs each with the next cursor's values: the pages are exactly the rows of one big page sorted as the database
    sorts NULLs, in both directions, with filters, and only the first page of each pattern is built."""
    store._plans = shapes.Shapes()
    built = counting_builds(monkeypatch)
    patterns = {tuple(value is None for value in keys)
                for keys in walk_by_cursor(store, query_string, limits=(2, 3, 5))}
    assert any(pattern[0] for pattern in patterns) and not all(pattern[0] for pattern in patterns)
    assert len(built) == 1 + len(patterns)  # the list by offset, then one keyset page per NULL pattern


def test_the_second_keyset_page_of_a_list_is_not_built_again(store, monkeypatch):
    """Like a list by offset, a list's pages after a cursor keep their plan (statements, values, and where the
    cursor's values go among them): the second page after a cursor builds none of its expressions nor their cache
    key. The cursor is still checked first (another sort's, or a forged value on PostgreSQL, is a 400); another
    bureau or filter value is another list, built for itself and answering its own rows."""
    store._plans = shapes.Shapes()
    built = counting_builds(monkeypatch)
    query_string = "filter[status]=new&sort=-name&page[limit]=4"
    first = page(store, query_string)
    second = page(store, f"{query_string}&page[after]={first.next}")
    assert len(built) == 2
    third = page(store, f"{query_string}&page[after]={second.next}")
    fourth = page(store, f"{query_string}&page[after]={third.next}")
    assert len(built) == 2
    assert [r.path for p in (first, second, third, fourth) for r in p.rows] == walk_offsets(
        store, "filter[status]=new&sort=-name", 1000)[:16]
    assert third.total == fourth.total == first.total and not fourth.estimate
    with pytest.raises(InvalidPayload, match="another list or sort"):
        page(store, f"filter[status]=new&sort=-name&page[after]={page(store, 'sort=name&page[limit]=3').next}")
    signature = ("order", (("name", True),), "id")
    name, _, uuid = cursors.decode(second.next, signature, 3)
    forged = cursors.encode(signature, [name, 17, uuid])  # a number where the creation time (text) goes
    if store.is_sqlite:  # SQLite compares anything: just a page
        page(store, f"{query_string}&page[after]={forged}")
    else:
        with pytest.raises(InvalidPayload, match="is not a cursor"):
            page(store, f"{query_string}&page[after]={forged}")
    built.clear()
    after_second = {"bureau": OTHER, "filter": "new"}, {"bureau": BUREAU, "filter": "cancelled"}
    for asked in after_second:
        listed = page(store, f"filter[status]={asked['filter']}&sort=-name&page[limit]=4&page[after]={second.next}",
                      bureau=asked["bureau"])
        whole = page(store, f"filter[status]={asked['filter']}&sort=-name&page[limit]=1000", bureau=asked["bureau"])
        assert [r.path for r in listed.rows] == [r.path for r in whole.rows if r.doc["name"] < name][:4]
        assert listed.rows and listed.total == whole.total
    assert len(built) == 4  # each list built for itself: its page after the cursor, its whole list by offset


@pytest.mark.parametrize("direction", ["", "-"])
def test_a_cursor_whose_nulls_differ_from_the_kept_plans_gets_its_own_rows(store, monkeypatch, direction):
    """A cursor on a NULL key makes other parts than one on a value (readstore._after): after a plan is kept for
    cursors on a value, a cursor on a NULL gets its own plan and rows, and each plan then serves the next cursor of
    its pattern with that cursor's values, in both directions."""
    listed = f"filter[status]=new&sort={direction}priority"
    whole = page(store, f"{listed}&page[limit]=1000").rows
    on_value = [i for i, row in enumerate(whole[:-3]) if row.doc.get("priority") is not None]
    on_null = [i for i, row in enumerate(whole[:-3]) if row.doc.get("priority") is None]
    assert len(on_value) >= 2 and len(on_null) >= 2
    asked = [on_value[0], on_null[0], on_value[-1], on_null[-1]]
    after = {i: page(store, f"{listed}&page[limit]=1&page[offset]={i}").next for i in asked}
    store._plans = shapes.Shapes()
    built = counting_builds(monkeypatch)
    for i in asked:
        assert [r.path for r in page(store, f"{listed}&page[limit]=3&page[after]={after[i]}").rows] == [
            r.path for r in whole[i + 1:i + 4]], i
    assert len(built) == 2  # one plan per pattern, the second cursor of each run from it


@pytest.mark.parametrize("resource", ["order", "flat-order"])
def test_list_keys_kept_by_the_triggers_equal_a_fill_from_the_documents(store, resource):
    """After creates, an update and a delete, the rows the triggers kept are exactly what the migrate step's fill
    derives from the documents now (so a rebuilt read side has the same list keys as the live one)."""
    keys = indexes.keys_table(resource)
    fill = indexes.fill_statement(resource, "sqlite" if store.is_sqlite else "postgresql")
    with store.engine.begin() as conn:
        kept = {tuple(row) for row in conn.execute(keys.select())}
        conn.execute(keys.delete())
        conn.exec_driver_sql(fill)
        filled = {tuple(row) for row in conn.execute(keys.select())}
    assert kept == filled and len(kept) > (50 if resource == "order" else 0)


def test_the_run_status_filter_is_served_by_the_status_index(store, monkeypatch):
    """orders.md: filter[run_status] lists the orders where at least one run has one of the statuses; it is read
    from the hidden per-(order, status) documents through their status index, not by reading every run."""
    order_paths = [f"/order/{n:08d}-0000-4000-8000-000000000000/" for n in range(ORDERS)]
    runs = [(f"{n:08d}-0000-4000-8000-00000000000f", order_paths[n:n + size], status)  # a run's orders: one bureau's
            for n, size, status in ((10, 2, "queued"), (20, 2, "in-progress"), (21, 2, "queued"), (30, 3, "error"),
                                    (3, 2, "queued"), (39, 1, "queued"))]
    feed = [{"position": i + 1, "application": "production", "resource": "run", "uuid": uuid, "version": 1,
             "event": "production/run/Created", "user": None, "timestamp": "2026-11-30T01:00:00+00:00",
             "kind": "created", "bureau": OTHER if uuid.startswith("00000039") else BUREAU,
             "fields": {"orders": orders, "status": status, "prints": []}, "names": []}
            for i, (uuid, orders, status) in enumerate(runs)]
    feed.append(dict(feed[2], position=len(feed) + 1, kind="updated", fields={"status": "complete"}))
    store.apply_feed("production", feed, len(feed))
    current = {uuid: (orders, status) for uuid, orders, status in runs}
    current[runs[2][0]] = (runs[2][1], "complete")

    def expected(statuses, bureau=BUREAU):
        wanted = {o for orders, status in current.values() if status in statuses for o in orders}
        return sorted(p for p in wanted if p != "/order/00000004-0000-4000-8000-000000000000/"  # deleted
                      and (bureau == OTHER) == (int(p[7:15]) % 10 == 9))  # order_event's bureaus

    for statuses in (["queued"], ["in-progress", "complete"], ["error"], ["paused"]):
        got = sorted(r.path for r in page(store, f"filter[run_status]={','.join(statuses)}&page[limit]=1000").rows)
        assert got == expected(statuses), statuses
    assert [r.path for r in page(store, "filter[run_status]=queued", OTHER).rows] == expected(["queued"], OTHER)

    statement, parameters = executed(store, monkeypatch, lambda: page(store, "filter[run_status]=queued"))[0]
    with store.engine.connect() as conn:
        if store.is_sqlite:
            shown = "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                       parameters).all())
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            shown = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters).all())
    assert "ix_ref_order_run_status_status" in shown, shown


def _all_list_keys(store):
    """The list keys of what the orders feed makes (the module's other tests also apply a production feed)."""
    with store.engine.connect() as conn:
        return {table.name: sorted(tuple(row) for row in conn.execute(table.select()))
                for table in (indexes.keys_table("order"), indexes.keys_table("flat-order"))}


def _plans_on_an_index(store, resource, field):
    statement = f"SELECT path FROM {indexes.keys_table(resource).name} WHERE bureau = 1 ORDER BY " \
                f"{indexes.column_name(field)}, id LIMIT 5"
    with store.engine.connect() as conn:
        if store.is_sqlite:
            shown = "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement))
        else:
            conn.exec_driver_sql(f"SET search_path TO {readstore.READ_SCHEMA}")
            conn.exec_driver_sql("SET enable_seqscan = off")
            shown = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement))
    return indexes._index_name(indexes.keys_table(resource).name, field) in shown


def test_a_bulk_load_ends_with_the_list_keys_the_triggers_keep(store, tmp_path):
    """runtime.rebuild's bulk load: the list keys are emptied and not kept while the feed is replayed, then filled
    once, indexes rebuilt; the result equals what the triggers keep event by event. A bulk load interrupted
    half-way (a crash) is finished by the next migrate step."""
    live = _all_list_keys(store)
    assert len(live["lk_order"]) > 50 and len(live["lk_flat_order"]) > 50
    feed = [order_event(n + 1, n) for n in range(ORDERS)]
    feed.append(order_event(ORDERS + 1, 3, "updated", {"name": "renamed", "priority": 99}))
    feed.append(order_event(ORDERS + 2, 4, "deleted", {}))

    store.reset()
    store.begin_bulk_load()
    store.apply_feed("orders", feed, ORDERS + 2)
    assert store.bulk_loading()
    assert _all_list_keys(store)["lk_order"] == []  # not kept during the load
    store.end_bulk_load()
    assert not store.bulk_loading()
    assert _all_list_keys(store) == live
    assert _plans_on_an_index(store, "order", "priority")

    store.reset()
    store.begin_bulk_load()
    store.apply_feed("orders", feed, ORDERS + 2)
    store.create_tables()  # the migrate step after a crash in the middle of the load
    assert not store.bulk_loading()
    assert _all_list_keys(store) == live
    # kept again, event by event
    store.apply_feed("orders", [order_event(ORDERS + 3, 5, "updated", {"name": "after the load"})], ORDERS + 3)
    with store.engine.connect() as conn:
        keys = indexes.keys_table("order")
        names = {row.f_name for row in conn.execute(keys.select())}
    assert "after the load" in names


def test_a_text_longer_than_an_index_entry_is_listed_and_found_by_its_whole_value(store):
    """A B-tree entry on PostgreSQL holds ~2,700 bytes: an order whose notes are longer (8,000 random characters,
    nothing to compress) once failed its list-key insert and with it the projector's whole batch, for ever. Now its
    key holds the notes' start; a filter on the whole value finds it, and one on its start alone or on a value that
    differs only at the end does not."""
    import secrets

    notes = secrets.token_hex(4000)
    position = store.position("orders") + 1
    event = order_event(position, 900, fields={"name": "long notes", "notes": notes, "status": "new"})
    assert store.apply_feed("orders", [event], position) == position
    assert not store.parked()
    path = f"/order/{event['uuid']}/"
    assert [r.path for r in page(store, "filter[name]=long notes").rows] == [path]
    assert [r.path for r in page(store, f"filter[notes]={notes}").rows] == [path]
    assert [r.path for r in page(store, f"filter[notes]={notes},other").rows] == [path]
    start = notes[:indexes.TEXT_KEY_LENGTH]
    assert page(store, f"filter[notes]={start}").rows == []
    assert page(store, f"filter[notes]={notes[:-1] + ('0' if notes[-1] != '0' else '1')}").rows == []
    assert path in [r.path for r in page(store, f"filter[notes]>{notes[:-1]}&page[limit]=1000").rows]
    assert path not in [r.path for r in page(store, f"filter[notes]>{notes}&page[limit]=1000").rows]


def test_reads_on_postgresql_open_no_transaction_and_leave_none_to_writers(store):
    """A read's statements run in autocommit (no BEGIN … ROLLBACK round trip around them); the connection goes back
    to the pool out of autocommit, so a writer's transaction is still one (its failure undoes its statements), also
    after a read that failed."""
    if store.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite reads are unchanged")
    import psycopg2.extensions as ext
    with store._reading() as conn:
        conn.execute(text("SELECT 1")).scalar()
        assert conn.connection.dbapi_connection.get_transaction_status() == ext.TRANSACTION_STATUS_IDLE
    with pytest.raises(Exception):
        with store._reading() as conn:
            conn.execute(text("SELECT no_such_column FROM gateway.documents"))
    assert page(store, "filter[name]=renamed").total == 1 and store.document("/nowhere/", BUREAU) is None
    for _ in range(3):  # every pooled connection a read used
        with store.engine.connect() as conn:
            dbapi_connection = conn.connection.dbapi_connection
            assert dbapi_connection.autocommit is False
            conn.execute(text("SELECT 1"))
            assert dbapi_connection.get_transaction_status() == ext.TRANSACTION_STATUS_INTRANS
            conn.rollback()
    with pytest.raises(RuntimeError):
        with store.engine.begin() as conn:
            conn.execute(text("CREATE TABLE gateway.written_then_undone (x int)"))
            raise RuntimeError("undo")
    with store._reading() as conn:
        assert conn.execute(text("SELECT to_regclass('gateway.written_then_undone')")).scalar() is None

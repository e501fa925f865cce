"""A pipelined load from zero (gateway.readstore.ReadStore._apply_pipelined), on SQLite and PostgreSQL: batch N is
written on another connection while batch N+1 is projected, N+1 taking what N wrote from memory rather than from a
database that may not hold it yet. It writes row for row what the live path writes, views across resources included;
a batch the database refuses is applied again by the plain path (and parked there); and a load killed while a batch is
in flight leaves whole batches, each with its position, which the next run goes on from."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_list_indexes import order_event
from tests.integration.test_rebuild_bulk_load import feed, rows
from tests.integration.test_rebuild_from_zero import apply_in_batches, document_reads
from tests.kit.readside import empty_read_store
from tests.unit.test_projection_batch import _feed as views_feed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    read_store = empty_read_store(request, tmp_path)
    read_store.pipelined = True
    yield read_store
    read_store.dispose()


def pipelined_load(store, events, size):
    store.reset()
    store.begin_bulk_load()
    apply_in_batches(store, events, size)
    store.end_bulk_load()


@pytest.mark.parametrize("size", [1, 2, 5])
def test_a_pipelined_load_writes_what_the_live_path_writes(store, size):
    """Batches of one or two events: each line item, order update and user rename is projected while the batch that
    created what it changes, or what points at it (a line item at its order, orders at their user), is in flight."""
    events = views_feed()
    store.reset()  # the PostgreSQL database is the session's: another test's position would skip these events
    apply_in_batches(store, events, 1)  # live, event by event
    live = rows(store), store.position("orders")

    pipelined_load(store, events, size)
    assert store._from_zero is not None  # nobody else wrote: every batch went through the pipeline
    assert (rows(store), store.position("orders")) == live


def test_a_batch_takes_what_the_batch_in_flight_wrote_from_memory(store):
    created = [order_event(n + 1, n) for n in range(20)]
    renamed = [order_event(21 + n, n, "updated", {"name": f"renamed-{n}"}) for n in range(20)]
    store.reset()
    store.apply_feed("orders", created + renamed, 40)
    live = rows(store)

    store.reset()
    store.begin_bulk_load()
    reads = document_reads(store)
    store.apply_feed("orders", created, 20)
    store.apply_feed("orders", renamed, 40)  # every document it changes is the batch in flight's: none read back
    assert reads == []
    store.end_bulk_load()
    assert rows(store) == live


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_a_pipelined_batch_the_database_refuses_is_applied_again_and_parked(store):
    store.reset()
    store.begin_bulk_load()
    store.apply_feed("orders", [order_event(1, 1)], 1)
    store.apply_feed("orders", [order_event(2, 2, fields={"weight": float("nan")})], 2)  # refused when written
    store.apply_feed("orders", [order_event(3, 3)], 3)
    store.end_bulk_load()
    assert [row.position for row in store.parked("orders")] == [2]
    assert store.position("orders") == 3
    assert {row[0] for row in rows(store)["documents"] if row[1] == "order"} == {
        f"/order/{n:08d}-0000-4000-8000-000000000000/" for n in (1, 3)}


CRASHING_LOAD = textwrap.dedent("""
    import os, sys
    from gateway import batch as batch_module
    from gateway.readstore import ReadStore
    from tests.integration.test_rebuild_bulk_load import feed
    from tests.integration.test_rebuild_from_zero import apply_in_batches

    url, dies_in = sys.argv[1], int(sys.argv[2])
    write, calls = batch_module.Batch.write, []

    def write_then_die(conn, prepared):
        calls.append(1)
        write(conn, prepared)
        if len(calls) == dies_in:
            os._exit(3)  # killed with the batch's rows written and not committed, the next batch projected

    batch_module.Batch.write = staticmethod(write_then_die)
    store = ReadStore(url)
    store.pipelined = True
    store.reset()
    store.begin_bulk_load()
    apply_in_batches(store, feed(), 7)
""")


def test_a_load_killed_mid_pipeline_leaves_whole_batches_and_their_position(store):
    events, dies_in = feed(), 5
    committed = 7 * (dies_in - 1)  # the batches before the one being written when the process died
    store.reset()
    apply_in_batches(store, events[:committed], 7)
    up_to_then = rows(store)
    apply_in_batches(store, events[committed:], 7)
    everything = rows(store)

    url = store.engine.url.render_as_string(hide_password=False)
    killed = subprocess.run([sys.executable, "-c", CRASHING_LOAD, url, str(dies_in)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert killed.returncode == 3, killed.stderr[-2000:]

    store.dispose()  # whatever this process knew of the read side is stale: start afresh, as the next run would
    assert store.position("orders") == committed
    assert rows(store) == up_to_then
    apply_in_batches(store, events[committed:], 7)  # the next run goes on from the position
    store.create_tables()  # the migrate step after a load that died half-way
    assert rows(store) == everything

"""Rebuild benchmark: how fast the read side is rebuilt from zero, next to a raw batched read of the same events,
and how big it is next to the event store.

    python -m bench.rebuild [--orders 100000] [--sqlite] [--plain] [--keep-going]      (or `make bench-rebuild`)

One run builds a throwaway PostgreSQL database (bench.write_path.throwaway_database), migrates it, and seeds
`--orders` orders through the orders service's own application code, in-process (each: an order, its product and a
line item, three commands, each with its consequences: the line item joins the order, the order's status follows).
Then, on the same server:

(a) raw read: every notification of the orders store, read in batches of 500 with one connection
    (`SELECT … FROM orders.stored_events WHERE notification_id > %s ORDER BY notification_id LIMIT 500`);
(b) rebuild: the read side reset, then brought up to date by the projector's own code (gateway.follower.Follower →
    gateway.readstore.ReadStore.apply_feed), fed by the service's own feed (Orders.feed, what the projector gets
    over RPC), timed as a whole and split into feed decoding and applying;
(c) sizes: pg_total_relation_size of every table (indexes and TOAST included) of the event stores' schemas and of
    the read side's schema `gateway`.
With --sqlite, (b) is also run into a SQLite read side (the default deployment), and its file size reported.

(b)/(a) is the share of a bare read the rebuild keeps: both read the same notifications; the rebuild also decodes,
projects, and writes every document, view and audit row. No timing is asserted: this prints a report and writes it
as JSON to bench/results/.
"""
import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

import psycopg
from sqlalchemy import event

from bench.write_path import PG_ADMIN_DSN, RESULTS_DIR, cpu_seconds, log, machine_facts, throwaway_database
from gateway.follower import Follower
from gateway.readstore import ReadStore, read_store_url
from runtime.config import build_config
from runtime.migrate import migrate
from services.orders.application import Orders
from shared.settings import event_store_env

BATCH = 500
BUREAU = f"/bureau/{uuid.uuid4()}/"
USER = f"/users/{uuid.uuid4()}/"


# -- seeding (small on purpose: bench/seeding.py will be the shared one) ----------------------------------------------

def seed_orders(app, count, progress_every=5000):
    """`count` orders, each with a product and a line item, through Orders' own commands (validation, consequences,
    command receipts), one transaction each, as the service runs them."""
    def ctx():
        return {"user": USER, "bureau": BUREAU, "command_id": str(uuid.uuid4())}

    started = time.perf_counter()
    for number in range(count):
        order = app.create("order", {"name": f"bench-{number:07d}", "customer_email": f"c{number % 997}@bench.test",
                                     "notes": "seeded by bench.rebuild"}, ctx())
        product = app.create("product", {"order": order["uri"], "no_model_upload": True}, ctx())
        app.create("line-item", {"product": product["uri"], "quantity": 1 + number % 3}, ctx())
        if progress_every and (number + 1) % progress_every == 0:
            elapsed = time.perf_counter() - started
            log(f"seeded {number + 1}/{count} orders ({(number + 1) / elapsed:.0f} orders/s)")
    return time.perf_counter() - started


# -- measurements ----------------------------------------------------------------------------------------------------

def raw_read(dsn, app):
    """Every notification of one store, in batches, as a projector would page through them: (rows, seconds)."""
    table = f'"{app.recorder.datastore.schema}"."{app.recorder.events_table_name}"'
    query = (f"SELECT notification_id, originator_id, originator_version, topic, state FROM {table} "
             "WHERE notification_id > %s ORDER BY notification_id LIMIT %s")
    rows, last = 0, 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        started = time.perf_counter()
        while True:
            cursor.execute(query, (last, BATCH), prepare=True)
            batch = cursor.fetchall()
            if not batch:
                break
            rows += len(batch)
            last = batch[-1][0]
        elapsed = time.perf_counter() - started
    return rows, elapsed


def backend_pids(store):
    """The PostgreSQL backends of `store`'s connections, as they are opened (their CPU is the server's share of a
    rebuild; a SQLite store has none)."""
    pids = set()
    if store.is_sqlite:
        return pids

    def remember(dbapi_connection, record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pids.add(cursor.fetchone()[0])
        dbapi_connection.rollback()  # not left in a transaction: a reader sets autocommit on it (ReadStore._reading)

    event.listen(store.engine, "connect", remember)
    store.engine.dispose()  # so every connection of the rebuild is a new, remembered one
    return pids


def rebuild(store, app, pipelined=None):
    """Reset the read side, then catch it up on the orders feed with the projector's code: timings, counts, and the
    CPU it cost this process (decoding and applying) and the PostgreSQL backends of `store` (utime + stime).
    `pipelined`: each batch written on a thread of its own while the next is projected (ReadStore.pipelined; None:
    the store's default, pipelined on PostgreSQL only)."""
    if pipelined is not None:
        store.pipelined = pipelined
    pids = backend_pids(store)
    store.reset()
    server_before = {pid: cpu_seconds(pid) or 0.0 for pid in pids}

    def server_spent():
        return sum((cpu_seconds(pid) or 0.0) - server_before.get(pid, 0.0) for pid in pids)

    process_before = time.process_time()
    spent = {"feed_s": 0.0, "events": 0, "batches": 0}

    def fetch(start, limit):
        began = time.perf_counter()
        feed = app.feed(start, limit)
        spent["feed_s"] += time.perf_counter() - began
        spent["events"] += len(feed["events"])
        spent["batches"] += 1
        return feed

    started = time.perf_counter()
    store.begin_bulk_load()  # as runtime.rebuild does: list keys filled once at the end
    position = Follower(store, batch_size=BATCH).catch_up("orders", fetch)
    keys_started = time.perf_counter()
    server_at_end = server_spent()
    store.end_bulk_load()
    spent["list_keys_s"] = time.perf_counter() - keys_started
    elapsed = time.perf_counter() - started
    process_cpu = time.process_time() - process_before
    server_cpu = server_spent()
    return dict(spent, position=position, elapsed_s=elapsed, apply_s=elapsed - spent["feed_s"] - spent["list_keys_s"],
                events_per_s=spent["events"] / elapsed, notifications_per_s=position / elapsed,
                process_cpu_s=process_cpu, server_cpu_s=server_cpu, server_cpu_end_s=server_cpu - server_at_end,
                cpu_ms_per_event=1000 * (process_cpu + server_cpu) / max(spent["events"], 1))


def profiled(path, function, *args):
    if not path:
        return function(*args)
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(function, *args)
    finally:
        profile.dump_stats(path)
        log(f"profile written to {path} (python -m pstats {path})")


def schema_sizes(dsn, schemas):
    """{schema: {table: bytes}} with indexes and TOAST (pg_total_relation_size)."""
    query = ("SELECT n.nspname, c.relname, pg_total_relation_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
             "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)")
    sizes, indexes = {schema: {} for schema in schemas}, {}
    with psycopg.connect(dsn) as conn:
        for schema, table, size, index_size in conn.execute(query, (list(schemas),)).fetchall():
            sizes[schema][table] = size
            indexes[f"{schema}.{table}"] = index_size
    return sizes, indexes


def row_counts(store):
    from sqlalchemy import func, select

    from gateway.tables import audit_keys, audit_log, documents

    with store.engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(table)).scalar()
                for name, table in (("documents", documents), ("audit_log", audit_log), ("audit_keys", audit_keys))}


# -- report ----------------------------------------------------------------------------------------------------------

def mb(size):
    return f"{size / 1e6:8.1f} MB"


def report_lines(report):
    raw, pg, sizes = report["raw_read"], report["rebuild_postgres"], report["sizes"]
    lines = [
        f"Stratum read-side rebuild — {report['timestamp']}",
        f"machine: nproc {report['machine']['nproc']} · PostgreSQL {report['machine']['postgresql']} · "
        f"Python {report['machine']['python']}",
        f"seeded: {report['orders']} orders (+ product + line item each) in {report['seed_s']:.0f} s; "
        f"{raw['rows']} notifications, {pg['events']} public events",
        "",
        f"(a) raw batched read   {raw['rows_per_s']:10.0f} notifications/s   "
        f"({raw['rows']} in {raw['elapsed_s']:.2f} s)",
        f"(b) rebuild, PG        {pg['notifications_per_s']:10.0f} notifications/s   "
        f"{pg['events_per_s']:8.0f} events/s   "
        f"({pg['elapsed_s']:.2f} s: feed {pg['feed_s']:.2f} s, apply {pg['apply_s']:.2f} s, {pg['batches']} batches)",
        f"    CPU                process {pg['process_cpu_s']:.2f} s + server {pg['server_cpu_s']:.2f} s "
        f"(of which the end, list keys and indexes: {pg['server_cpu_end_s']:.2f} s, {pg['list_keys_s']:.2f} s wall) "
        f"= {pg['cpu_ms_per_event']:.3f} ms an event",
    ]
    if report.get("rebuild_sqlite"):
        lite = report["rebuild_sqlite"]
        lines.append(f"    rebuild, SQLite    {lite['notifications_per_s']:10.0f} notifications/s   "
                     f"{lite['events_per_s']:8.0f} events/s   ({lite['elapsed_s']:.2f} s: feed {lite['feed_s']:.2f} s, "
                     f"apply {lite['apply_s']:.2f} s)")
        lines.append(f"    CPU                process {lite['process_cpu_s']:.2f} s "
                     f"= {lite['cpu_ms_per_event']:.3f} ms an event")
    lines += [
        f"(b)/(a)                {report['ratio_postgres']:.3f}   (goal ≥ 0.1; events/s goal ≥ 20,000)",
        "",
        f"(c) event stores       {mb(sizes['event_store_bytes'])}",
        f"    read side (PG)     {mb(sizes['read_side_bytes'])}   = {sizes['read_side_ratio']:.2f}× (goal ≤ 2×)",
    ]
    for table, size in sorted(sizes["read_side_tables"].items(), key=lambda item: -item[1]):
        if size > 100_000:
            lines.append(f"      {table:<20} {mb(size)}   (indexes {mb(sizes['index_bytes'][f'gateway.{table}'])})")
    lines.append(f"    rows: {json.dumps(report['rows'])}")
    if report.get("sqlite_bytes"):
        lines.append(f"    read side (SQLite file) {mb(report['sqlite_bytes'])}")
    return lines


def write_json(report):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"rebuild-{report['timestamp'].replace(':', '').replace('-', '')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def run(args):
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with throwaway_database(PG_ADMIN_DSN) as dsn, tempfile.TemporaryDirectory(prefix="stratum-rebuild-") as workdir:
        config = build_config({"STRATUM_POSTGRES_DSN": dsn, "STRATUM_DATA_DIR": workdir})
        migrate(config)
        database = dsn.rsplit("/", 1)[1]
        with psycopg.connect(dsn, autocommit=True) as conn:
            # seeding commits once per command: not waiting for each WAL flush makes it several times faster on a
            # busy disk. Reset before anything is measured (the read store's connections are opened after).
            conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
        app = Orders(env=event_store_env(config, "orders"))
        try:
            log(f"seeding {args.orders} orders through the orders application")
            seed_s = seed_orders(app, args.orders)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{database}" RESET synchronous_commit')
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            log("(a) raw batched read")
            rows, raw_s = raw_read(dsn, app)
            store = ReadStore(read_store_url(config))
            try:
                log("(b) rebuild from zero into PostgreSQL")
                pg = profiled(args.profile, rebuild, store, app, False if args.plain else None)
                counts = row_counts(store)
            finally:
                store.dispose()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            lite, sqlite_bytes = None, None
            if args.sqlite:
                path = os.path.join(workdir, "readside.sqlite")
                lite_store = ReadStore("sqlite:///" + path)
                try:
                    lite_store.create_tables()
                    log("(b) rebuild from zero into SQLite")
                    lite = rebuild(lite_store, app, False if args.plain else None)
                finally:
                    lite_store.dispose()
                sqlite_bytes = sum(os.path.getsize(path + suffix) for suffix in ("", "-wal")
                                   if os.path.exists(path + suffix))
            stores = ["identity", "orders", "production", "materials", "files", "capture", "notifications"]
            sizes, index_sizes = schema_sizes(dsn, stores + ["gateway"])
            facts = machine_facts(dsn, "amqp://unused/")
        finally:
            app.close()
    event_store = sum(sum(tables.values()) for schema, tables in sizes.items() if schema != "gateway")
    read_side = sum(sizes["gateway"].values())
    return {
        "timestamp": timestamp, "machine": facts, "orders": args.orders, "seed_s": seed_s, "plain": args.plain,
        "raw_read": {"rows": rows, "elapsed_s": raw_s, "rows_per_s": rows / raw_s},
        "rebuild_postgres": pg, "rebuild_sqlite": lite, "rows": counts,
        "ratio_postgres": raw_s / pg["elapsed_s"],
        "ratio_sqlite": raw_s / lite["elapsed_s"] if lite else None,
        "sizes": {"event_store_bytes": event_store, "read_side_bytes": read_side,
                  "read_side_ratio": read_side / event_store, "read_side_tables": sizes["gateway"],
                  "index_bytes": index_sizes,
                  "event_store_tables": {f"{s}.{t}": b for s, tables in sizes.items() if s != "gateway"
                                         for t, b in tables.items()}},
        "sqlite_bytes": sqlite_bytes,
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100_000, help="orders to seed (each with a line item)")
    parser.add_argument("--sqlite", action="store_true", help="also rebuild into a SQLite read side")
    parser.add_argument("--plain", action="store_true",
                        help="write each batch before projecting the next (PostgreSQL pipelines them by default: "
                             "gateway.readstore.ReadStore.pipelined)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the PostgreSQL rebuild to FILE")
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error("--orders must be at least 1")
    return args


def main(argv=None):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a SIGTERM still drops the database
    report = run(parse_args(argv))
    print("", *report_lines(report), "", sep="\n")
    print(f"results: {write_json(report).relative_to(RESULTS_DIR.parent.parent)}")


if __name__ == "__main__":
    main()

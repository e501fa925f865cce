"""Rebuild the read side from zero: forget it, then replay every service's feed with the projector's own code.

    python -m runtime.rebuild            # make rebuild

For a projection fixed in a new release, or a read database lost or restored from an old backup. Safe while
everything runs: the projector and the gateway go on applying news (their writes land in the same documents, and
a position only moves forward); LISTs are incomplete until the rebuild ends, GETs by uuid as soon as their document
is back. The feeds are read straight from each service's event store (the same `feed` the services answer over RPC),
so no broker is needed and the services need not be up.

The replay runs as a bulk load (gateway.indexes): the list keys are filled once at the end and their indexes built
over the filled rows, instead of a trigger per document write (at 70,000 orders on PostgreSQL the triggers cost
20× the rest of a write), and the audit log's list indexes, audit_keys' primary key (a random uuid per row) and
the documents' resource index built once at the end too (on PostgreSQL on two connections at once,
gateway.indexes.finish_bulk_load). A rebuild that dies half-way leaves the read side marked as loading; run it
again, or let the next migrate step finish the list keys and indexes. Its own commits do not wait for the WAL flush
(PostgreSQL: a crash loses its last batches, never half of one). The next feed batch is read (and decoded) in a
thread while this one is applied.

Until another applier writes (the live projector moves a tracking position), the reset read side holds only what this
rebuild wrote (gateway.batch.FromZero): it reads back only the documents its earlier batches wrote, and inserts new
ones without an upsert. The first write by anyone else ends that for the rest of the rebuild, which then reads every
document it touches, as the live path does.
"""
import contextlib
import logging
import os
import sqlite3
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")  # imported via nameko; known, see DESIGN

from gateway.follower import Follower  # noqa: E402
from gateway.readstore import read_store  # noqa: E402
from runtime.config import build_config  # noqa: E402
from runtime.topology import APPLICATIONS, load  # noqa: E402
from shared.settings import event_store_env  # noqa: E402

log = logging.getLogger(__name__)
BATCH_SIZE = 2000  # notifications per transaction; larger batches share the per-batch statements over more events


def replay(config, store, report=print):
    """Apply every application's whole feed to `store` as a bulk load. Returns (stored events applied, seconds)."""
    follower = Follower(store, batch_size=BATCH_SIZE)
    started = time.perf_counter()
    events = 0
    store.begin_bulk_load()
    for name, dotted in APPLICATIONS.items():
        if not has_news(event_store_env(config, name), name, store.position(name)):
            report(f"{name}: nothing to replay")
            continue
        app = load(dotted)(env=dict(event_store_env(config, name), POSTGRES_POOL_SIZE="1",
                                    POSTGRES_MAX_OVERFLOW="0"))
        reader = ReadAhead(lambda start, limit, app=app: read_pages(app, start, limit))
        try:
            def fetch(start, limit):
                nonlocal events
                feed = reader(start, limit)
                events += len(feed["events"])
                return feed

            position = follower.catch_up(name, fetch)
            report(f"{name}: replayed to notification {position}")
        finally:
            reader.close()
            app.close()
    report("filling the list keys and building their indexes")
    store.end_bulk_load()
    return events, time.perf_counter() - started


def has_news(env, name, position):
    """Whether the event store `env` names may hold a notification past `position`: False only when its table is
    read and holds none, so a service whose log is empty (or already applied) is not imported at all (importing a
    service's domain code costs ~0.4 s of CPU: eventsourcing builds its event classes). Anything unexpected (no
    such table, a store this cannot read) answers True: the service is replayed as before, and its empty feed
    changes nothing."""
    try:
        if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
            if not os.path.exists(env["SQLITE_DBNAME"]):
                return True
            with contextlib.closing(sqlite3.connect(f"file:{env['SQLITE_DBNAME']}?mode=ro", uri=True)) as conn:
                latest = conn.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
        elif env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
            with psycopg.connect(host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"], dbname=env["POSTGRES_DBNAME"],
                                 user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
                                 connect_timeout=10, autocommit=True) as conn:
                latest = conn.execute(sql.SQL("SELECT MAX(notification_id) FROM {}.{}").format(
                    sql.Identifier(env["POSTGRES_SCHEMA"]), sql.Identifier(f"{name}_events"))).fetchone()[0]
        else:
            return True
    except (sqlite3.Error, psycopg.Error, KeyError):
        return True
    return latest is not None and latest > position


def read_pages(app, start, limit):
    """`app.feed` from `start`, pages merged up to `limit` notifications (a service answers at most
    shared.application.MAX_FEED_BATCH at a time): one transaction of the read side per `limit`, not per page."""
    feed = app.feed(start, limit)
    while not feed["complete"] and feed["last"] - start + 1 < limit:
        page = app.feed(feed["last"] + 1, limit - (feed["last"] - start + 1))
        if page["last"] is None:
            return dict(feed, complete=True)
        feed = dict(page, events=feed["events"] + page["events"])
    return feed


class ReadAhead:
    """A feed reader that reads the next batch in a thread while the caller applies this one: decoding (the
    service's mapper, in Python) overlaps the read side's writes (the database server's work, on the other core;
    the GIL is released while the applier waits for it). The next batch starts where this one ended; a caller that
    asks for another start (the live projector moved the position meanwhile) gets a fresh read."""

    def __init__(self, read):
        self._read = read
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rebuild-read-ahead")
        self._ahead = None  # ((start, limit), future)

    def __call__(self, start, limit):
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == (start, limit):
            feed = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].exception()  # a stale read finishes (its failure unused) before the next one starts
            feed = self._read(start, limit)
        if feed["last"] is not None and not feed["complete"]:
            following = (feed["last"] + 1, limit)
            self._ahead = (following, self._thread.submit(self._read, *following))
        return feed

    def close(self):
        if self._ahead is not None:
            self._ahead[1].exception()  # wait for it: the application's connection is closed next
        self._thread.shutdown()


def rebuild(config, report=print):
    store = read_store(config)
    try:
        store.reset()
        return replay(config, store, report)
    finally:
        store.dispose()


if __name__ == "__main__":
    events, seconds = rebuild(build_config(), report=lambda line: print(f"stratum: {line}", flush=True))
    print(f"stratum: the read side is rebuilt: {events} events in {seconds:.1f} s")

"""Live lag under load, measured from outside: how long each stored event of the orders service takes, from its
notification being committed in the orders event store to the read side's tracking position for `orders` reaching
it (whoever moves it: the projector, or the gateway's own catch-up for read-your-writes).

`LagSampler` polls both on its own plain connections (never Stratum's code), every `interval` seconds, and keeps
(monotonic time, store's highest notification id, read side's position) per sample; `live_lags` turns the samples
into one lag per notification. Both are bounded by the sampling interval, which the summary reports beside them.
"""
import contextlib
import itertools
import sqlite3
import statistics
import threading
import time

import psycopg
from psycopg import sql

from bench.stats import percentile

LAG_APPLICATION = "orders"


def live_lags(samples):
    """Per notification n that appeared while sampling: t_read(n) − t_store(n), in seconds, where t_store(n) is the
    first sample whose store max is ≥ n and t_read(n) the first sample, not before that one, whose read position is
    ≥ n (the two are read one after the other, so the read side may already be past what the store read showed).
    Notifications already in the store at the first sample are left out (when they were committed is unknown).
    Returns (lags in notification order, notifications the read side had not reached by the last sample)."""
    if not samples:
        return [], 0
    lags = []
    seen = samples[0][1]  # the highest notification id whose t_store is known (or unknowable)
    pending = []  # (n, t_store) not yet reached by the read side, in order
    for at, store_max, read_position in samples:
        pending.extend((n, at) for n in range(seen + 1, store_max + 1))
        seen = max(seen, store_max)
        reached = 0
        while reached < len(pending) and pending[reached][0] <= read_position:
            lags.append(at - pending[reached][1])
            reached += 1
        del pending[:reached]
    return lags, len(pending)


def lag_summary(samples):
    """The lags' p50/p95/p99/max in ms, how many notifications they cover, and the sampling resolution achieved."""
    lags, unreached = live_lags(samples)
    ms = sorted(lag * 1000 for lag in lags)
    intervals = [later[0] - earlier[0] for earlier, later in itertools.pairwise(samples)]
    return {
        "notifications": len(ms),
        "not_reached": unreached,
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1] if ms else None,
        "samples": len(samples),
        "median_interval_ms": statistics.median(intervals) * 1000 if intervals else None,
    }


class LagSampler:
    """A thread that samples (time.monotonic(), the orders store's highest notification id, the read side's tracking
    position for orders) every `interval` seconds between `start()` and `stop()`. `store_env` is the orders event
    store's eventsourcing environment (shared.settings.event_store_env); `read_side` a PostgreSQL DSN (schema
    `read_schema`) or a SQLite file path. Light on purpose: one connection each, the same two prepared statements,
    a tuple per sample."""

    def __init__(self, store_env, read_side, read_schema, interval=0.002):
        self.interval = interval
        self.samples = []
        self.cpu_s = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)
        self._closing = contextlib.ExitStack()
        self.backend_pids = []  # its PostgreSQL backends, for the CPU meter to leave out
        if store_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
            self._store_max = self._sqlite_reader(store_env["SQLITE_DBNAME"],
                                                  "SELECT coalesce(max(rowid), 0) FROM stored_events")
            self._read_position = self._sqlite_reader(read_side, "SELECT coalesce(max(position), 0) FROM tracking "
                                                                 f"WHERE application = '{LAG_APPLICATION}'")
        else:
            self._store_max = self._postgres_reader(
                psycopg.conninfo.make_conninfo(
                    host=store_env["POSTGRES_HOST"], port=store_env["POSTGRES_PORT"],
                    dbname=store_env["POSTGRES_DBNAME"], user=store_env["POSTGRES_USER"],
                    password=store_env["POSTGRES_PASSWORD"] or None),
                sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}.{}").format(
                    sql.Identifier(store_env["POSTGRES_SCHEMA"]), sql.Identifier(f"{LAG_APPLICATION}_events")))
            self._read_position = self._postgres_reader(
                read_side, sql.SQL("SELECT coalesce(max(position), 0) FROM {}.tracking WHERE application = {}").format(
                    sql.Identifier(read_schema), sql.Literal(LAG_APPLICATION)))

    def _sqlite_reader(self, path, query):
        # read-only, autocommit: each SELECT is its own read transaction, so it sees the latest commit
        conn = self._closing.enter_context(contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)))
        cursor = conn.cursor()
        return lambda: cursor.execute(query).fetchone()[0]

    def _postgres_reader(self, conninfo, query):
        conn = self._closing.enter_context(psycopg.connect(conninfo, autocommit=True))
        self.backend_pids.append(conn.info.backend_pid)
        cursor = conn.cursor()
        return lambda: cursor.execute(query, prepare=True).fetchone()[0]

    def start(self):
        self._thread.start()

    def stop(self):
        """Stop sampling and close the connections; returns lag_summary of the samples."""
        self._stopping.set()
        if self._thread.ident is not None:
            self._thread.join()
        self._closing.close()
        return dict(lag_summary(self.samples), sampler_cpu_s=self.cpu_s)

    def sample(self):
        """(time.monotonic(), the store's highest notification id, the read side's position), read in that order:
        an event committed between the two reads counts from the next sample, and a position already past the
        store's max is taken as no lag (live_lags), never a negative one."""
        return time.monotonic(), self._store_max(), self._read_position()

    def _run(self):
        append, sample, wait, interval = self.samples.append, self.sample, self._stopping.wait, self.interval
        started = time.thread_time()
        while not wait(interval):
            append(sample())
        self.cpu_s = time.thread_time() - started  # the bench client's cost of sampling, reported to show it light

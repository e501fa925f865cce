"""A bureau's history at scale: LIST latency against the best raw SQL, and a rebuild of the read side from zero.

    PYTHONPATH=. .venv/bin/python -m bench.scale [--orders 100000] [--repeats 60] [--sqlite]

Seeds `--orders` orders in one bureau through the orders application's own code (bench.seeding), builds the read
side from zero with the projector's code (timed: the rebuild row), starts every process, logs in as a manager of
that bureau and times, interleaved, `--repeats` rounds of each LIST over HTTP and the raw SQL that returns the same
rows (documents included) on the same indexes, on one plain connection. Reports p50/p95 and the ratio raw/Stratum
beside the goals of issue 12. A report, not a test: nothing here asserts a timing.
"""
import argparse
import base64
import json
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import requests

from bench import seeding
from bench import write_path as wp
from bench.stats import percentile
from gateway import indexes
from gateway.readstore import read_store
from runtime.config import build_config
from services.identity.domain import Bureau, User
from shared.uris import resource_path

ROOT = Path(__file__).resolve().parent.parent
GOAL_P50_MS = 10
GOAL_RATIO = 0.5
GOAL_REBUILD = 20_000  # events/s
GOAL_REBUILD_RATIO = 0.1
DEEP_OFFSET = 5000
LIMIT = 50


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- the cases ------------------------------------------------------------------------------------------------------

def cases(name, cursor):
    """(label, HTTP path, raw SQL (with {lk}/{lkf}/{docs} tables), raw parameters). The list keys name the bureau
    by its number (:bureau) and break ties by the document's uuid (gateway.indexes). The offset page is chosen in
    the list keys before its 50 documents are read: joined first, both databases read the document of every row the
    offset skips (5,000), which made the raw SQL 5-10x slower than it need be."""
    created, last_id = cursor
    join = "SELECT d.path, d.doc FROM {lk} k JOIN {docs} d ON d.path = k.path WHERE k.bureau = :bureau"
    return [
        ("GET /order/?page[limit]=50", f"/order/?page[limit]={LIMIT}",
         join + f" ORDER BY k.f_created, k.id LIMIT {LIMIT}", {}),
        (f"?filter[status]=new&sort=-created&page[offset]={DEEP_OFFSET}",
         f"/order/?filter[status]=new&sort=-created&page[offset]={DEEP_OFFSET}&page[limit]={LIMIT}",
         f"SELECT d.path, d.doc FROM (SELECT k.path, k.f_created, k.id FROM {{lk}} k WHERE k.bureau = :bureau"
         f" AND k.f_status = 'new' ORDER BY k.f_created DESC, k.id DESC LIMIT {LIMIT} OFFSET {DEEP_OFFSET}) k"
         " JOIN {docs} d ON d.path = k.path ORDER BY k.f_created DESC, k.id DESC", {}),
        ("the same deep page by page[after]", None,  # the path is filled in once the cursor is known
         join + " AND k.f_status = 'new' AND (k.f_created, k.id) < (:created, :id)"
                f" ORDER BY k.f_created DESC, k.id DESC LIMIT {LIMIT}", {"created": created, "id": last_id}),
        ("?filter[name]=<exact> (one row)", f"/order/?filter[name]={name}",
         join + f" AND k.f_name = :name ORDER BY k.f_created, k.id LIMIT {LIMIT}", {"name": name}),
        ("GET /flat-order/?page[limit]=50", f"/flat-order/?page[limit]={LIMIT}",
         join.replace("{lk}", "{lkf}") + f" ORDER BY k.f_created, k.id LIMIT {LIMIT}", {}),
    ]


class RawSQL:
    """The best plain SQL for a case: one connection, the same rows and documents, the same indexes."""

    def __init__(self, dsn, sqlite_path, bureau):
        self.sqlite = sqlite_path is not None
        if self.sqlite:
            self.conn = sqlite3.connect(sqlite_path)
            self.tables = {"lk": indexes.keys_table("order").name, "lkf": indexes.keys_table("flat-order").name,
                           "docs": "documents"}
            self.bureau = self.conn.execute("SELECT id FROM tenants WHERE bureau = ?", (bureau,)).fetchone()[0]
        else:
            self.conn = psycopg2.connect(dsn)
            self.conn.autocommit = True
            self.tables = {"lk": f'gateway."{indexes.keys_table("order").name}"',
                           "lkf": f'gateway."{indexes.keys_table("flat-order").name}"', "docs": "gateway.documents"}
            with self.conn.cursor() as cursor:
                cursor.execute("SELECT id FROM gateway.tenants WHERE bureau = %s", (bureau,))
                self.bureau = cursor.fetchone()[0]

    def run(self, sql, params):
        sql = sql.format(**self.tables)
        params = dict(params, bureau=self.bureau)
        if self.sqlite:
            if "id" in params:  # SQLite keeps a uuid as its 32 hex digits
                params["id"] = params["id"].replace("-", "")
            rows = self.conn.execute(sql, params).fetchall()
            return [(path, json.loads(doc)) for path, doc in rows]
        for key in params:
            sql = sql.replace(f":{key}", f"%({key})s")
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _rows(self, query):
        """The rows of a statement without parameters, on either database."""
        if self.sqlite:
            return self.conn.execute(query).fetchall()
        with self.conn.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchall()

    def wait_for_list_indexes(self, timeout=600):
        """Until every index the LISTs so far asked for is built (gateway.list_index_builds); logs how long."""
        table = "list_key_indexes" if self.sqlite else "gateway.list_key_indexes"
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self._rows(f"SELECT count(*) FROM {table} WHERE state <> 'built'")[0][0]:
                break
            time.sleep(0.1)
        rows = self._rows(f"SELECT resource, field, state FROM {table} ORDER BY resource, field")
        log(f"the list indexes asked for on first use were built {time.monotonic() - started:.1f} s after: "
            + (", ".join(f"{resource}.{field} ({state})" for resource, field, state in rows) or "none"))

    def close(self):
        self.conn.close()


def summary(seconds):
    ms = sorted(s * 1000 for s in seconds)
    return {"count": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
            "max_ms": ms[-1] if ms else None}


def measure_lists(session, base_url, raw, repeats, name, gateway_pid=None):
    """Interleaved rounds: each round times every case once over HTTP and once by raw SQL. `gateway_pid`: the
    gateway's CPU (user + system, /proc) is summed per case over the rounds too (clock ticks of 10 ms: a single
    request is below one, the sum over the rounds is not)."""
    deep = session.get(base_url + f"/order/?filter[status]=new&sort=-created&page[offset]={DEEP_OFFSET - LIMIT}"
                                  f"&page[limit]={LIMIT}").json()
    cursor = deep["meta"]["next"]
    created, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["k"][:2]
    table = cases(name, (created, last_id))
    table[2] = (table[2][0], f"/order/?filter[status]=new&sort=-created&page[after]={cursor}&page[limit]={LIMIT}",
                table[2][2], table[2][3])
    one = session.get(base_url + table[3][1]).json()["resources"][0]["uri"].split(base_url, 1)[-1]
    table.append(("floor: GET /order/<uuid>/ (one document by key)", one,
                  "SELECT d.path, d.doc FROM {docs} d WHERE d.path = :path", {"path": one}))
    checks = {}
    for label, url, sql, params in table:  # the same rows both ways, or the comparison means nothing
        started = time.perf_counter()
        body = session.get(base_url + url).json()
        first_ms = (time.perf_counter() - started) * 1000  # a field's first use: its index is built meanwhile
        listed = body["resources"] if "resources" in body else [body]
        ours = [r["uri"].split(base_url, 1)[-1] for r in listed]
        theirs = [row[0] for row in raw.run(sql, params)]
        checks[label] = {"same_rows": ours == theirs, "rows": len(ours), "total_count": body.get("total_count"),
                         "estimate": body.get("meta", {}).get("total_count_is_estimate"), "first_ms": first_ms}
        if ours != theirs:
            log(f"WARNING: {label}: Stratum and raw SQL disagree ({len(ours)} vs {len(theirs)} rows)")
    raw.wait_for_list_indexes()  # timed after the first use, as a bureau's lists are (gateway.list_index_builds)
    timings = {label: {"stratum": [], "raw": []} for label, *_ in table}
    cpu = {label: 0.0 for label, *_ in table}
    for _ in range(3):  # warm both sides
        for label, url, sql, params in table:
            session.get(base_url + url)
            raw.run(sql, params)
    for _ in range(repeats):
        for label, url, sql, params in table:
            before = wp.cpu_seconds(gateway_pid) if gateway_pid else None
            started = time.perf_counter()
            response = session.get(base_url + url, timeout=wp.REQUEST_TIMEOUT)
            timings[label]["stratum"].append(time.perf_counter() - started)
            if before is not None:
                cpu[label] += (wp.cpu_seconds(gateway_pid) or before) - before
            if response.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {response.status_code} {response.text[:200]}")
            started = time.perf_counter()
            raw.run(sql, params)
            timings[label]["raw"].append(time.perf_counter() - started)
    rows = []
    for label, *_ in table:
        ours, theirs = summary(timings[label]["stratum"]), summary(timings[label]["raw"])
        rows.append({"what": label, "stratum": ours, "raw": theirs, "ratio": theirs["p50_ms"] / ours["p50_ms"],
                     "gateway_cpu_ms": cpu[label] * 1000 / repeats if gateway_pid else None, **checks[label]})
    return rows


def raw_event_read(env, sqlite_dir):
    """rows/s of a plain batched read of the orders service's stored events (the rebuild's raw ceiling)."""
    if sqlite_dir:
        conn = sqlite3.connect(str(Path(sqlite_dir) / "orders.sqlite"))
        table = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%events'").fetchone()[0]
        started, rows, last = time.perf_counter(), 0, 0
        while True:
            batch = conn.execute(f"SELECT rowid, * FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 500",
                                 (last,)).fetchall()
            if not batch:
                break
            rows, last = rows + len(batch), batch[-1][0]
        conn.close()
        return rows / (time.perf_counter() - started)
    conn = psycopg2.connect(env["STRATUM_POSTGRES_DSN"])
    with conn.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'orders' "
                       "AND table_name LIKE '%events'")
        table = f'orders."{cursor.fetchone()[0]}"'
        started, rows, last = time.perf_counter(), 0, 0
        while True:
            cursor.execute(f"SELECT notification_id, originator_id, originator_version, topic, state FROM {table} "
                           "WHERE notification_id > %s ORDER BY notification_id LIMIT 500", (last,))
            batch = cursor.fetchall()
            if not batch:
                break
            rows, last = rows + len(batch), batch[-1][0]
    conn.close()
    return rows / (time.perf_counter() - started)


def analyze(dsn, sqlite_path):
    """Fresh planner statistics after the bulk build (autovacuum would take them soon after; SQLite never does)."""
    if sqlite_path:
        with sqlite3.connect(sqlite_path) as conn:
            conn.execute("ANALYZE")
        return
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("ANALYZE")
    conn.close()


def bureau_manager(base_url, admin, bureau):
    """A manager of the seeded bureau (not a platform administrator): lists are read as a bureau's user reads them."""
    tag = uuid.uuid4().hex[:6]
    username, password = f"manager-{tag}@bench.stratum", f"pw-{tag}-{uuid.uuid4().hex}"
    made = admin.post(base_url + "/users/", json={"username": username, "email": username, "name": "Bench manager",
                                                  "bureau": base_url + bureau, "password": password})
    if made.status_code != 201:
        raise RuntimeError(f"POST /users/: {made.status_code} {made.text[:200]}")
    csrf = admin.get(base_url + "/csrf-token/").json()["token"]
    granted = admin.post(base_url + "/role/", json={"bureau": base_url + bureau, "user": made.headers["Location"],
                                                    "role": "manager", "csrf_token": csrf})
    if granted.status_code != 201:
        raise RuntimeError(f"POST /role/: {granted.status_code} {granted.text[:200]}")
    session = requests.Session()
    response = session.post(base_url + "/sessions/", json={"username": username, "password": password})
    if response.status_code != 201:
        raise RuntimeError(f"login as the bureau manager: {response.status_code} {response.text[:200]}")
    return session


# -- report -----------------------------------------------------------------------------------------------------------

def mark(ok):
    return "✓" if ok else "✗"


def _cpu(row):
    return "—" if row.get("gateway_cpu_ms") is None else f"{row['gateway_cpu_ms']:.1f} ms"


def report_lines(report):
    lines = [f"Stratum at scale — {report['timestamp']} — {report['database']}, {report['orders']} orders "
             f"(seeded in {report['seed_s']:.0f} s; the followers caught up {report['idle_wait_s']:.0f} s after the "
             f"start), {report['repeats']} interleaved rounds, as a bureau manager",
             "",
             f"{'what':<52} {'Stratum p50 (p95)':>20} {'raw SQL p50':>12} {'ratio':>6} {'gw CPU':>8}   goal: p50 < "
             f"{GOAL_P50_MS} ms, ratio ≥ {GOAL_RATIO}"]
    for row in report["lists"]:
        ours, theirs = row["stratum"], row["raw"]
        lines.append(f"{row['what']:<52} {ours['p50_ms']:7.1f} ms ({ours['p95_ms']:6.1f}) {theirs['p50_ms']:9.2f} ms "
                     f"{row['ratio']:6.2f} {_cpu(row):>8}   {mark(ours['p50_ms'] < GOAL_P50_MS)} {mark(row['ratio'] >= GOAL_RATIO)}"
                     f"{'' if row['same_rows'] else '  (rows differ!)'}")
    rebuild = report["rebuild"]
    lines += ["", f"{'rebuild the read side from zero':<52} {rebuild['events_per_s']:9.0f} events/s "
                  f"({rebuild['events']} events in {rebuild['seconds']:.0f} s)   raw batched read "
                  f"{rebuild['raw_rows_per_s']:.0f} rows/s   ratio {rebuild['ratio']:.4f}   goal ≥ {GOAL_REBUILD} "
                  f"events/s {mark(rebuild['events_per_s'] >= GOAL_REBUILD)}, ratio ≥ {GOAL_REBUILD_RATIO} "
                  f"{mark(rebuild['ratio'] >= GOAL_REBUILD_RATIO)}",
              f"{'':<52} (gateway.follower over each service's feed with the read side's current code)"]
    lines.append("(gw CPU: the gateway process's user + system CPU per request, the mean over the rounds)")
    lines.append("(the floor row is no LIST: what any authenticated GET costs here, for reading the others)")
    lines.append("first use (the index of a field built meanwhile, on the first LIST that uses it): " + ", ".join(
        f"{row['what'][:24]} {row['first_ms']:.0f} ms" for row in report["lists"] if row.get("first_ms") is not None))
    for row in report["lists"]:
        if row["estimate"]:
            lines.append(f"note: {row['what']}: total_count {row['total_count']} is an estimate (past the bound)")
    return lines


def run(args):
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with wp.throwaway_database(wp.PG_ADMIN_DSN) as dsn, wp.throwaway_vhost(wp.AMQP_BASE) as amqp_uri, \
            tempfile.TemporaryDirectory(prefix="stratum-scale-") as workdir:
        port = wp.free_port()
        env = wp.service_env("" if args.sqlite else dsn, amqp_uri, port, workdir)
        wp.run_migrate(env)
        config = build_config(environ=env)
        bureau = resource_path("bureau", Bureau.id_for_name(config["STRATUM_BUREAU_NAME"]))
        admin_user = resource_path("users", User.id_for_bootstrap(config["STRATUM_ADMIN_EMAIL"]))
        seeding.bootstrap_identity(env)
        log(f"seeding {args.orders} orders with {args.processes} processes")
        seed_s = seeding.seed_orders(env, args.orders, bureau, admin_user, args.processes, log=log)
        log(f"seeded in {seed_s:.0f} s; building the read side from zero with the projector's code")
        store = read_store(config)
        try:
            events, rebuild_s = seeding.build_read_side(env, store, log=log)
        finally:
            store.dispose()
        analyze(dsn, None if not args.sqlite else str(Path(workdir) / "readside.sqlite"))
        raw_read = raw_event_read(env, workdir if args.sqlite else None)
        base_url = f"http://127.0.0.1:{port}"
        with wp.running_system(env, workdir) as processes:
            wp.wait_for_gateway(base_url, processes)
            with wp.login(base_url, processes) as admin:
                session = bureau_manager(base_url, admin, bureau)
            time.sleep(args.settle)
            quiet_s = wait_until_idle(processes, args.idle_timeout)
            raw = RawSQL(dsn, None if not args.sqlite else str(Path(workdir) / "readside.sqlite"), bureau)
            try:
                log(f"measuring: {args.repeats} interleaved rounds")
                name = seeding.order_payload(args.orders // 2)["name"]
                lists = measure_lists(session, base_url, raw, args.repeats, name, processes["gateway"].pid)
            finally:
                raw.close()
            died = wp.exited(processes)
    return {
        "timestamp": timestamp, "database": "SQLite" if args.sqlite else "PostgreSQL", "orders": args.orders,
        "repeats": args.repeats, "seed_s": seed_s, "lists": lists, "exited_during_run": died, "idle_wait_s": quiet_s,
        "rebuild": {"events": events, "seconds": rebuild_s, "events_per_s": events / rebuild_s,
                    "raw_rows_per_s": raw_read, "ratio": events / rebuild_s / raw_read},
        "goals": {"p50_ms": GOAL_P50_MS, "ratio": GOAL_RATIO, "rebuild_events_per_s": GOAL_REBUILD,
                  "rebuild_ratio": GOAL_REBUILD_RATIO},
    }


IDLE_SHARE = 0.2  # of one core, all Stratum processes together (a catch-up keeps one core busy; idle ones tick)


def wait_until_idle(processes, timeout):
    """Wait until the followers have caught up with the seeded history (the notifications, production and materials
    services follow the orders feed, which the seeding filled without doorbells): until Stratum's processes together
    use under IDLE_SHARE of a core over a second. Otherwise the LISTs would be timed against that catch-up's load,
    which a bureau's steady state does not have. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(wp.cpu_seconds(p.pid) or 0.0 for p in processes.values())
        time.sleep(1.0)
        if sum(wp.cpu_seconds(p.pid) or 0.0 for p in processes.values()) - before < IDLE_SHARE:
            break
    waited = time.monotonic() - started
    log(f"the followers caught up with the seeded history in {waited:.0f} s")
    return waited


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--processes", type=int, default=2, help="seeding processes")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to let the system settle before timing")
    parser.add_argument("--sqlite", action="store_true", help="event stores and read side on SQLite")
    parser.add_argument("--idle-timeout", type=float, default=1800.0,
                        help="at most this many seconds waiting for the followers to catch up before timing")
    args = parser.parse_args(argv)
    if args.orders < 2 * DEEP_OFFSET:
        parser.error(f"--orders must be at least {2 * DEEP_OFFSET} (the deep page is at offset {DEEP_OFFSET})")
    return args


def main(argv=None):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = run(parse_args(argv))
    print("", *report_lines(report), "", sep="\n")
    wp.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = wp.RESULTS_DIR / f"scale-{'sqlite' if report['database'] == 'SQLite' else 'pg'}-" \
                            f"{report['timestamp'].replace(':', '').replace('-', '')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

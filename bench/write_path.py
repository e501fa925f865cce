"""Write-path benchmark: how fast Stratum takes orders over HTTP, and how close that is to what PostgreSQL allows.

    python -m bench.write_path [--requests 800] [--clients 16] [--lag-samples 100] [--sqlite] [--gateways N]
                                                                                        (or `make bench ARGS=…`)

One run builds a throwaway PostgreSQL database and RabbitMQ vhost, migrates, starts every process of
runtime.topology (the services, the projector, the gateway: as many gateway processes on the one port as
--gateways or STRATUM_GATEWAY_PROCESSES says, else one) as subprocesses, as `make run` does,
and measures:

(a) throughput: concurrent clients POST /order/; orders/s and latency p50/p99; and the server CPU each Stratum
    process (each gateway process apart, and all of them together) spent per order meanwhile (utime + stime from
    /proc/<pid>/stat before and after), with PostgreSQL's backends for this database and the RabbitMQ node beside
    them for information (those servers are shared);
(a′) live lag at load (issue 12's goal: p99 < 50 ms), during (a): for each order event stored meanwhile, the time
    from its notification being committed in the orders event store to the read side's tracking position for
    `orders` reaching it (moved by the projector or by the gateway's catch-up for read-your-writes), seen by a
    thread of this client polling both every 2 ms on its own connections (bench.live_lag);
(b) write→visible lag: POST an order, then poll the listing until it shows; p50/p99. The gateway answers a write
    only once its read side holds it, so this is normally the POST latency plus one GET (visible at the first poll);
(c) the ceiling: one connection to the same PostgreSQL server looping BEGIN; LOCK TABLE … IN EXCLUSIVE MODE;
    INSERT one stored-event-shaped row; COMMIT — rows/s.

Why (c) is the honest ceiling: eventsourcing takes that EXCLUSIVE table lock in every transaction that records
events, so all writes to one application's table (here: every order) are serialised, one commit after another,
whatever the number of clients or processes. A raw single-connection INSERT+COMMIT loop is therefore the best the
write path could ever do on this server; (a)/(c) says how much of it the whole stack (HTTP, RPC over RabbitMQ,
the domain model, the read side) keeps. Each order actually commits two rows (the event and its command receipt)
in one transaction, so the ceiling is slightly generous.

No timing is asserted: this prints a report and writes it as JSON to bench/results/.
"""
import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import requests

from bench.live_lag import LAG_APPLICATION, LagSampler
from bench.stats import percentile
from gateway.readstore import read_store_url
from gateway.tables import READ_SCHEMA
from runtime.config import build_config
from runtime.topology import APPLICATIONS, gateway_processes, instances, process_of
from shared.settings import event_store_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
PG_ADMIN_DSN = os.environ.get("STRATUM_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("STRATUM_BENCH_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
ADMIN_EMAIL = "admin@bench.stratum"
ADMIN_PASSWORD = "bench-" + uuid.uuid4().hex
STARTUP_TIMEOUT = 90  # seconds for every process to come up and the admin to be able to log in
STOP_TIMEOUT = 15  # seconds between SIGTERM and SIGKILL
REQUEST_TIMEOUT = 30
VISIBLE_TIMEOUT = 10  # seconds a lag sample may poll before it counts as never visible
SETTLE_TIMEOUT = 60  # seconds to wait for the projector's doorbell backlog to drain between (a) and (b)
DOORBELL_QUEUE_MARK = "events_recorded"  # in the name of every projector doorbell queue
POLL_INTERVAL = 0.002
CPU_GOAL_MS = 4.0  # issue 12 goal 3: server CPU per POST /order/, all Stratum processes together
THROUGHPUT_GOAL = 0.25  # …and (a)/(c) at 16 clients
LIVE_LAG_GOAL_MS = 50.0  # issue 12 goal 2: live lag p99 at the write benchmark's load
LAG_SAMPLE_INTERVAL = 0.002  # (a′)'s polling period (the interval achieved is reported: queries take time too)
STATE_BYTES = 200  # a stored order event's state is about this size


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- throwaway infrastructure ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def throwaway_database(admin_dsn):
    """A fresh database `stratum_bench_<hex>` on the admin DSN's server; yields its DSN, drops it at the end."""
    name = f"stratum_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    log(f"created PostgreSQL database {name}")
    try:
        yield urlunparse(urlparse(admin_dsn)._replace(path="/" + name))
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log(f"dropped PostgreSQL database {name}")


def rabbitmqctl(*args):
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def throwaway_vhost(amqp_base):
    """A fresh RabbitMQ vhost; yields the AMQP URI with it, deletes it at the end. Without rabbitmqctl (or the
    right to use it), falls back to the broker's default vhost."""
    vhost = f"stratum-bench-{uuid.uuid4().hex[:8]}"
    created = shutil.which("rabbitmqctl") is not None and rabbitmqctl("add_vhost", vhost).returncode == 0
    if not created:
        log("could not create a RabbitMQ vhost (rabbitmqctl missing or refused): using the default vhost")
        yield amqp_base
        return
    user = urlparse(amqp_base).username or "guest"
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    log(f"created RabbitMQ vhost {vhost}")
    try:
        yield amqp_base.rstrip("/") + "/" + vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)
        log(f"deleted RabbitMQ vhost {vhost}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PASSED_KNOBS = ("STRATUM_LIST_INDEXES",)  # gateway.indexes: "all" builds every field's list-key index from the start


def service_env(postgres_dsn, amqp_uri, port, data_dir, gateways=None):
    """The environment of every Stratum process: ours, with no STRATUM_* or AMQP_URI leaking in from the caller,
    except the knobs a bench compares (PASSED_KNOBS: A/B runs set them in the caller's environment)."""
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith("STRATUM_") or k in PASSED_KNOBS) and k != "AMQP_URI"}
    env.update({
        "STRATUM_POSTGRES_DSN": postgres_dsn,
        "AMQP_URI": amqp_uri,
        "STRATUM_PORT": str(port),
        "STRATUM_DATA_DIR": data_dir,
        "STRATUM_ADMIN_EMAIL": ADMIN_EMAIL,
        "STRATUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "STRATUM_LOG_LEVEL": "WARNING",
        "PSYCOPG_WAIT_FUNC": "wait_select",
        "PYTHONPATH": str(ROOT),
    })
    if gateways:
        env["STRATUM_GATEWAY_PROCESSES"] = str(gateways)
    return env


def run_migrate(env):
    result = subprocess.run([sys.executable, "-m", "runtime.migrate"], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"python -m runtime.migrate failed:\n{result.stdout}{result.stderr}")
    log("migrated storage")


# -- the running system ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def running_system(env, log_dir):
    """Start every process of runtime.topology (the gateway's copies too: runtime.topology.instances); yield
    {instance name: Popen}. Each one's output goes to a file in log_dir, whose tail is printed if anything fails
    while they run."""
    processes = {}
    try:
        for name in instances(build_config(environ=env)):
            with open(Path(log_dir) / f"{name}.log", "wb") as out:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "runtime.serve", name], env=env, cwd=ROOT,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        log(f"started {', '.join(processes)}")
        yield processes
    except Exception:
        print_log_tails(log_dir)
        raise
    finally:
        stop_in_waves(processes)


def stop_in_waves(processes):
    """Stop the readers (gateway, projector) before the services they call: a reader stopped together with them
    can sit in an RPC to a service that is already gone until its RPC timeout, longer than our grace period."""
    readers = {name: p for name, p in processes.items() if name not in APPLICATIONS}
    stop_processes(readers)
    stop_processes({name: p for name, p in processes.items() if name not in readers})
    if processes:
        log("stopped all processes")


def stop_processes(processes):
    """SIGTERM all, then SIGKILL whatever is still running STOP_TIMEOUT seconds later."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {STOP_TIMEOUT} s: killing it")
            process.kill()
            process.wait()


def print_log_tails(log_dir, lines=30):
    for path in sorted(Path(log_dir).glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print(f"----- {path.stem} (last {len(tail)} lines) -----", *tail, sep="\n", file=sys.stderr)


def exited(processes):
    return {name: p.returncode for name, p in processes.items() if p.poll() is not None}


def check_alive(processes):
    if dead := exited(processes):
        raise RuntimeError(f"process(es) exited: {dead}")


def wait_for_gateway(base_url, processes):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        check_alive(processes)
        try:
            if requests.get(base_url + "/about/", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the gateway did not answer GET /about/ within {STARTUP_TIMEOUT} s")


def login(base_url, processes):
    """Log in as the bootstrap admin; retried, since identity may still be starting when the gateway answers."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        check_alive(processes)
        session = requests.Session()
        try:
            response = session.post(base_url + "/sessions/", timeout=REQUEST_TIMEOUT,
                                    json={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            if response.status_code == 201:
                return session
            problem = f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as error:
            problem = repr(error)
        session.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not log in: {problem}")
        time.sleep(0.5)


def client_session(login_session):
    session = requests.Session()
    session.cookies.update(login_session.cookies)
    return session


# -- measurements ---------------------------------------------------------------------------------------------------

def latency_summary(seconds):
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": sum(ms) / len(ms) if ms else None,
        "max_ms": max(ms) if ms else None,
    }


def post_order(session, base_url, name):
    """POST one order; return (seconds taken, None) on 201, else (seconds, a short error description)."""
    started = time.perf_counter()
    try:
        response = session.post(base_url + "/order/", json={"name": name}, timeout=REQUEST_TIMEOUT)
        error = None if response.status_code == 201 else f"HTTP {response.status_code}"
    except requests.RequestException as exc:
        error = type(exc).__name__
    return time.perf_counter() - started, error


def measure_throughput(base_url, login_session, total, clients, on_start=lambda: None):
    """`clients` threads, each with its own session, POST `total` orders between them as fast as answered.
    `on_start` runs once every client is connected and warmed up, just before the first counted POST."""
    tickets = iter(range(total))
    tickets_lock = threading.Lock()
    latencies, errors = [], {}
    give_up = threading.Event()  # a broken system would otherwise cost `total` timeouts
    max_errors = max(10, total // 10)

    def next_ticket():
        with tickets_lock:
            return None if give_up.is_set() else next(tickets, None)

    def client(number):
        with client_session(login_session) as session:
            post_order(session, base_url, f"bench-warmup-{number}-{uuid.uuid4().hex[:8]}")  # connect, not counted
            ready.wait()
            while (ticket := next_ticket()) is not None:
                seconds, error = post_order(session, base_url, f"bench-{ticket}-{uuid.uuid4().hex[:8]}")
                with tickets_lock:
                    if error is None:
                        latencies.append(seconds)
                    else:
                        errors[error] = errors.get(error, 0) + 1
                        if sum(errors.values()) >= max_errors:
                            give_up.set()

    ready = threading.Barrier(clients + 1, action=on_start)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(client, n) for n in range(clients)]
        try:
            ready.wait()
            started = time.perf_counter()
            for future in futures:
                future.result()
        except BaseException:  # e.g. Ctrl-C: let the clients stop instead of finishing every ticket
            give_up.set()
            ready.abort()
            raise
        elapsed = time.perf_counter() - started
    return {
        "requests": total,
        "clients": clients,
        "succeeded": len(latencies),
        "errors": errors,
        "gave_up": give_up.is_set(),
        "elapsed_s": elapsed,
        "orders_per_s": len(latencies) / elapsed if elapsed else None,
        "latency": latency_summary(latencies),
    }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds the process has used so far (/proc/<pid>/stat utime + stime); None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()  # after "pid (comm)": state is fields[0]
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def infrastructure_pids(postgres_dsn, not_ours=()):
    """The other processes a write costs: this database's PostgreSQL backends (but the bench's own, `not_ours`) and
    the RabbitMQ node. Both servers are shared with anything else running on the machine, so their figures are
    informative, not ours alone."""
    groups = {}
    try:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            dbname = conn.info.dbname
            groups["postgresql (this database's backends)"] = [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
                if row[0] not in not_ours]
    except psycopg.Error as error:  # e.g. the server's connections all taken by others: ours still count
        log(f"PostgreSQL's backends not counted: {error}")
    rabbit = [pid for pid in _pids_named("beam.smp") if b"rabbit" in _cmdline(pid)]
    if rabbit:
        groups["rabbitmq (the whole node)"] = rabbit
    return groups


def _pids_named(comm):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as handle:
                    if handle.read().strip() == comm:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


class CpuMeter:
    """CPU used by each Stratum process (and, for information, PostgreSQL's backends and RabbitMQ) between
    `start()` and `stop()`, from the processes' own counters."""

    def __init__(self, processes, postgres_dsn, not_ours=()):
        self.processes = processes
        self.postgres_dsn = postgres_dsn
        self.not_ours = not_ours  # PostgreSQL backends of the bench itself (the lag sampler's)
        self.before = self.after = None

    def _snapshot(self):
        ours = {name: cpu_seconds(p.pid) for name, p in self.processes.items()}
        infra = {}
        for group, pids in infrastructure_pids(self.postgres_dsn, self.not_ours).items():
            infra[group] = {pid: cpu_seconds(pid) for pid in pids}
        return {"ours": ours, "infra": infra, "at": time.perf_counter()}

    def start(self):
        self.before = self._snapshot()

    def stop(self):
        self.after = self._snapshot()

    def report(self, orders):
        """{process: {"cpu_s", "ms_per_order"}}, the total, and the infrastructure's figures."""
        before, after = self.before, self.after
        per_order = (lambda seconds: seconds * 1000 / orders) if orders else (lambda seconds: None)
        ours = {}
        for name, end in after["ours"].items():
            start = before["ours"].get(name)
            if start is None or end is None:
                continue
            ours[name] = {"cpu_s": end - start, "ms_per_order": per_order(end - start)}
        total = sum(v["cpu_s"] for v in ours.values())
        infra = {}
        for group, ends in after["infra"].items():
            starts = before["infra"].get(group, {})
            # a backend opened during the run counts from 0; one closed during it is missed (pools keep theirs)
            used = sum(end - (starts.get(pid) or 0.0) for pid, end in ends.items() if end is not None)
            infra[group] = {"cpu_s": used, "ms_per_order": per_order(used)}
        wall = after["at"] - before["at"]
        return {
            "orders": orders,
            "wall_s": wall,
            "processes": ours,
            "total_cpu_s": total,
            "total_ms_per_order": per_order(total),
            "infrastructure": infra,
            "cores_busy": (total + sum(v["cpu_s"] for v in infra.values())) / wall if wall else None,
        }


def vhost_of(amqp_uri):
    """The URI's vhost, or None for the default one (shared with anything else on the broker: not inspected)."""
    return urlparse(amqp_uri).path.lstrip("/") or None


def doorbell_backlog(vhost):
    """Messages (ready + unacknowledged) in the projector's doorbell queues; None if they cannot be counted."""
    if vhost is None or shutil.which("rabbitmqctl") is None:
        return None
    result = rabbitmqctl("-q", "list_queues", "-p", vhost, "name", "messages")
    if result.returncode != 0:
        return None
    rows = [line.split() for line in result.stdout.splitlines()]
    return sum(int(row[-1]) for row in rows if len(row) == 2 and DOORBELL_QUEUE_MARK in row[0] and row[1].isdigit())


def settle(vhost):
    """After (a): wait for the projector to work off its doorbell backlog, so (b) measures a quiet system.
    Returns the backlog found and how long it took to drain (None when it cannot be counted)."""
    started = time.perf_counter()
    backlog = doorbell_backlog(vhost)
    if backlog is None:
        time.sleep(5)  # a couple of the projector's catch-up intervals
        return {"doorbell_backlog": None, "drained_in_s": None}
    remaining = backlog
    while remaining and time.perf_counter() - started < SETTLE_TIMEOUT:
        time.sleep(0.25)
        remaining = doorbell_backlog(vhost)
    drained = time.perf_counter() - started if not remaining else None
    return {"doorbell_backlog": backlog, "drained_in_s": drained}


def wait_until_visible(session, base_url, name):
    """Poll the listing for `name` until it shows one order; return (polls, True) or (polls, False) on timeout."""
    deadline = time.perf_counter() + VISIBLE_TIMEOUT
    polls = 0
    while time.perf_counter() < deadline:
        polls += 1
        response = session.get(base_url + "/order/", params={"filter[name]": name}, timeout=REQUEST_TIMEOUT)
        if response.status_code == 200 and response.json()["total_count"] == 1:
            return polls, True
        time.sleep(POLL_INTERVAL)
    return polls, False


def measure_lag(base_url, login_session, samples):
    """One at a time: POST a uniquely named order, then poll until it is listed; time both from sending the POST."""
    post_seconds, visible_seconds, first_poll, failures = [], [], 0, {}
    with client_session(login_session) as session:
        for _ in range(samples):
            name = f"bench-lag-{uuid.uuid4().hex}"
            started = time.perf_counter()
            seconds, error = post_order(session, base_url, name)
            if error is not None:
                failures[error] = failures.get(error, 0) + 1
                continue
            polls, visible = wait_until_visible(session, base_url, name)
            if not visible:
                failures["never visible"] = failures.get("never visible", 0) + 1
                continue
            post_seconds.append(seconds)
            visible_seconds.append(time.perf_counter() - started)
            first_poll += polls == 1
    return {
        "samples": samples,
        "visible_on_first_poll": first_poll,
        "failures": failures,
        "write_to_visible": latency_summary(visible_seconds),
        "post_latency": latency_summary(post_seconds),
    }


CEILING_TABLE = "bench_ceiling_events"


def measure_ceiling(postgres_dsn, rows):
    """Single connection: per row, one transaction taking the EXCLUSIVE table lock, inserting a stored-event-shaped
    row and returning its notification_id, then COMMIT — the statements eventsourcing.postgres issues, pipelined
    as it pipelines them."""
    lock = f"LOCK TABLE {CEILING_TABLE} IN EXCLUSIVE MODE"
    insert = (f"INSERT INTO {CEILING_TABLE} (originator_id, originator_version, topic, state) "
              "VALUES (%s, %s, %s, %s) RETURNING notification_id")
    topic = "services.orders.domain:Order.Created"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        create_ceiling_table(conn)
        with conn.cursor() as cursor:
            started = time.perf_counter()
            for _ in range(rows):
                with conn.pipeline(), conn.transaction():
                    cursor.execute(lock, prepare=True)
                    cursor.execute(insert, (uuid.uuid4(), 1, topic, os.urandom(STATE_BYTES)), prepare=True)
                    cursor.fetchone()
            elapsed = time.perf_counter() - started
        conn.execute(f"DROP TABLE {CEILING_TABLE}")
    return {"rows": rows, "elapsed_s": elapsed, "rows_per_s": rows / elapsed, "state_bytes": STATE_BYTES,
            "pipelined": True}


def measure_sqlite_ceiling(workdir, rows):
    """The same loop on a SQLite file, as eventsourcing's SQLite recorder writes: WAL journal, one writer,
    BEGIN IMMEDIATE; INSERT; COMMIT per row."""
    path = os.path.join(workdir, "ceiling.sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"CREATE TABLE {CEILING_TABLE} (originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, "
                     "topic TEXT, state BLOB, notification_id INTEGER PRIMARY KEY AUTOINCREMENT, "
                     "UNIQUE (originator_id, originator_version))")
        insert = (f"INSERT INTO {CEILING_TABLE} (originator_id, originator_version, topic, state) "
                  "VALUES (?, ?, ?, ?) RETURNING notification_id")
        started = time.perf_counter()
        for _ in range(rows):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(insert, (str(uuid.uuid4()), 1, "services.orders.domain:Order.Created",
                                  os.urandom(STATE_BYTES))).fetchone()
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
        os.remove(path)
    return {"rows": rows, "elapsed_s": elapsed, "rows_per_s": rows / elapsed, "state_bytes": STATE_BYTES,
            "pipelined": False, "storage": "sqlite"}


def create_ceiling_table(conn):
    """The shape of eventsourcing's stored-events table."""
    conn.execute(
        f"CREATE TABLE {CEILING_TABLE} (originator_id uuid NOT NULL, originator_version bigint NOT NULL, "
        "topic text, state bytea, notification_id bigserial, PRIMARY KEY (originator_id, originator_version))")
    conn.execute(f"CREATE UNIQUE INDEX ON {CEILING_TABLE} (notification_id)")


# -- facts, report ----------------------------------------------------------------------------------------------------

def machine_facts(postgres_dsn, amqp_uri):
    with psycopg.connect(postgres_dsn) as conn:
        show = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method")}
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
        "postgresql": show["server_version"],
        "synchronous_commit": show["synchronous_commit"],
        "fsync": show["fsync"],
        "wal_sync_method": show["wal_sync_method"],
        "rabbitmq": rabbitmq_version(),
        "amqp_vhost": vhost_of(amqp_uri) or "/",
    }


def rabbitmq_version():
    if shutil.which("rabbitmqctl") is None:
        return None
    result = rabbitmqctl("version")
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def lag_sampler(env):
    """(a′)'s sampler, on the orders event store and the read side that `env` configures."""
    config = build_config(environ=env)
    read_side = read_store_url(config)
    if isinstance(read_side, str):  # SQLite: "sqlite:///<path>"
        read_side = read_side.removeprefix("sqlite:///")
    else:  # the read side shares the services' PostgreSQL database
        read_side = config["STRATUM_POSTGRES_DSN"]
    return LagSampler(event_store_env(config, LAG_APPLICATION), read_side, READ_SCHEMA, LAG_SAMPLE_INTERVAL)


def ms(value):
    return "n/a" if value is None else f"{value:.1f} ms"


def mark(ok):
    return "✓" if ok else "✗"


def p50_p99(summary):
    return f"p50 {ms(summary['p50_ms'])}   p99 {ms(summary['p99_ms'])}"


def report_lines(report):
    facts, a, b, c = report["machine"], report["throughput"], report["lag"], report["ceiling"]
    indent = " " * 20
    lines = [
        f"Stratum write path — {report['timestamp']} — {report['settings'].get('storage', 'postgresql')}",
        f"machine: nproc {facts['nproc']} · PostgreSQL {facts['postgresql']} "
        f"(synchronous_commit={facts['synchronous_commit']}, fsync={facts['fsync']}) · "
        f"RabbitMQ {facts['rabbitmq'] or 'n/a'} · Python {facts['python']} · psycopg {facts['psycopg']}",
        f"system:  {', '.join(report['processes'])} (one OS process each, max_workers {report['max_workers']}; "
        f"{report['gateway_processes']} gateway process{'es' if report['gateway_processes'] > 1 else ''} on the "
        "one port)",
        "",
        f"(a) throughput      {a['orders_per_s']:8.1f} orders/s   {p50_p99(a['latency'])}",
        f"{indent}{a['succeeded']}/{a['requests']} POST /order/ → 201 from {a['clients']} clients "
        f"in {a['elapsed_s']:.2f} s",
    ]
    if a["errors"] or a["gave_up"]:
        lines.append(f"{indent}errors: {json.dumps(a['errors'])}{'  (gave up early)' if a['gave_up'] else ''}")
    lines += cpu_lines(a["cpu"], report["machine"]["nproc"], indent)
    after = a["after"]
    if after["doorbell_backlog"] is not None:
        drained = "not drained" if after["drained_in_s"] is None else f"drained {after['drained_in_s']:.1f} s later"
        lines.append(f"{indent}projector doorbell backlog at the end: {after['doorbell_backlog']} messages, {drained}")
    lines += live_lag_lines(report["live_lag"], report["live_lag_goal_ms"], indent)
    lines += [
        f"(b) write→visible   {p50_p99(b['write_to_visible'])}   "
        f"({b['write_to_visible']['count']}/{b['samples']} samples, one at a time)",
        f"{indent}POST latency alone: {p50_p99(b['post_latency'])}; "
        f"visible on the first poll: {b['visible_on_first_poll']}/{b['samples']}",
        f"{indent}(the gateway answers a write once its read side holds it, so lag ≈ POST latency + one GET)",
    ]
    if b["failures"]:
        lines.append(f"{indent}failures: {json.dumps(b['failures'])}")
    lines += [
        f"(c) ceiling         {c['rows_per_s']:8.1f} rows/s     {c['rows']} × "
        + ("(BEGIN IMMEDIATE; INSERT; COMMIT) on a SQLite file (WAL)" if c.get("storage") == "sqlite" else
           "(BEGIN; LOCK TABLE … IN EXCLUSIVE MODE; INSERT; COMMIT)") + f" on 1 connection in {c['elapsed_s']:.2f} s",
        "",
        f"(a)/(c)             {report['throughput_vs_ceiling']:.3f}   the HTTP write path runs at "
        f"{report['throughput_vs_ceiling']:.1%} of the single-writer commit ceiling "
        f"(goal {report['throughput_goal_vs_ceiling']})",
        f"CPU/order           {_ms(a['cpu']['total_ms_per_order'])} in Stratum's processes "
        f"(goal {report['cpu_goal_ms_per_order']:.1f} ms: {_ratio(a['cpu']['total_ms_per_order'], report['cpu_goal_ms_per_order'])} "
        f"of it)",
    ]
    if report["exited_during_run"]:
        lines.append(f"WARNING: process(es) exited during the run: {report['exited_during_run']}")
    return lines


def live_lag_lines(lag, goal_ms, indent):
    p99 = lag["p99_ms"]
    return [
        f"(a′) live lag at load  p50 {ms(lag['p50_ms'])}   p95 {ms(lag['p95_ms'])}   p99 {ms(p99)}   "
        f"max {ms(lag['max_ms'])}   (goal p99 < {goal_ms:.0f} ms: {_ratio(p99, goal_ms)} of it "
        f"{'' if p99 is None else mark(p99 < goal_ms)})",
        f"{indent}from the orders event store's commit to the read side's tracking position for {LAG_APPLICATION}: "
        f"{lag['notifications']} notifications",
        f"{indent}({lag['not_reached']} not reached by the end of (a)), sampled every {ms(lag['median_interval_ms'])} "
        f"(median of {lag['samples']}; this client's sampler CPU {_seconds_ms(lag['sampler_cpu_s'])})",
    ]


def _seconds_ms(seconds):
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"


def _ms(value):
    return "n/a" if value is None else f"{value:.2f} ms"


def _ratio(value, goal):
    return "n/a" if value is None else f"{value / goal:.2f}×"


def cpu_lines(cpu, nproc, indent):
    """Per process: CPU ms per order in (a), largest first; then the total, and what it allows on this machine."""
    lines = [f"{indent}server CPU per order during (a), from /proc/<pid>/stat (utime + stime):"]
    for name, figures in sorted(cpu["processes"].items(), key=lambda item: -item[1]["cpu_s"]):
        lines.append(f"{indent}  {name:<14} {_ms(figures['ms_per_order']):>10}")
    gateways = [figures for name, figures in cpu["processes"].items() if process_of(name) == "gateway"]
    if len(gateways) > 1:
        together = sum(figures["ms_per_order"] or 0 for figures in gateways)
        lines.append(f"{indent}  {'(gateways: ' + str(len(gateways)) + ')':<14} {_ms(together):>10}   together")
    lines.append(f"{indent}  {'total':<14} {_ms(cpu['total_ms_per_order']):>10}   "
                 f"(at most {_orders_per_s(cpu['total_ms_per_order'], nproc)} orders/s on {nproc} cores)")
    for group, figures in cpu["infrastructure"].items():
        lines.append(f"{indent}  + {group}: {_ms(figures['ms_per_order'])}")
    if cpu["cores_busy"] is not None:
        lines.append(f"{indent}  cores busy on average: {cpu['cores_busy']:.2f} of {nproc}")
    return lines


def _orders_per_s(ms_per_order, nproc):
    return "n/a" if not ms_per_order else f"{nproc * 1000 / ms_per_order:.0f}"


def write_json(report):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"write_path-{report['timestamp'].replace(':', '').replace('-', '')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


# -- main -------------------------------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.write_path", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=800, help="orders POSTed in (a); rows inserted in (c)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients in (a)")
    parser.add_argument("--lag-samples", type=int, default=100, help="sequential samples in (b)")
    parser.add_argument("--gateways", type=int, default=None,
                        help="gateway processes sharing the HTTP port (default: STRATUM_GATEWAY_PROCESSES, else 1)")
    parser.add_argument("--sqlite", action="store_true",
                        help="event stores and read side on SQLite files (the default deployment); ceiling (c) on "
                             "a SQLite file too")
    args = parser.parse_args(argv)
    if min(args.requests, args.clients, args.lag_samples, args.gateways or 1) < 1:
        parser.error("--requests, --clients, --lag-samples and --gateways must be at least 1")
    return args


def run(args):
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with throwaway_database(PG_ADMIN_DSN) as dsn, throwaway_vhost(AMQP_BASE) as amqp_uri, \
            tempfile.TemporaryDirectory(prefix="stratum-bench-") as workdir:
        port = free_port()
        env = service_env("" if args.sqlite else dsn, amqp_uri, port, workdir,
                          args.gateways or os.environ.get("STRATUM_GATEWAY_PROCESSES"))
        run_migrate(env)
        log(f"(c) ceiling: {args.requests} raw transactions, before the services start")
        ceiling = measure_sqlite_ceiling(workdir, args.requests) if args.sqlite else measure_ceiling(dsn, args.requests)
        base_url = f"http://127.0.0.1:{port}"
        with running_system(env, workdir) as processes:
            wait_for_gateway(base_url, processes)
            with login(base_url, processes) as session:
                log(f"up at {base_url}; (a) throughput: {args.requests} orders from {args.clients} clients")
                sampler = lag_sampler(env)
                meter = CpuMeter(processes, dsn, not_ours=sampler.backend_pids)

                def start_measuring():
                    sampler.start()
                    meter.start()

                try:
                    throughput = measure_throughput(base_url, session, args.requests, args.clients,
                                                    start_measuring)
                    meter.stop()
                finally:
                    live_lag = sampler.stop()
                throughput["cpu"] = meter.report(throughput["succeeded"])
                throughput["after"] = settle(vhost_of(amqp_uri))
                log(f"(b) write→visible lag: {args.lag_samples} samples")
                lag = measure_lag(base_url, session, args.lag_samples)
            if died := exited(processes):  # reported, not raised: the figures so far are still worth keeping
                log(f"process(es) exited during the run: {died}")
                print_log_tails(workdir)
        facts = machine_facts(dsn, amqp_uri)
    return {
        "timestamp": timestamp,
        "machine": facts,
        "throughput": throughput,
        "live_lag": live_lag,
        "lag": lag,
        "ceiling": ceiling,
        "processes": list(instances(build_config(environ=env))),
        "gateway_processes": gateway_processes(build_config(environ=env)),
        "max_workers": build_config(environ=env)["max_workers"],
        "settings": {"requests": args.requests, "clients": args.clients, "lag_samples": args.lag_samples,
                     "storage": "sqlite" if args.sqlite else "postgresql"},
        "exited_during_run": died,
        "throughput_vs_ceiling": (throughput["orders_per_s"] or 0) / ceiling["rows_per_s"],
        "cpu_goal_ms_per_order": CPU_GOAL_MS,
        "throughput_goal_vs_ceiling": THROUGHPUT_GOAL,
        "live_lag_goal_ms": LIVE_LAG_GOAL_MS,
    }


def main(argv=None):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a SIGTERM still runs every clean-up
    report = run(parse_args(argv))
    print("", *report_lines(report), "", sep="\n")
    print(f"results: {write_json(report).relative_to(ROOT)}")


if __name__ == "__main__":
    main()

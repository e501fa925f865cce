"""The gateway's CPU per request: what its HTTP edge costs for a write and for the floor of every read.

    python -m bench.edge [--rounds 3] [--posts 300] [--gets 600] [--clients 16] [--sqlite]

One throwaway system as bench.write_path starts it (every process of runtime.topology). Each round: `--clients`
clients POST /order/ `--posts` times, then GET /order/<uuid>/ `--gets` times over the orders made; the CPU the
gateway process (and, for the POSTs, every Stratum process) spent meanwhile is read from /proc/<pid>/stat. The
machine is shared, so CPU counters are the figures to compare (wall time beside them for information); for an A/B,
run it from each checkout in turn. Prints a report and writes JSON to bench/results/; asserts no timing.
"""
import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from bench.write_path import (AMQP_BASE, PG_ADMIN_DSN, REQUEST_TIMEOUT, RESULTS_DIR, client_session, cpu_seconds,
                              latency_summary, log, login, measure_throughput, run_migrate, running_system,
                              service_env, free_port, throwaway_database, throwaway_vhost, wait_for_gateway)


def order_paths(session, base_url, limit=50):
    response = session.get(base_url + f"/order/?page[limit]={limit}", timeout=REQUEST_TIMEOUT)
    response.raise_for_status()
    base = base_url.rstrip("/")
    return [resource["uri"].removeprefix(base) for resource in response.json()["resources"]]


def measure_gets(base_url, login_session, paths, total, clients):
    """`clients` threads GET the `paths` in turn, `total` times between them; (seconds each, failures)."""
    tickets, lock, seconds, failures = iter(range(total)), threading.Lock(), [], []

    def client(_):
        with client_session(login_session) as session:
            while True:
                with lock:
                    ticket = next(tickets, None)
                if ticket is None:
                    return
                started = time.perf_counter()
                status = session.get(base_url + paths[ticket % len(paths)], timeout=REQUEST_TIMEOUT).status_code
                with lock:
                    (seconds if status == 200 else failures).append(time.perf_counter() - started)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    return seconds, failures


def cpu_of(processes):
    return {name: cpu_seconds(process.pid) for name, process in processes.items()}


def spent(before, after, name=None):
    names = [name] if name else before
    return sum((after[n] or 0.0) - (before[n] or 0.0) for n in names)


def one_round(base_url, session, processes, args):
    before = {}
    posts = measure_throughput(base_url, session, args.posts, args.clients, lambda: before.update(cpu_of(processes)))
    after_posts = cpu_of(processes)
    paths = order_paths(session, base_url)
    before_gets = cpu_of(processes)
    started = time.perf_counter()
    gets, failures = measure_gets(base_url, session, paths, args.gets, args.clients)
    wall = time.perf_counter() - started
    after_gets = cpu_of(processes)
    made = posts["succeeded"] or 1
    return {
        "post_gateway_cpu_ms": 1000 * spent(before, after_posts, "gateway") / made,
        "post_all_cpu_ms": 1000 * spent(before, after_posts) / made,
        "post_orders_per_s": posts["orders_per_s"],
        "post_latency": posts["latency"],
        "post_errors": posts["errors"],
        "get_gateway_cpu_ms": 1000 * spent(before_gets, after_gets, "gateway") / max(1, len(gets)),
        "get_per_s": len(gets) / wall if wall else None,
        "get_latency": latency_summary(gets),
        "get_failures": len(failures),
    }


def run(args):
    with throwaway_database(PG_ADMIN_DSN) as dsn, throwaway_vhost(AMQP_BASE) as amqp_uri, \
            tempfile.TemporaryDirectory(prefix="stratum-bench-") as workdir:
        port = free_port()
        env = service_env("" if args.sqlite else dsn, amqp_uri, port, workdir)
        run_migrate(env)
        base_url = f"http://127.0.0.1:{port}"
        with running_system(env, workdir) as processes:
            wait_for_gateway(base_url, processes)
            with login(base_url, processes) as session:
                rounds = []
                for number in range(args.rounds):
                    log(f"round {number + 1} of {args.rounds}: {args.posts} POSTs, {args.gets} GETs")
                    rounds.append(one_round(base_url, session, processes, args))
    return rounds


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.edge", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--gets", type=int, default=600)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sqlite", action="store_true", help="event stores and read side on SQLite files")
    args = parser.parse_args(argv)
    rounds = run(args)
    figures = ("post_gateway_cpu_ms", "post_all_cpu_ms", "post_orders_per_s", "get_gateway_cpu_ms", "get_per_s")
    for figure in figures:
        values = [r[figure] for r in rounds]
        print(f"{figure:22} median {statistics.median(values):8.2f}   rounds: "
              + " ".join(f"{v:.2f}" for v in values))
    print("GET p50 ms:", " ".join(f"{r['get_latency']['p50_ms']:.2f}" for r in rounds),
          "  POST p50 ms:", " ".join(f"{r['post_latency']['p50_ms']:.1f}" for r in rounds))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"edge-{stamp}.json"
    path.write_text(json.dumps({"settings": vars(args), "rounds": rounds}, indent=1))
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

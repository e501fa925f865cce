"""`make run`: start the whole system on this machine — migrate storage, then every process of runtime.topology,
each in its own OS process, until Ctrl-C. Fails early and clearly when RabbitMQ cannot be reached."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse

from runtime.budget import connection_budget, describe_budget, server_headroom
from runtime.config import build_config
from runtime.migrate import migrate
from runtime.topology import PROCESSES


def broker_reachable(amqp_uri):
    parsed = urlparse(amqp_uri)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), timeout=3):
            return True
    except OSError:
        return False


def wait_for_gateway(url, processes, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes.values()):
            return False
        try:  # ready, not merely listening: the bootstrap administrator can log in (gateway/health.py)
            with urllib.request.urlopen(url + "/health/ready", timeout=5):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def main():
    config = build_config()
    if not broker_reachable(config["AMQP_URI"]):
        sys.exit(
            f"stratum: RabbitMQ is not reachable at {urlparse(config['AMQP_URI']).netloc.split('@')[-1]}.\n"
            "  Start it, e.g.:  rabbitmq-server -detached      (Debian/Ubuntu package rabbitmq-server)\n"
            "             or:  docker compose up -d rabbitmq\n"
            "  or point AMQP_URI at a running broker (amqp://user:password@host:5672/)."
        )
    migrate(config)
    if config["STRATUM_POSTGRES_DSN"]:
        budget = connection_budget(config)
        print(f"stratum: {describe_budget(budget)}", flush=True)
        warning = server_headroom(config["STRATUM_POSTGRES_DSN"], budget)
        if warning:
            print(f"stratum: warning: {warning}", file=sys.stderr, flush=True)
    env = dict(os.environ, PSYCOPG_IMPL="python")
    processes = {name: subprocess.Popen([sys.executable, "-m", "runtime.serve", name], env=env) for name in PROCESSES}

    def stop(*_):
        # The gateway and projector call the services: stop them first, so none of their calls waits out its
        # timeout against a service that is already gone.
        callers = [p for name, p in processes.items() if name in ("gateway", "projector")]
        for wave in (callers, [p for p in processes.values() if p not in callers]):
            for process in wave:
                if process.poll() is None:
                    process.terminate()
            for process in wave:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    url = f"http://{config['STRATUM_HOST']}:{config['STRATUM_PORT']}"
    storage = "PostgreSQL" if config["STRATUM_POSTGRES_DSN"] else f"SQLite in {config['STRATUM_DATA_DIR']}"
    try:
        if wait_for_gateway(url, processes):
            print(f"stratum: up at {url}  (storage: {storage}; Ctrl-C stops)", flush=True)
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        print(f"stratum: process(es) {', '.join(dead)} stopped; shutting down the rest", file=sys.stderr)
        stop()
        sys.exit(1)
    except KeyboardInterrupt:
        stop()


if __name__ == "__main__":
    main()

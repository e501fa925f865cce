"""`make run`: start the whole system on this machine — migrate storage, then every process of runtime.topology,
each in its own OS process, supervised until Ctrl-C (or SIGTERM). Fails early and clearly when RabbitMQ cannot be
reached; enables RabbitMQ's MQTT plugin when it is off (runtime.mqtt), saying so.

Supervision: a process that exits is started again after a backoff that doubles on each exit in a row
(1 s, 2 s, 4 s … capped at 30 s) and starts over once it has run for a minute; each restart is logged, and the
other processes keep serving meanwhile. Only Ctrl-C or SIGTERM stops everything (callers first).

Several gateway processes (STRATUM_GATEWAY_PROCESSES; runtime.topology.instances) listen on the one port: each
binds it with SO_REUSEPORT (eventlet.listen does, nameko's WebServer calls it) and the kernel hands every new
connection to one of them. Each is a child of its own here (its own restarts and backoff, stopped with the callers);
a machine without SO_REUSEPORT is refused at the start, before the second would fail to bind again and again."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import urlparse

from runtime.budget import connection_budget, describe_budget, server_headroom
from runtime.config import build_config
from runtime.migrate import migrate
from runtime.mqtt import ensure_mqtt_plugin, mqtt_port
from runtime.topology import gateway_processes, instances, process_of

BACKOFF_FIRST = 1.0  # seconds before the first restart of a process
BACKOFF_CAP = 30.0
STABLE_AFTER = 60.0  # a process that ran this long before exiting starts over at BACKOFF_FIRST
# The gateway and projector call the services: they stop first, so none of their calls waits out its timeout
# against a service that is already gone.
STOP_FIRST = ("gateway", "projector")


def say(message, out=None):
    print(f"{datetime.now():%H:%M:%S} stratum: {message}", file=out or sys.stderr, flush=True)


class Supervisor:
    """Keeps named child processes running: `poll()` restarts those that exited (after their backoff), `stop()`
    ends them all."""

    def __init__(self, commands, env=None, first=BACKOFF_FIRST, cap=BACKOFF_CAP, stable_after=STABLE_AFTER,
                 out=None):
        self.commands = dict(commands)
        self.env = env
        self.first, self.cap, self.stable_after = first, cap, stable_after
        self.out = out
        self.processes = {}
        self.started_at = {}
        self.backoff = {}  # name → the delay its last restart waited
        self.due = {}  # name → when it is started again
        self.restarts = {name: 0 for name in self.commands}
        self.history = []  # (name, exit code, delay before its restart), for the log and the tests
        self.stopping = False

    def start(self):
        for name in self.commands:
            self._spawn(name)

    def _spawn(self, name):
        self.processes[name] = subprocess.Popen(self.commands[name], env=self.env)
        self.started_at[name] = time.monotonic()

    def poll(self):
        """Schedule the restart of every process that exited, and restart those whose backoff is over."""
        if self.stopping:
            return
        now = time.monotonic()
        for name, process in self.processes.items():
            code = process.poll()
            if code is None or name in self.due:
                continue
            ran = now - self.started_at[name]
            previous = self.backoff.get(name)
            delay = self.first if previous is None or ran >= self.stable_after else min(previous * 2, self.cap)
            self.backoff[name] = delay
            self.due[name] = now + delay
            self.history.append((name, code, delay))
            say(f"{name} exited with code {code} after {ran:.1f} s; restarting it in {delay:g} s", self.out)
        for name, when in list(self.due.items()):
            if now >= when:
                del self.due[name]
                self.restarts[name] += 1
                self._spawn(name)
                say(f"{name} restarted (restart #{self.restarts[name]}, pid {self.processes[name].pid})", self.out)

    def stop(self, first=STOP_FIRST, timeout=15):
        """Stop every process (those named in `first` before the rest); no restart happens from here on."""
        self.stopping = True
        self.due.clear()
        waves = [[n for n in self.processes if process_of(n) in first],
                 [n for n in self.processes if process_of(n) not in first]]
        for wave in waves:
            for name in wave:
                if self.processes[name].poll() is None:
                    self.processes[name].terminate()
            for name in wave:
                try:
                    self.processes[name].wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.processes[name].kill()
                    self.processes[name].wait()

    def kill(self):
        self.stopping = True
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()


class Stop(Exception):
    """Raised in the main loop by SIGTERM (Ctrl-C raises KeyboardInterrupt)."""


def supervise(supervisor, tick=None, interval=0.5):
    """Start the supervisor's processes and keep them running until Ctrl-C or SIGTERM, calling `tick()` each round;
    then stop them all. A second signal while stopping kills what is left."""
    def on_sigterm(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    supervisor.start()
    try:
        while True:
            supervisor.poll()
            if tick is not None:
                tick()
            time.sleep(interval)
    except (KeyboardInterrupt, Stop):
        def kill_now(signum, frame):
            supervisor.kill()

        signal.signal(signal.SIGTERM, kill_now)
        signal.signal(signal.SIGINT, kill_now)
        supervisor.stop()


def broker_reachable(amqp_uri):
    parsed = urlparse(amqp_uri)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), timeout=3):
            return True
    except OSError:
        return False


def reuse_port_works(host):
    """Whether two sockets can listen on one port of `host` with SO_REUSEPORT (Linux ≥ 3.9, the BSDs), as the
    gateway processes do: where they cannot, the second gateway's bind fails (EADDRINUSE), over and over."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return False
    sockets = []
    try:
        for _ in range(2):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, sockets[0].getsockname()[1] if len(sockets) > 1 else 0))
            sock.listen(1)
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def readiness(url):
    """(ready, what is not ready yet) from the gateway's readiness endpoint: ready, and every service listening (a
    client's first upload must not meet a files service still starting)."""
    try:
        with urllib.request.urlopen(url + "/health/ready", timeout=5) as response:
            return ready_body_verdict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        try:
            return False, json.loads(error.read()).get("waiting_for", "")
        except ValueError:
            return False, f"HTTP {error.code}"
    except OSError as error:
        return False, f"the gateway does not answer yet ({error})"


def ready_body_verdict(body):
    """(ready, what is not) from a 200 readiness body: every service must listen too."""
    listening = body.get("checks", {}).get("services", {}).get("listening", {})
    silent = sorted(name for name, ok in listening.items() if not ok)
    if silent or not listening:
        return False, f"services to listen: {', '.join(silent) or 'unknown'}"
    return True, ""


class ReadyAnnouncer:
    """Says "up at …" once the gateway reports ready (not merely listening), and what it waits for if that takes
    long."""

    def __init__(self, url, storage, patience=60):
        self.url, self.storage = url, storage
        self.since = time.monotonic()
        self.patience = patience
        self.announced = False
        self.checked = 0.0

    def __call__(self):
        now = time.monotonic()
        if self.announced or now - self.checked < 0.5:
            return
        self.checked = now
        ready, waiting_for = readiness(self.url)
        if ready:
            self.announced = True
            print(f"stratum: up at {self.url}  (storage: {self.storage}; Ctrl-C stops)", flush=True)
        elif now - self.since > self.patience:
            say(f"not ready after {self.patience} s: {waiting_for}; still waiting")
            self.since = now


def main():
    config = build_config()
    if not broker_reachable(config["AMQP_URI"]):
        sys.exit(
            f"stratum: RabbitMQ is not reachable at {urlparse(config['AMQP_URI']).netloc.split('@')[-1]}.\n"
            "  Start it, e.g.:  rabbitmq-server -detached      (Debian/Ubuntu package rabbitmq-server)\n"
            "             or:  docker compose up -d rabbitmq\n"
            "  or point AMQP_URI at a running broker (amqp://user:password@host:5672/)."
        )
    # machines report over MQTT through RabbitMQ's plugin (services.capture.telemetry): on when it is off, said so
    ensure_mqtt_plugin(mqtt_port(config), say=lambda message: print(message, flush=True))
    migrate(config)
    if config["STRATUM_POSTGRES_DSN"]:
        budget = connection_budget(config)
        print(f"stratum: {describe_budget(budget)}", flush=True)
        warning = server_headroom(config["STRATUM_POSTGRES_DSN"], budget)
        if warning:
            say(f"warning: {warning}")
    gateways = gateway_processes(config)
    if gateways > 1 and not reuse_port_works(config["STRATUM_HOST"]):
        sys.exit(f"stratum: STRATUM_GATEWAY_PROCESSES={gateways}, but this system cannot share a port between "
                 "processes (SO_REUSEPORT). Set STRATUM_GATEWAY_PROCESSES=1.")
    env = dict(os.environ, PSYCOPG_WAIT_FUNC="wait_select")
    supervisor = Supervisor({name: [sys.executable, "-m", "runtime.serve", name] for name in instances(config)},
                            env=env)
    url = f"http://{config['STRATUM_HOST']}:{config['STRATUM_PORT']}"
    storage = "PostgreSQL" if config["STRATUM_POSTGRES_DSN"] else f"SQLite in {config['STRATUM_DATA_DIR']}"
    supervise(supervisor, tick=ReadyAnnouncer(url, storage))


if __name__ == "__main__":
    main()

"""pytest fixtures for Stratum: a throwaway RabbitMQ vhost, a throwaway PostgreSQL database, storage
parametrised over SQLite and PostgreSQL, and the whole system running in-process with an HTTP client."""
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid

import psycopg
import pytest
import requests

from runtime.config import build_config
from runtime.migrate import migrate
from tests.kit.system import System

ADMIN_EMAIL = "admin@test.stratum"
ADMIN_PASSWORD = "correct horse battery staple"
PG_ADMIN_DSN = os.environ.get("STRATUM_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("STRATUM_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


def _rabbitmqctl(*args):
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_uri():
    """A fresh vhost for the test session, so tests never meet a running `make run` on the default vhost."""
    if shutil.which("rabbitmqctl") is None:
        print("\nstratum tests: rabbitmqctl not found: tests share the broker's default vhost")
        yield AMQP_BASE
        return
    with throwaway_vhost("stratum-test") as vhost:
        yield AMQP_BASE.rstrip("/") + "/" + vhost


@contextlib.contextmanager
def throwaway_vhost(prefix):
    """A RabbitMQ vhost of its own (`<prefix>-<hex>`, guest may use it), deleted afterwards."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    result = _rabbitmqctl("add_vhost", vhost)
    if result.returncode != 0:
        pytest.fail(f"could not create RabbitMQ vhost: {result.stderr.strip()}")
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield vhost
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def postgres_dsn():
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"stratum_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def storage(request, tmp_path_factory):
    """Config overrides for each event-store backend; every test using it runs on both. One store per test module:
    tests in a module share it and stay independent by using unique names (no clean-up between tests)."""
    overrides = {"STRATUM_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    if request.param == "postgres":
        overrides["STRATUM_POSTGRES_DSN"] = request.getfixturevalue("postgres_dsn")
    return overrides


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def config_overrides():
    """Settings a test module needs on top of the defaults (override this fixture in the module)."""
    return {}


@pytest.fixture(scope="module")
def config(storage, amqp_uri, config_overrides):
    cfg = build_config({
        **storage,
        "AMQP_URI": amqp_uri,
        "STRATUM_PORT": str(free_port()),
        "STRATUM_ADMIN_EMAIL": ADMIN_EMAIL,
        "STRATUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "STRATUM_RPC_TIMEOUT": "20",
        **config_overrides,
    }, environ={})
    migrate(cfg)
    return cfg


@pytest.fixture(scope="module")
def system(config):
    """Every service, the projector and the gateway, running in this process on the real broker."""
    # The failed-login limit is per gateway container (gateway.ratelimit.LoginLimit), so each module's system starts
    # afresh: failed logins that modules test on purpose do not add up to a 429 for the modules after them.
    running = System(config)
    running.start()
    yield running
    running.kill()  # a graceful stop waits ~2 s per container for its consumer loop; nothing is in flight here


@pytest.fixture(scope="module")
def admin(system):
    """An HTTP session logged in as the bootstrap administrator."""
    session = login(system.base_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    yield session
    session.close()


def login(base_url, username, password):
    session = ApiSession(base_url)
    response = session.post("/sessions/", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return session


class ApiSession(requests.Session):
    """requests.Session that takes paths relative to the gateway and fails fast instead of hanging."""

    def __init__(self, base_url):
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        if url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", 30)
        return super().request(method, url, *args, **kwargs)


def eventually(check, timeout=15.0, interval=0.05):
    """Poll `check` until it returns a truthy value (returned) or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")

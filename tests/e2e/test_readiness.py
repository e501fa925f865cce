"""D12: ready means ready. Started on a fresh PostgreSQL database, the system answers /about/ (liveness) at once,
but /health/ready says 200 only once the bootstrap administrator can log in; and a login sent before that is a 503
or waits for the bootstrap, never a 401 (which a client takes for a wrong password)."""
import time

import eventlet
import pytest
import requests

from services.identity.application import Identity
from tests.kit.plugin import ADMIN_EMAIL, ADMIN_PASSWORD, eventually
from gateway.readside import FOLLOWED_SERVICES
from tests.kit.system import System

pytestmark = pytest.mark.e2e

SLOW_BOOTSTRAP = 3  # seconds: a busy machine's first start (password hashing, a fresh database), made certain


@pytest.fixture(scope="module")
def storage(tmp_path_factory, postgres_dsn):
    return {"STRATUM_DATA_DIR": str(tmp_path_factory.mktemp("data")), "STRATUM_POSTGRES_DSN": postgres_dsn}


def login(base_url):
    try:
        return requests.post(base_url + "/sessions/", json={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                             timeout=60).status_code
    except requests.ConnectionError:
        return None  # the HTTP server is not listening yet


def readiness(base_url):
    try:
        response = requests.get(base_url + "/health/ready", timeout=60)
    except requests.ConnectionError:
        return None, None
    return response.status_code, response


def test_once_ready_the_bootstrap_administrator_logs_in_and_never_gets_401_before(config, monkeypatch):
    bootstrap = Identity.bootstrap

    def slow_bootstrap(app, *args):
        eventlet.sleep(SLOW_BOOTSTRAP)
        return bootstrap(app, *args)

    monkeypatch.setattr(Identity, "bootstrap", slow_bootstrap)
    system = System(config)
    logins, probes = [], []
    running = True

    def keep_logging_in():
        while running:
            logins.append((time.monotonic(), login(system.base_url)))
            eventlet.sleep(0.1)

    starting = eventlet.spawn(system.start)
    try:
        clients = [eventlet.spawn(keep_logging_in) for _ in range(3)]
        first_ready = None
        while first_ready is None:
            status, response = readiness(system.base_url)
            probes.append(status)
            if status == 200:
                first_ready = time.monotonic()
                assert login(system.base_url) == 201  # as soon as readiness says 200
            else:
                assert status in (None, 503), (status, response.text if response is not None else "")
                if status == 503:
                    assert response.headers["Retry-After"] and response.json()["waiting_for"]
                eventlet.sleep(0.1)
            assert len(probes) < 600, "never ready"
        running = False
        for client in clients:
            client.wait()
        starting.wait()
        assert requests.get(system.base_url + "/about/", timeout=10).status_code == 200
        # before ready: not listening yet, 503 (identity not consuming yet) or a login that waited for the bootstrap
        assert {status for _, status in logins} <= {None, 503, 201}, logins
        assert 401 not in {status for _, status in logins}
        assert any(status == 503 for status in probes)  # it did see a not-ready window
        body = requests.get(system.base_url + "/health/ready", timeout=10).json()
        assert body["status"] == "ready" and body["checks"]["identity"]["ok"] and body["checks"]["read_side"]["ok"]
        assert body["checks"]["dead_letter_queue"]["queue"] == "stratum.dead-letter"
        assert isinstance(body["checks"]["dead_letter_queue"]["messages"], int)
        # every service listens once the system has started (runtime.launch says "up" only then); one that stops
        # is named, and costs only its own requests: the gateway stays ready
        assert body["checks"]["services"] == {"ok": True, "listening": {name: True for name in FOLLOWED_SERVICES}}
        system.stop_service("files")
        body = requests.get(system.base_url + "/health/ready", timeout=10).json()
        assert body["status"] == "ready" and body["checks"]["services"]["ok"] is False
        assert [name for name, ok in body["checks"]["services"]["listening"].items() if not ok] == ["files"]
    finally:
        running = False
        starting.wait()
        system.kill()

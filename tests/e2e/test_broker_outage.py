"""D3: a broker restart takes no service down. While requests flow, the broker goes away (its connections reset,
new ones refused) and comes back; every service must answer again afterwards, without a process restart, and
clients must see answers or 503s meanwhile, never a 500 or a hang: every answer comes within the request's deadline
(its RPC timeout and the grace its command has to leave), however long the broker is away.

The broker is cut off through a TCP proxy in front of the shared RabbitMQ (`tests.kit.tcpproxy`), which is what
`rabbitmqctl stop_app; start_app` does to a client, scoped to this test; a second test closes this test vhost's
connections on the broker itself (`rabbitmqctl close_all_connections --vhost`)."""
import collections
import subprocess
import time
import uuid

import eventlet
import pytest

from runtime.topology import APPLICATIONS
from shared.application import ResourceApplication
from shared.rpc import SENDER_GRACE
from tests.kit.plugin import eventually
from tests.kit.tcpproxy import ProxyProcess

pytestmark = pytest.mark.e2e

RPC_TIMEOUT = 6  # seconds
# A request's longest wait: its command's RPC deadline, the grace its command's message has to leave
# (shared.rpc.SENDER_GRACE), and a margin for this process, which runs the clients and every service together.
LONGEST_ANSWER = RPC_TIMEOUT + SENDER_GRACE + 3
# Longer than kombu's own publish retries (3 × 1 s), which is what used to kill containers, and than a request's
# deadline, so that a request made as the broker goes must be answered 503 before it comes back.
OUTAGE_SECONDS = RPC_TIMEOUT + SENDER_GRACE + 3


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """The broker is what fails here: SQLite keeps the test independent of the database server."""
    return {"STRATUM_DATA_DIR": str(tmp_path_factory.mktemp("data"))}


@pytest.fixture(scope="module")
def broker_proxy():
    proxy = ProxyProcess("127.0.0.1", 5672)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def config_overrides(broker_proxy, amqp_uri):
    vhost = amqp_uri.rsplit("/", 1)[1]
    return {"AMQP_URI": f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/{vhost}",
            "STRATUM_RPC_TIMEOUT": str(RPC_TIMEOUT)}


class Load:
    """Clients writing and reading through the gateway while the test does something to the broker; each answer's
    wait is timed, and one later than LONGEST_ANSWER is a failure like a 500."""

    def __init__(self, api, clients=4):
        self.api = api
        self.statuses = collections.Counter()
        self.failures = []
        self.running = True
        self.threads = [eventlet.spawn(self._client) for _ in range(clients)]

    def _client(self):
        while self.running:
            try:
                created = self._timed("POST", "/order/", json={"name": f"load-{uuid.uuid4().hex[:8]}"})
                if created.status_code == 201:
                    self._timed("GET", created.headers["Location"])
            except Exception as error:  # a hang past the timeout, or a dropped connection
                self.statuses[type(error).__name__] += 1
                self.failures.append(repr(error))
            eventlet.sleep(0.05)

    def _timed(self, verb, url, **kwargs):
        started = time.monotonic()
        response = self.api.request(verb, url, timeout=60, **kwargs)
        waited = time.monotonic() - started
        self.statuses[f"{verb} {response.status_code}"] += 1
        if response.status_code >= 500 and response.status_code != 503:
            self.failures.append(f"{verb} {response.status_code} {response.text[:300]}")
        if waited > LONGEST_ANSWER:
            self.failures.append(f"{verb} {response.status_code} after {waited:.1f} s: {response.text[:200]}")
        return response

    def stop(self):
        self.running = False
        for thread in self.threads:
            thread.wait()
        return self.statuses


def every_service_answers(system, admin):
    """Each event-store service over RPC, the gateway over HTTP (a write and a read), and the projector (a write
    made behind the gateway's back becomes visible only through it)."""
    bureau = admin.get("/sessions/").json()["bureau"].split("127.0.0.1", 1)[-1]
    bureau = bureau[bureau.index("/bureau/"):]
    with system.rpc() as rpc:
        for name in APPLICATIONS:
            getattr(rpc, name).max_position()  # an answer (None for an empty store), not RpcTimeout
        name = f"behind-{uuid.uuid4().hex[:8]}"
        rpc.orders.create("order", {"name": name}, {"user": None, "bureau": bureau, "command_id": str(uuid.uuid4())})
    created = admin.post("/order/", json={"name": f"after-{uuid.uuid4().hex[:8]}"})
    assert created.status_code == 201, created.text
    assert admin.get(created.headers["Location"]).status_code == 200
    eventually(lambda: admin.get(f"/order/?filter[name]={name}").json()["total_count"] == 1, timeout=30)
    return True


def recovered(system, admin):
    """every_service_answers, or what it failed on (falsy), for `eventually`'s message."""
    try:
        return every_service_answers(system, admin)
    except Exception as error:
        return Failed(f"{type(error).__name__}: {error}"[:300])


class Failed(str):
    def __bool__(self):
        return False


def requests_in_flight(system, monkeypatch):
    """Every service busy with a request when the broker goes away, so that each must reply into the outage (what
    killed containers): each one's feed made slow (a slow query), and read once."""
    entered = []
    feed = ResourceApplication.feed

    def slow_feed(app, start, limit):
        entered.append(app.name)
        eventlet.sleep(3)
        return feed(app, start, limit)

    monkeypatch.setattr(ResourceApplication, "feed", slow_feed)

    def ask(name):
        try:
            with system.rpc() as rpc:
                getattr(rpc, name).get_notifications(1, 1)
        except Exception:  # its reply is lost in the outage; what matters is what happens to the service
            pass

    for name in APPLICATIONS:
        eventlet.spawn(ask, name)
    eventually(lambda: set(APPLICATIONS) <= {name.lower() for name in entered}, timeout=15)


def test_every_service_answers_again_after_the_broker_was_away(system, admin, broker_proxy, monkeypatch):
    load = Load(admin)
    eventlet.sleep(2)
    requests_in_flight(system, monkeypatch)
    broker_proxy.down()
    eventlet.sleep(OUTAGE_SECONDS)
    monkeypatch.undo()
    broker_proxy.up()
    eventually(lambda: recovered(system, admin), timeout=90, interval=1)
    statuses = load.stop()

    assert system.dead() == []
    assert load.failures == [], (statuses, load.failures[:5])
    assert statuses["POST 201"] > 0 and statuses["POST 503"] > 0, statuses  # it did serve, and it did see the outage
    assert every_service_answers(system, admin)


def test_every_service_answers_again_after_its_connections_were_closed(system, admin, amqp_uri):
    vhost = amqp_uri.rsplit("/", 1)[1]
    load = Load(admin)
    eventlet.sleep(2)
    for _ in range(2):
        closed = subprocess.run(["rabbitmqctl", "close_all_connections", "--vhost", vhost, "stratum outage test"],
                                capture_output=True, text=True, timeout=60)
        assert closed.returncode == 0, closed.stderr
        eventlet.sleep(1)
    eventually(lambda: recovered(system, admin), timeout=90, interval=1)
    statuses = load.stop()

    assert system.dead() == []
    assert load.failures == [], (statuses, load.failures[:5])
    assert every_service_answers(system, admin)

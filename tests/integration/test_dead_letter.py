"""A message that kills its consumer every time is set aside after a bounded number of deliveries (shared.dead_letter):
the service stays up, its RPC caller gets an error instead of a hang, and the message waits in the dead-letter queue
with its reason. Real broker, real process deaths (tests/kit/poisoned.py ends itself with os._exit), and a loop that
restarts the service as `make run`'s supervisor does."""
import json
import subprocess
import sys
import time

import pytest
from kombu import Connection

from shared.dead_letter import DEAD_LETTER_QUEUE, DELIVERIES_HEADER, dead_letters
from shared.errors import DeadLettered
from tests.kit.poisoned import CRASH_EXIT_CODE, SOURCE

pytestmark = pytest.mark.integration

LIMIT = 3
MAX_RESTARTS = 8  # well past LIMIT: a service that never recovers shows up as running out of these


class Supervised:
    """The poisoned service in a child process, restarted whenever it dies (the deaths are counted)."""

    def __init__(self, amqp_uri):
        self.amqp_uri = amqp_uri
        self.deaths = 0
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen([sys.executable, "-m", "tests.kit.poisoned", self.amqp_uri, str(LIMIT)],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def keep_alive(self, until, timeout=60):
        """Restart the service each time it dies until `until()` holds; False if it never did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                assert code == CRASH_EXIT_CODE
                self.deaths += 1
                if self.deaths > MAX_RESTARTS:
                    return False
                self.start()
            elif until():
                return True
            time.sleep(0.1)
        return False

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def config(amqp_uri):
    return {"AMQP_URI": amqp_uri}


@pytest.fixture
def service(amqp_uri):
    supervised = Supervised(amqp_uri)
    yield supervised
    supervised.stop()


def set_aside(config, word):
    """The dead-letter queue's messages whose body is `word` (the others are put back), as (headers, body)."""
    found = []
    with Connection(config["AMQP_URI"]) as connection:
        channel = connection.channel()
        DEAD_LETTER_QUEUE(channel).declare()
        while (message := channel.basic_get(DEAD_LETTER_QUEUE.name)) is not None:
            body = json.loads(message.body)
            if word in json.dumps(body):
                found.append((message.headers, body))
                channel.basic_ack(message.delivery_tag)
            else:
                channel.basic_reject(message.delivery_tag, requeue=True)
                break
    return found


def test_a_request_that_kills_its_service_is_set_aside_and_its_caller_answered(config, service):
    from nameko.standalone.rpc import ClusterRpcProxy

    with ClusterRpcProxy(config, timeout=90) as rpc:
        before = dead_letters(config)
        reply = rpc.poisoned.echo.call_async("poison")
        assert service.keep_alive(until=lambda: dead_letters(config) > before), \
            f"the service died {service.deaths} times and never set the message aside"
        assert service.deaths == LIMIT
        with pytest.raises(DeadLettered) as error:
            reply.result()
        assert "set aside" in error.value.title
        assert rpc.poisoned.echo("fine") == "fine"  # the service is up and its queue moves again

    [(headers, body)] = set_aside(config, "poison")
    assert headers[DELIVERIES_HEADER] == LIMIT
    assert headers["x-stratum-queue"] == "rpc-poisoned"
    assert headers["x-stratum-routing-key"] == "poisoned.echo"
    assert "never acknowledged" in headers["x-stratum-reason"]
    assert body["args"] == ["poison"]


def test_an_event_that_kills_its_handler_is_set_aside_and_later_events_are_handled(config, service):
    from nameko.standalone.events import event_dispatcher
    from nameko.standalone.rpc import ClusterRpcProxy

    dispatch = event_dispatcher(config)
    before = dead_letters(config)
    dispatch(SOURCE, "word", "poison")
    assert service.keep_alive(until=lambda: dead_letters(config) > before), \
        f"the service died {service.deaths} times and never set the event aside"
    assert service.deaths == LIMIT
    dispatch(SOURCE, "word", "after")
    with ClusterRpcProxy(config, timeout=30) as rpc:
        assert service.keep_alive(until=lambda: "after" in rpc.poisoned.words_heard(), timeout=20)
    assert service.deaths == LIMIT
    [(headers, body)] = set_aside(config, "poison")
    assert headers[DELIVERIES_HEADER] == LIMIT
    assert headers["x-stratum-queue"].startswith(f"evt-{SOURCE}-word--poisoned.")
    assert body == "poison"


def test_an_event_whose_handler_keeps_raising_is_tried_again_then_set_aside_with_the_error(config, service):
    from nameko.standalone.events import event_dispatcher
    from nameko.standalone.rpc import ClusterRpcProxy

    dispatch = event_dispatcher(config)
    before = dead_letters(config)
    dispatch(SOURCE, "word", "unreadable")
    assert service.keep_alive(until=lambda: dead_letters(config) > before, timeout=30)
    assert service.deaths == 0  # a handler that raises never stopped the service
    dispatch(SOURCE, "word", "next")
    with ClusterRpcProxy(config, timeout=30) as rpc:
        assert service.keep_alive(until=lambda: "next" in rpc.poisoned.words_heard(), timeout=20)
    [(headers, body)] = set_aside(config, "unreadable")
    assert headers[DELIVERIES_HEADER] == LIMIT
    assert headers["x-stratum-reason"] == (f"its handler failed {LIMIT} times; last: "
                                           "ValueError(\"cannot read 'unreadable'\")")
    assert body == "unreadable"

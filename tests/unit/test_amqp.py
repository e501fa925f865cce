"""The AMQP entrypoints of shared.amqp: a reply or an ack that cannot reach the broker is retried or dropped with a
log line, never raised into the container (which nameko would kill); and every process uses them."""
import inspect
import logging
import time
from types import SimpleNamespace

import pytest
from nameko import events, messaging, rpc
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR, DependencyProvider

from runtime.topology import PROCESSES, load
from shared import amqp

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens on port 1: connection refused at once


class FakeMessage:
    def __init__(self, ack_error=None):
        self.properties = {"content_type": "application/json", "reply_to": "caller-reply-queue",
                           "correlation_id": "c-1"}
        self.delivery_info = {"routing_key": "orders.create"}
        self.channel = SimpleNamespace(connection=object())
        self.ack_error = ack_error
        self.acked = False

    def ack(self):
        if self.ack_error:
            raise self.ack_error
        self.acked = True

    requeue = ack


def bound(extension, config):
    extension.container = SimpleNamespace(config=config, service_name="orders")
    return extension


def test_a_reply_the_broker_cannot_take_is_dropped_with_a_log_line_not_raised(caplog):
    consumer = bound(amqp.RpcConsumer(), {"AMQP_URI": UNREACHABLE, "STRATUM_RPC_TIMEOUT": "1"})
    consumer.queue_consumer = bound(amqp.QueueConsumer(), consumer.container.config)
    message = FakeMessage()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="shared.amqp"):
        result, exc_info = consumer.handle_result(message, {"uri": "/order/1/"}, None)
    assert (result, exc_info) == ({"uri": "/order/1/"}, None)
    assert time.monotonic() - started < 30
    assert "dropped the reply to orders.create" in caplog.text
    assert message.acked  # the consumer's own connection was alive: the request is done with


def test_a_consumer_tries_its_broker_again_within_two_seconds_not_kombus_thirty():
    """After a broker outage a service must be back soon after the broker: kombu's own reconnection waits 2, 4, 6,
    … up to 30 s between attempts, during which the service's callers answer 503."""
    consumer = bound(amqp.QueueConsumer(), {"AMQP_URI": UNREACHABLE})
    consumer.connect_max_retries = 3
    waits = []
    consumer.on_connection_error = lambda error, interval: waits.append(interval)
    started = time.monotonic()
    with pytest.raises(Exception):
        with consumer.establish_connection():
            pass
    assert len(waits) == 3 and max(waits) <= amqp.RECONNECT_MAX
    assert time.monotonic() - started < 3 * amqp.RECONNECT_MAX + 2


@pytest.mark.parametrize("error", [ConnectionResetError(104, "reset"), BrokenPipeError(32, "broken pipe")])
def test_an_ack_on_a_reset_connection_is_logged_not_raised(error, caplog):
    consumer = amqp.QueueConsumer()
    with caplog.at_level(logging.WARNING, logger="shared.amqp"):
        consumer.ack_message(FakeMessage(ack_error=error))
        consumer.requeue_message(FakeMessage(ack_error=error))
    assert caplog.text.count("lost connection") == 2


def entrypoints(service_cls):
    for _, method in inspect.getmembers(service_cls, callable):
        yield from getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ())


def dependencies(service_cls):
    return [value for _, value in inspect.getmembers(service_cls) if isinstance(value, DependencyProvider)]


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_every_process_uses_the_resilient_entrypoints(name):
    """One nameko Rpc among shared.amqp's would start a second RPC consumer on the service's queue (each refusing
    the other's methods), and any nameko entrypoint brings back the ack and reply that kill a container."""
    service_cls = load(PROCESSES[name])
    for entrypoint in entrypoints(service_cls):
        if isinstance(entrypoint, rpc.Rpc):
            assert type(entrypoint) is amqp.Rpc, (name, entrypoint.method_name)
        if isinstance(entrypoint, events.EventHandler):
            assert type(entrypoint) is amqp.EventHandler, (name, entrypoint.method_name)
    for dependency in dependencies(service_cls):
        if isinstance(dependency, events.EventDispatcher):
            assert type(dependency) is amqp.EventDispatcher, (name, "dispatch")
        elif isinstance(dependency, messaging.Publisher):  # nameko's declares on a pooled connection, maybe dead
            assert type(dependency) is amqp.Publisher, (name, type(dependency).__name__)
        for extension in vars(type(dependency)).values():
            if isinstance(extension, rpc.ReplyListener):
                assert type(extension) is amqp.ReplyListener, (name, type(dependency).__name__)

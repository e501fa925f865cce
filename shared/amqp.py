"""nameko's AMQP entrypoints, made to outlive the broker.

nameko 2.14 kills the whole service container when anything escapes the code that runs after a handler: the RPC
reply publish (`RpcConsumer.handle_result`, kombu gives up after 3 retries while the broker is away) and the ack of
a message on a connection that was just reset (`QueueConsumer.ack_message` only ignores amqp's own ConnectionError,
not the OSError of a reset socket). One broker restart then takes a service down for good (D3). The consumer loop
itself reconnects on its own; these subclasses make the steps around it do the same:

- a reply that cannot be published is retried with backoff for as long as its caller waits
  (STRATUM_RPC_TIMEOUT), then dropped with a log line: the caller times out (503), and the request, which was never
  acknowledged, is delivered again once the broker is back (commands are idempotent by their command_id);
- an ack or requeue on a dead connection is logged and skipped: the broker has already taken the message back;
- the event exchange is declared at start on a connection of its own, retried while the broker is away (nameko
  takes one from kombu's process-wide pool unchecked, which after a broker restart may be dead or closed).

Every entrypoint of a Stratum service must come from here (`rpc`, `event_handler`, `consume`), and so must its
`EventDispatcher` and its RPC callers' `ReplyListener`: a container whose @rpc methods mixed these with nameko's
own would run two RPC consumers on one queue, each refusing the other's methods (tests/unit/test_amqp.py holds the
code to that).
"""
import contextlib
import functools
import logging
import sys
import time

import eventlet
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu import Connection
from kombu.exceptions import OperationalError
from nameko import events, messaging
from nameko import rpc as nameko_rpc
from nameko.constants import (AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER, LOGIN_METHOD_CONFIG_KEY,
                              SERIALIZER_CONFIG_KEY)
from nameko.exceptions import ContainerBeingKilled
from nameko.rpc import Responder, get_rpc_exchange

from shared import dead_letter
from shared.errors import DeadLettered

log = logging.getLogger(__name__)

# What a lost or refused broker connection raises (kombu wraps socket errors as OperationalError after its retries).
BROKER_ERRORS = (OSError, AmqpConnectionError, OperationalError)
REPLY_RETRY_FIRST = 0.5  # seconds before the first retry of a reply; doubles up to REPLY_RETRY_MAX
REPLY_RETRY_MAX = 5.0
RECONNECT_FIRST = 0.5  # seconds before a consumer's first reconnection attempt; grows by as much up to RECONNECT_MAX
RECONNECT_MAX = 2.0


class QueueConsumer(messaging.QueueConsumer):
    """One per container (shared by its RPC, event and reply consumers), whose acks never kill the container, and
    which is back within RECONNECT_MAX seconds of the broker: kombu's own reconnection waits 2, 4, 6, … up to 30 s
    between attempts, so a service stayed deaf for up to half a minute after a short broker outage while its callers
    answered 503."""

    @contextlib.contextmanager
    def establish_connection(self):
        with self.create_connection() as connection:
            connection.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                         interval_start=RECONNECT_FIRST, interval_step=RECONNECT_FIRST,
                                         interval_max=RECONNECT_MAX)
            yield connection

    def ack_message(self, message):
        try:
            super().ack_message(message)
        except Exception as error:  # the broker requeued it with the dead connection; it will come again
            log.warning("could not acknowledge a message on a lost connection (%s); the broker delivers it again",
                        error)

    def requeue_message(self, message):
        try:
            super().requeue_message(message)
        except Exception as error:
            log.warning("could not requeue a message on a lost connection (%s); the broker requeued it already",
                        error)


class RpcConsumer(nameko_rpc.RpcConsumer):
    queue_consumer = QueueConsumer()

    def handle_message(self, body, message):
        verdict = _screen(self, message, self.queue.name)
        if verdict == "handle":
            super().handle_message(body, message)
        elif verdict == "set aside":
            try:
                raise DeadLettered(f"The request stopped the {self.container.service_name} service each time it was "
                                   "handled; it was set aside for an operator (dead-letter queue) and not carried out.")
            except DeadLettered:
                self.handle_result(message, None, sys.exc_info())  # the caller gets the error, not a hang

    def handle_result(self, message, result, exc_info):
        config = self.container.config
        window = float(config.get("STRATUM_RPC_TIMEOUT", 30))  # how long a caller waits for this reply
        deadline = time.monotonic() + window
        delay = REPLY_RETRY_FIRST
        target = message.delivery_info.get("routing_key")
        while True:
            responder = Responder(config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
                                  config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message, ssl=config.get(AMQP_SSL_CONFIG_KEY),
                                  login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
            try:
                result, exc_info = responder.send_response(result, exc_info)
                break
            except BROKER_ERRORS as error:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("dropped the reply to %s after %g s without a broker (%s): its caller has stopped "
                                "waiting; the request is delivered again when the broker is back", target, window,
                                error)
                    break
                log.warning("could not send the reply to %s (%s); retrying in %.1f s", target, error,
                            min(delay, remaining))
                eventlet.sleep(min(delay, remaining))
                delay = min(delay * 2, REPLY_RETRY_MAX)
            except Exception:  # never let one reply take the service down
                log.exception("dropped the reply to %s", target)
                break
        self.queue_consumer.ack_message(message)
        return result, exc_info


SETUP_ATTEMPTS = 10


def _declare_robustly(container, amqp_uri, entities, what):
    """nameko declares a publisher's exchange at start on a connection from kombu's process-wide pool, which may be
    dead (a broker restart since it was last used) or closed (kombu puts a connection it closed after an error back
    in the pool, so every later start in the process fails). Declare on a connection of our own, retried."""
    config = container.config
    ssl, login_method = config.get(AMQP_SSL_CONFIG_KEY), config.get(LOGIN_METHOD_CONFIG_KEY)
    for attempt in range(1, SETUP_ATTEMPTS + 1):
        try:
            with Connection(amqp_uri, ssl=ssl, login_method=login_method) as connection:
                connection.ensure_connection(max_retries=1)
                channel = connection.channel()
                for entity in entities:
                    entity(channel).declare()
            return ssl, login_method
        except BROKER_ERRORS as error:
            if attempt == SETUP_ATTEMPTS:
                raise
            log.warning("could not declare %s (%s); retrying", what, error)
            eventlet.sleep(min(0.5 * attempt, 3))


class EventDispatcher(events.EventDispatcher):
    """nameko's, with the event exchange declared robustly (_declare_robustly)."""

    def setup(self):
        self.exchange = events.get_event_exchange(self.container.service_name, self.container.config)
        self.declare.append(self.exchange)
        ssl, login_method = _declare_robustly(self.container, self.amqp_uri, self.declare,
                                              f"the {self.container.service_name} event exchange")
        self.publisher = self.publisher_cls(self.amqp_uri, serializer=self.options.pop("serializer", self.serializer),
                                            exchange=self.exchange, declare=self.declare, ssl=ssl,
                                            login_method=login_method, **self.options)


class Publisher(messaging.Publisher):
    """nameko's, with its exchange and queues declared robustly (_declare_robustly)."""

    def setup(self):  # the exchange (and queues) to declare are in self.declare since __init__
        ssl, login_method = _declare_robustly(self.container, self.amqp_uri, self.declare,
                                              f"the exchange of a {self.container.service_name} publisher")
        self.publisher = self.publisher_cls(self.amqp_uri, serializer=self.options.pop("serializer", self.serializer),
                                            exchange=self.exchange, declare=self.declare, ssl=ssl,
                                            login_method=login_method, **self.options)


class Rpc(nameko_rpc.Rpc):
    rpc_consumer = RpcConsumer()


class EventHandler(events.EventHandler):
    queue_consumer = QueueConsumer()

    def handle_message(self, body, message):
        verdict = _screen(self, message, self.queue.name)
        if verdict == "handle":
            super().handle_message(body, message)
        elif verdict == "set aside":
            self.queue_consumer.ack_message(message)

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        try:
            dead_letter.failed(self.container.config, message, self.queue.name, repr(exc_info[1]),
                               self.queue_consumer.ack_message)
        except BROKER_ERRORS as error:  # the broker away: the message was given back with the connection
            log.warning("could not count a failed event of %s (%s)", self.queue.name, error)


def _screen(entrypoint, message, queue_name):
    """shared.dead_letter's verdict on a delivery. If the
    broker cannot take the copy, the delivery is handled after all, as it would have been without this."""
    try:
        return dead_letter.screen(entrypoint.container.config, message, queue_name,
                                  entrypoint.queue_consumer.ack_message)
    except BROKER_ERRORS as error:
        log.warning("could not count a redelivered message of %s (%s); handling it", queue_name, error)
        return "handle"


class Consumer(messaging.Consumer):
    """A queue of the service's own bound to another exchange (devices' reports on `amq.topic`,
    services.capture.telemetry). The handler gets (body, routing key, message_id): the routing key names the
    device. A handler that raises has its message acked and logged (nameko's default), never requeued in a loop."""

    queue_consumer = QueueConsumer()

    def handle_message(self, body, message):
        args = (body, message.delivery_info.get("routing_key"), message.properties.get("message_id"))
        handle_result = functools.partial(self.handle_result, message)
        try:
            self.container.spawn_worker(self, args, {}, context_data=self.unpack_message_headers(message),
                                        handle_result=handle_result)
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)


class ReplyListener(nameko_rpc.ReplyListener):
    queue_consumer = QueueConsumer()


rpc = Rpc.decorator
event_handler = EventHandler.decorator
consume = Consumer.decorator

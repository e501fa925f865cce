"""Setting aside a message that keeps killing its consumer (issue 11 item 2).

A handler that raises cannot wedge a service: its RPC caller gets the error and an event is acknowledged anyway. What
can is a message whose handling kills the process (a native crash, the kernel's OOM killer, an interpreter that
aborts): RabbitMQ gives it back unacknowledged, the supervisor restarts the service, the message arrives again and
kills it again, for ever, and every other message of that queue waits behind it.

The broker marks such a message `redelivered`, but it cannot say how often: a classic queue keeps no count. So a
redelivered message is not handled at once. It is published again to the same route with the number of deliveries
that ended without an acknowledgement in a header, and acknowledged; the copy is handled like any message. When a
copy is itself given back and the count reaches the limit, the message goes to the dead-letter queue with its reason
and its original route, and an RPC caller gets a DeadLettered error instead of a hang.

Why not RabbitMQ's own quorum queues with `x-delivery-limit`, which count for us: they cost a disk write per message
on the hottest path (every command is an RPC message) to guard a rare failure, they need every existing queue
re-declared under a new name (a queue's type cannot change), and a replica set of one node buys nothing here. This
costs one extra publish for a redelivered message only, and works on any broker.

An event whose handler raises is acknowledged by nameko and gone (reliability.md N2). Here it is tried again the same
way, counted, and set aside at the limit with the error as its reason (`failed`). An RPC whose method raises is not
a failing message: the error is its answer.

A message in flight beside the one that kills the process is given back too and counted like it: its caller has
already timed out (503), and a client that retries sends a new message. That is the price of not knowing which one
did it; the limit (STRATUM_DELIVERY_LIMIT, default 5) keeps it far from a message that only met a broker restart.
"""
import logging

from eventlet.semaphore import Semaphore
from kombu import Connection, Exchange, Producer, Queue
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, LOGIN_METHOD_CONFIG_KEY

log = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = Exchange("stratum.dead-letter", type="fanout", durable=True)
DEAD_LETTER_QUEUE = Queue("stratum.dead-letter", exchange=DEAD_LETTER_EXCHANGE, durable=True)
DELIVERIES_HEADER = "x-stratum-deliveries"  # deliveries of this message that ended without an acknowledgement
DEFAULT_DELIVERY_LIMIT = 5

# Each delivery is handled in a green thread of its own, so the copy of a counted message can arrive while the original
# still waits for its acknowledgement; handled then and fatal, it would leave both to come back (the queue would grow
# by one each round). Counting holds this, and a copy waits for it before it is handled.
_counting = Semaphore()


def delivery_limit(config):
    return max(1, int(config.get("STRATUM_DELIVERY_LIMIT", DEFAULT_DELIVERY_LIMIT)))


def failed_deliveries(message):
    """How many deliveries of this message ended without an acknowledgement, counting the one before this."""
    earlier = int((message.headers or {}).get(DELIVERIES_HEADER) or 0)
    return earlier + 1 if message.delivery_info.get("redelivered") else earlier


def screen(config, message, queue_name, acknowledge):
    """What to do with a message: "handle" it, or it was "counted" (published again with its count, and this delivery
    acknowledged), or "set aside" (it is in the dead-letter queue now; answer its caller and acknowledge)."""
    if not message.delivery_info.get("redelivered"):
        if DELIVERIES_HEADER in (message.headers or {}):
            with _counting:  # a copy: its original's acknowledgement has been sent
                pass
        return "handle"
    with _counting:
        count = failed_deliveries(message)
        verdict = _count(config, message, queue_name, count,
                         f"delivered {count} times to {queue_name} and never acknowledged: its consumer stopped while "
                         "handling it each time")
        if verdict == "counted":
            acknowledge(message)
        return verdict


def failed(config, message, queue_name, error, acknowledge):
    """An event handler raised: the event is tried again (published again with its count) until the limit, then set
    aside with the error as its reason. Either way this delivery is acknowledged."""
    with _counting:
        count = failed_deliveries(message) + 1
        _count(config, message, queue_name, count, f"its handler failed {count} times; last: {error}"[:1000])
        acknowledge(message)


def _count(config, message, queue_name, count, reason):
    exchange = message.delivery_info.get("exchange") or ""
    routing_key = message.delivery_info.get("routing_key") or queue_name
    if count >= delivery_limit(config):
        _publish(config, message, DEAD_LETTER_EXCHANGE.name, "", {
            DELIVERIES_HEADER: count, "x-stratum-reason": reason, "x-stratum-queue": queue_name,
            "x-stratum-exchange": exchange, "x-stratum-routing-key": routing_key})
        log.error("set aside a message of %s (routing key %s) in %s: %s", queue_name, routing_key,
                  DEAD_LETTER_QUEUE.name, reason)
        return "set aside"
    # RPC messages go back through their exchange (the service's one RPC queue is bound by its routing key, and the
    # consumer dispatches on it); an event goes straight to this handler's own queue, not to every subscriber again.
    if exchange and queue_name.startswith("rpc-"):
        _publish(config, message, exchange, routing_key, {DELIVERIES_HEADER: count})
    else:
        _publish(config, message, "", queue_name, {DELIVERIES_HEADER: count})
    log.warning("a message of %s will be tried again (%d of %d deliveries): %s", queue_name, count,
                delivery_limit(config), reason)
    return "counted"


def _publish(config, message, exchange, routing_key, headers):
    """Publish a copy of `message` (body, reply-to, correlation id and headers kept), confirmed by the broker before
    the original is acknowledged: a crash in between delivers it twice, never zero times."""
    properties = message.properties or {}
    with Connection(config[AMQP_URI_CONFIG_KEY], ssl=config.get(AMQP_SSL_CONFIG_KEY),
                    login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
                    transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        if exchange == DEAD_LETTER_EXCHANGE.name:
            DEAD_LETTER_QUEUE(channel).declare()  # declares the exchange, the queue and its binding
        Producer(channel).publish(
            message.body, exchange=exchange, routing_key=routing_key, content_type=message.content_type,
            content_encoding=message.content_encoding, headers={**(message.headers or {}), **headers},
            reply_to=properties.get("reply_to"), correlation_id=properties.get("correlation_id"),
            delivery_mode=2, retry=True, retry_policy={"max_retries": 3})


def dead_letters(config):
    """How many messages wait in the dead-letter queue (0 when it was never needed)."""
    return queue_counts(config, [DEAD_LETTER_QUEUE.name])[DEAD_LETTER_QUEUE.name][0]


def queue_counts(config, names):
    """{queue: (messages, consumers)} on one connection, (0, 0) for a queue that does not exist."""
    counts = {}
    with Connection(config[AMQP_URI_CONFIG_KEY], ssl=config.get(AMQP_SSL_CONFIG_KEY),
                    login_method=config.get(LOGIN_METHOD_CONFIG_KEY)) as connection:
        for name in names:
            channel = connection.channel()  # a passive declare of a missing queue closes its channel
            try:
                _, messages, consumers = channel.queue_declare(name, passive=True)
            except Exception as error:
                if getattr(error, "code", None) != 404:
                    raise
                messages, consumers = 0, 0
            else:
                channel.close()
            counts[name] = (messages, consumers)
    return counts

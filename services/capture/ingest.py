"""Sensor readings off the broker, a delivery batch at a time (capture-and-platform.md A12, F8).

The topic, one per sensor (its uuid, as in its URI), beside the modelers' (services.capture.telemetry):

    MQTT (RabbitMQ's MQTT plugin, 127.0.0.1:1884):  stratum/sensor/<sensor uuid>/reading
    AMQP:  exchange `amq.topic`, routing key         stratum.sensor.<sensor uuid>.reading

The body is JSON: one reading {"timestamp": "2023-07-25T12:34:56Z", "temperature": 21.5, "humidity": 40.2} or a
list of them (a bridge polling Pathfindr forwards a whole page in one message). {"error": "…"} instead says the device
or its bridge failed: the sensor's state becomes `error` until its next reading. A timestamp without an offset is
UTC; temperature (°C) and humidity (%) are numbers or null. A reading that is not this is logged and dropped alone;
a message for a sensor that does not exist (or was deleted) is logged and dropped.

How it is taken (BatchConsumer): the queue is consumed with a prefetch of PREFETCH messages (two batches, so the
broker sends the next batch while one is being stored); whatever has arrived within LINGER seconds (or BATCH
messages, whichever comes first) is one batch, stored in one transaction
(services.capture.readings), and only then acknowledged, with one multiple-ack of the batch's last delivery tag.
A crash before the ack leaves the batch unacknowledged: the broker delivers it again, and the readings' primary key
(sensor, timestamp) stores nothing twice. A batch that cannot be stored (the database away) is given back to the
broker (each message rejected with requeue) and tried again after a pause. State changes of the sensors (new → idle, → error) are ordinary
events, written after the readings commit: few, and idempotent (a sensor already idle records nothing).
"""
import json
import logging
import math
import socket

import eventlet
from eventlet.event import Event
from uuid import UUID
from kombu import Connection, Consumer, Exchange, Queue
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import Entrypoint

from services.capture.readings import ReadingStore, to_millis
from shared.amqp import BROKER_ERRORS

log = logging.getLogger(__name__)

EXCHANGE = "amq.topic"
ROUTING_KEYS = "stratum.sensor.*.reading"
QUEUE = "capture-sensor-readings"
BATCH = 1000  # messages stored in one transaction at most
PREFETCH = 2 * BATCH  # the broker streams the next batch while this one is stored
LINGER = 0.05  # seconds a batch waits for more messages once one has arrived
RETRY_PAUSE = 2.0
MAX_MESSAGE_BYTES = 1024 * 1024

DEVICES = Exchange(EXCHANGE, type="topic", durable=True)
READINGS = Queue(QUEUE, exchange=DEVICES, routing_key=ROUTING_KEYS, durable=True)


def mqtt_topic(sensor_uuid):
    return f"stratum/sensor/{sensor_uuid}/reading"


def routing_key(sensor_uuid):
    return f"stratum.sensor.{sensor_uuid}.reading"


def sensor_of_routing_key(key):
    parts = (key or "").split(".")
    if len(parts) != 4 or parts[:2] != ["stratum", "sensor"] or parts[3] != "reading":
        return None
    try:
        return str(UUID(parts[2]))
    except ValueError:
        return None


def _number(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("not a number")
    return float(value)


def parse_message(key, body):
    """(sensor uuid or None, [(millis, temperature, humidity)], error text or None, [why readings were dropped])."""
    sensor = sensor_of_routing_key(key)
    if sensor is None:
        return None, [], None, [f"no sensor in the routing key {key!r}"]
    if isinstance(body, (bytes, bytearray)):
        if len(body) > MAX_MESSAGE_BYTES:
            return sensor, [], None, [f"a message of {len(body)} bytes (taken up to {MAX_MESSAGE_BYTES})"]
        try:
            body = json.loads(body)
        except ValueError:
            return sensor, [], None, ["the body is not JSON"]
    if isinstance(body, dict) and "error" in body and "timestamp" not in body:
        return sensor, [], str(body["error"])[:1000] or "error", []
    items = body if isinstance(body, list) else [body]
    readings, dropped = [], []
    for item in items:
        try:
            readings.append((to_millis(item["timestamp"]), _number(item.get("temperature")),
                             _number(item.get("humidity"))))
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            dropped.append(f"not a reading: {str(item)[:200]}")
    return sensor, readings, None, dropped


class Ingest:
    """One batch of messages [(routing key, body)] into the store, and the sensors' states after it."""

    def __init__(self, app, announce):
        self.app, self.announce = app, announce

    def take(self, messages):
        rows, errors, fed = [], {}, set()
        for key, body in messages:
            sensor, readings, error, dropped = parse_message(key, body)
            for why in dropped:
                log.warning("dropped a reading on %s: %s", key, why)
            if sensor is None or not self.app.sensor_exists(sensor):
                if readings or error:
                    log.warning("dropped %s reading(s) on %s: no such sensor", len(readings), key)
                continue
            if error is not None:
                errors[sensor] = error
                continue
            rows += [(sensor, millis, temperature, humidity) for millis, temperature, humidity in readings]
            if readings:
                fed.add(sensor)
                errors.pop(sensor, None)  # a reading after the error: the device works again
        stored = self.app.readings.append(rows)
        for sensor in sorted(fed | set(errors)):
            result = self.app.sensor_state(sensor, errors.get(sensor))
            if result is not None:
                self.announce(result)
        return stored


class BatchConsumer(Entrypoint):
    """A queue consumed a batch at a time: the decorated method gets [(routing key, body bytes)] and must have stored
    them when it returns; the batch is then acknowledged with one multiple-ack. Runs its own connection and channel
    (nameko's consumer acks message by message), reconnecting while the broker is away."""

    def __init__(self, queue, batch=BATCH, prefetch=PREFETCH, linger=LINGER, **kwargs):
        self.queue, self.batch, self.prefetch, self.linger = queue, batch, prefetch, linger
        self._stopping = False
        self._thread = None
        super().__init__(**kwargs)

    def start(self):
        self._stopping = False
        self._thread = self.container.spawn_managed_thread(self._run, identifier=f"batch-consumer:{self.queue.name}")

    def stop(self):
        self._stopping = True
        if self._thread is not None:
            self._thread.wait()

    def kill(self):
        self._stopping = True
        if self._thread is not None:
            self._thread.kill()

    def _run(self):
        uri = self.container.config[AMQP_URI_CONFIG_KEY]
        while not self._stopping:
            try:
                with Connection(uri, heartbeat=0) as connection:
                    self._consume(connection)
            except BROKER_ERRORS as error:
                if self._stopping:
                    return
                log.warning("sensor readings: lost the broker (%s); reconnecting", error)
                eventlet.sleep(1.0)
            except Exception:  # never let the loop die (a dead managed thread kills the whole container)
                if self._stopping:
                    return
                log.exception("sensor readings: the consumer failed; starting again")
                eventlet.sleep(1.0)

    def _consume(self, connection):
        channel = connection.channel()
        self.queue(channel).declare()
        channel.basic_qos(0, self.prefetch, False)
        buffer = []
        consumer = Consumer(channel, [self.queue], on_message=buffer.append, no_ack=False)
        with consumer:
            while not self._stopping:
                try:
                    connection.drain_events(timeout=self.linger if buffer else 1.0)
                    if len(buffer) < self.batch:
                        continue
                except socket.timeout:
                    if not buffer:
                        continue
                batch, buffer[:] = buffer[:self.batch], buffer[self.batch:]
                self._handle(channel, batch)

    def _handle(self, channel, batch):
        payload = [(m.delivery_info.get("routing_key"), m.body) for m in batch]
        last = batch[-1].delivery_tag
        done = Event()

        def handle_result(worker_ctx, result, exc_info):
            done.send(exc_info)
            return result, exc_info

        self.container.spawn_worker(self, (payload,), {}, handle_result=handle_result)
        exc_info = done.wait()
        if exc_info is None:
            channel.basic_ack(last, multiple=True)
            return
        log.warning("sensor readings: a batch of %s messages could not be stored (%s); given back to the broker",
                    len(batch), exc_info[1])
        for message in batch:  # (py-amqp has no basic_nack: each is rejected back to the queue)
            message.requeue()
        if not self._stopping:
            eventlet.sleep(RETRY_PAUSE)


consume_batches = BatchConsumer.decorator

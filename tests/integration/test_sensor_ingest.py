"""Sensor readings through the real broker into the capture service (services.capture.ingest), on SQLite and
PostgreSQL: readings published on amq.topic (AMQP, and MQTT through RabbitMQ's plugin) become queryable, the sensor
turns idle, and the same batch delivered again (a redelivery after a lost ack) stores nothing twice. A batch that
cannot be stored is given back to the broker and stored once the store takes it."""
import json
import uuid

import pytest
from kombu import Connection, Exchange, Producer

from runtime.mqtt import ensure_mqtt_plugin, mqtt_port
from services.capture import ingest
from services.capture.service import CaptureService
from services.capture.simulator import MqttPrinter
from tests.kit.plugin import eventually

pytestmark = pytest.mark.integration

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
USER = "/users/33333333-3333-3333-3333-333333333333/"
SHELF = f"/sub-location/{uuid.uuid4()}/"


@pytest.fixture(scope="module")
def capture_rpc(config):
    from nameko.runners import ServiceRunner
    from nameko.standalone.rpc import ClusterRpcProxy

    runner = ServiceRunner(config)
    runner.add_service(CaptureService)
    runner.start()
    with ClusterRpcProxy(config, timeout=20) as rpc:
        yield rpc.capture
    runner.kill()


def ctx():
    return {"user": USER, "bureau": BUREAU, "command_id": str(uuid.uuid4())}


def new_sensor(capture_rpc):
    created = capture_rpc.create("sensor", {"serial_number": f"PF-{uuid.uuid4().hex[:10]}", "sub_location": SHELF},
                                 ctx())
    return created["uri"].split("/")[2]


def publish(config, sensor_uuid, bodies, message_id=None):
    with Connection(config["AMQP_URI"]) as connection:
        producer = Producer(connection.channel(), exchange=Exchange("amq.topic", type="topic", durable=True))
        for body in bodies:
            producer.publish(json.dumps(body).encode(), routing_key=ingest.routing_key(sensor_uuid),
                             content_type=None, content_encoding=None, delivery_mode=2)


def readings(capture_rpc, sensor_uuid, **extra):
    query = {"from": None, "to": None, "descending": False, "limit": 1000, "offset": 0, "after": None,
             "bucket": None, **extra}
    return capture_rpc.sensor_data([sensor_uuid], query, ctx())


def day(index):
    return {"timestamp": f"2023-07-25T{index // 60:02d}:{index % 60:02d}:00Z", "temperature": 20 + index / 100,
            "humidity": 40.0}


def test_published_readings_become_queryable_and_the_sensor_idle(capture_rpc, config):
    sensor = new_sensor(capture_rpc)
    assert capture_rpc.get("sensor", sensor, ctx())["state"] == "new"
    publish(config, sensor, [day(i) for i in range(300)])  # 300 messages of one reading
    publish(config, sensor, [[day(i) for i in range(300, 600)]])  # one message of 300
    page = eventually(lambda: readings(capture_rpc, sensor), timeout=30)
    eventually(lambda: readings(capture_rpc, sensor)["total"] == 600, timeout=30)
    page = readings(capture_rpc, sensor, limit=3)
    assert [r["timestamp"] for r in page["rows"]] == ["2023-07-25T00:00:00Z", "2023-07-25T00:01:00Z",
                                                      "2023-07-25T00:02:00Z"]
    assert eventually(lambda: capture_rpc.get("sensor", sensor, ctx())["state"] == "idle")


def test_a_redelivered_batch_stores_nothing_twice(capture_rpc, config):
    sensor = new_sensor(capture_rpc)
    batch = [day(i) for i in range(100)]
    publish(config, sensor, batch)
    eventually(lambda: readings(capture_rpc, sensor)["total"] == 100, timeout=30)
    publish(config, sensor, batch)  # the same messages again, as the broker redelivers an unacknowledged batch
    publish(config, sensor, [day(100)])  # a later reading: once it is stored, the repeats were taken before it
    eventually(lambda: readings(capture_rpc, sensor)["total"] >= 101, timeout=30)
    assert readings(capture_rpc, sensor)["total"] == 101


def test_readings_over_mqtt_are_taken_the_same_way(capture_rpc, config):
    assert ensure_mqtt_plugin(), "RabbitMQ's MQTT plugin is off and could not be enabled"
    sensor = new_sensor(capture_rpc)
    vhost = config["AMQP_URI"].rsplit("/", 1)[-1] or "/"
    device = MqttPrinter(sensor, port=mqtt_port(), vhost=vhost)
    try:
        device.publish([day(i) for i in range(10)], topic=ingest.mqtt_topic(sensor))
        device.publish({"error": "probe disconnected"}, topic=ingest.mqtt_topic(sensor))
    finally:
        device.close()
    eventually(lambda: readings(capture_rpc, sensor)["total"] == 10, timeout=30)
    assert eventually(lambda: capture_rpc.get("sensor", sensor, ctx())["state"] == "error")


def test_a_batch_the_store_refuses_is_given_back_and_stored_later(capture_rpc, config, monkeypatch):
    sensor = new_sensor(capture_rpc)
    failures = []
    real = ingest.Ingest.take

    def flaky(self, messages):
        if not failures:
            failures.append(len(messages))
            raise OSError("the database went away")
        return real(self, messages)

    monkeypatch.setattr(ingest.Ingest, "take", flaky)
    monkeypatch.setattr(ingest, "RETRY_PAUSE", 0.1)
    publish(config, sensor, [day(i) for i in range(20)])
    eventually(lambda: readings(capture_rpc, sensor)["total"] == 20, timeout=30)
    assert failures and readings(capture_rpc, sensor)["total"] == 20

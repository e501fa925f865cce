"""Sensors over HTTP (issue 17 item 6, capture-and-platform.md A12, F8, materials.md H2), on SQLite and PostgreSQL with
every service running: a sensor registered on a shelf (its 400s and 404s), readings published on the broker listed by
/sensor-data/ (filter[sensor] mandatory, a time range, a page, buckets, GET one), and a material batch's data points
following it from the shelf to the oven when it is relocated; another bureau sees none of it."""
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from kombu import Connection, Exchange, Producer

from services.capture import ingest
from services.capture.sensors import ALREADY_ATTACHED, SERIAL_TAKEN
from shared import catalogue
from tests.kit.payloads import PayloadFactory
from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


def created(response):
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def path(uri):
    return "/" + uri.split("/", 3)[3]


def uuid_of(uri):
    return uri.rstrip("/").rsplit("/", 1)[1]


def stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def publish(config, sensor, *readings):
    with Connection(config["AMQP_URI"]) as connection:
        producer = Producer(connection.channel(), exchange=Exchange("amq.topic", type="topic", durable=True))
        producer.publish(json.dumps(list(readings)).encode(), routing_key=ingest.routing_key(uuid_of(sensor)),
                         content_type=None, content_encoding=None, delivery_mode=2)


def reading(moment, temperature, humidity=45.0):
    return {"timestamp": stamp(moment), "temperature": temperature, "humidity": humidity}


@pytest.fixture(scope="module")
def store(admin):
    """A material and a store with two sub-locations: a shelf and an oven."""
    me = admin.get("/sessions/").json()
    factory = PayloadFactory(admin, me["bureau"], me["user"])
    material = created(admin.post("/material/", json=dict(factory.minimal(catalogue.resource("material")),
                                                          name=f"PA12 {uuid.uuid4().hex[:6]}", units="kg",
                                                          density=1.01)))
    location = created(admin.post("/location/", json={"name": f"Store {uuid.uuid4().hex[:6]}",
                                                      "address": "1 Loop Rd", "bureau": me["bureau"]}))
    shelf, oven = (created(admin.post("/sub-location/", json={"name": name, "location": location,
                                                              "bureau": me["bureau"]})) for name in ("Shelf", "Oven"))
    return {"bureau": me["bureau"], "material": material, "location": location, "shelf": shelf, "oven": oven}


def new_sensor(admin, sub_location, serial=None):
    return created(admin.post("/sensor/", json={"serial_number": serial or f"PF-{uuid.uuid4().hex[:10]}",
                                                "sub_location": sub_location}))


def new_batch(admin, store):
    lot = created(admin.post("/material-lot/", json={
        "name": "PA12 delivery", "material": store["material"], "location": store["location"],
        "sub_location": store["shelf"], "number_of_containers": 1, "size_of_container": 10.0}))
    containers = admin.get(lot).json()["containers_available_for_initial_batches"]
    response = admin.post("/material-batch-action/", json={"action_type": "create_initial_batch", "quantity": 0.0,
                                                           "metadata": {"containers": containers}})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def test_registering_a_sensor_and_its_refusals(admin, store):
    serial = f"PF-{uuid.uuid4().hex[:10]}"
    sensor = new_sensor(admin, store["shelf"], serial)
    body = admin.get(sensor).json()
    assert body["state"] == "new" and body["frequency"] == 15 and path(body["sub_location"]) == path(store["shelf"])
    again = admin.post("/sensor/", json={"serial_number": serial, "sub_location": store["oven"]})
    assert again.status_code == 400 and again.json()["errors"][0]["title"] == SERIAL_TAKEN
    moved = admin.put(sensor, json={"sub_location": store["oven"]})
    assert moved.status_code == 400 and moved.json()["errors"][0]["title"] == ALREADY_ATTACHED
    assert admin.post("/sensor/", json={"serial_number": "x" * 256, "sub_location": store["shelf"]}).status_code == 400
    nowhere = admin.post("/sensor/", json={"serial_number": f"PF-{uuid.uuid4().hex[:10]}",
                                           "sub_location": f"/sub-location/{uuid.uuid4()}/"})
    assert nowhere.status_code == 400
    missing = admin.get(f"/sensor/{uuid.uuid4()}/")
    assert missing.status_code == 404 and missing.json()["errors"][0]["title"] == "The requested sensor cannot be found."
    assert path(admin.get(sensor).json()["sub_location"]) == path(store["shelf"])  # the refusals changed nothing


def test_readings_are_listed_by_sensor_in_a_range_and_in_buckets(admin, store, config):
    sensor = new_sensor(admin, store["shelf"])
    start = datetime(2023, 7, 25, 12, 0, tzinfo=timezone.utc)
    publish(config, sensor, *[reading(start + timedelta(minutes=30 * i), 20.0 + i) for i in range(6)])
    listed = eventually(lambda: admin.get("/sensor-data/", params={"filter[sensor]": sensor}).json()
                        if admin.get("/sensor-data/", params={"filter[sensor]": sensor}).json()["total_count"] == 6
                        else None, timeout=30)
    first = listed["resources"][0]
    assert first["timestamp"] == "2023-07-25T12:00:00Z" and first["temperature"] == 20.0 and first["humidity"] == 45.0
    assert first["sensor"] == sensor and first["updated"] == "2023-07-25T12:00:00Z"
    assert admin.get(first["uri"]).json() == first
    ranged = admin.get("/sensor-data/?filter[sensor]=" + sensor + "&filter[timestamp]>2023-07-25T13:00:00Z"
                       "&filter[timestamp]<2023-07-25T14:00:00Z").json()
    assert [r["temperature"] for r in ranged["resources"]] == [22.0, 23.0]
    newest = admin.get("/sensor-data/", params={"filter[sensor]": sensor, "sort": "-timestamp",
                                                "page[limit]": 2}).json()
    assert [r["temperature"] for r in newest["resources"]] == [25.0, 24.0] and newest["meta"]["next"]
    hourly = admin.get("/sensor-data/", params={"filter[sensor]": sensor, "bucket": 3600}).json()
    assert hourly["meta"]["bucket_seconds"] == 3600 and hourly["total_count"] == 3
    assert [(r["temperature"], r["temperature_min"], r["temperature_max"], r["count"])
            for r in hourly["resources"]] == [(20.5, 20.0, 21.0, 2), (22.5, 22.0, 23.0, 2), (24.5, 24.0, 25.0, 2)]
    assert eventually(lambda: admin.get(sensor).json()["state"] == "idle")


def test_sensor_data_needs_its_sensor_and_a_sensor_someone_can_see(admin, store, system):
    unfiltered = admin.get("/sensor-data/")
    assert unfiltered.status_code == 400
    assert "listing is not supported" in unfiltered.json()["errors"][0]["title"]
    assert admin.get("/sensor-data/", params={"filter[sensor]": f"/sensor/{uuid.uuid4()}/"}).status_code == 404
    assert admin.get("/sensor-data/", params={"filter[sensor]": new_sensor(admin, store["shelf"]),
                                              "bucket": "often"}).status_code == 400
    assert admin.get(f"/sensor-data/{uuid.uuid4()}/").status_code == 404
    assert admin.get("/material_batch_sensor_data/").status_code == 400


def test_a_batch_gets_the_readings_of_where_it_sits_and_another_bureau_nothing(admin, store, config, system):
    shelf_sensor, oven_sensor = new_sensor(admin, store["shelf"]), new_sensor(admin, store["oven"])
    before = datetime.now(timezone.utc) - timedelta(minutes=5)
    batch = new_batch(admin, store)
    time.sleep(0.05)
    on_shelf = datetime.now(timezone.utc)
    time.sleep(0.05)
    relocated = admin.post("/material-batch-action/", json={"action_type": "relocate", "source_batch": batch,
                                                            "quantity": 0.0, "metadata": {"sub_location": store["oven"]}})
    assert relocated.status_code == 201, relocated.text
    time.sleep(0.05)
    in_oven = datetime.now(timezone.utc)
    publish(config, shelf_sensor, reading(before, 19.0), reading(on_shelf, 21.0), reading(in_oven, 22.0))
    publish(config, oven_sensor, reading(before, 59.0), reading(on_shelf, 60.0), reading(in_oven, 80.0))

    def points():
        body = admin.get("/material_batch_sensor_data/", params={"filter[material_batch]": batch}).json()
        return body if body["total_count"] == 2 else None

    body = eventually(points, timeout=30)
    assert [(r["sensor"], r["temperature"]) for r in body["resources"]] == [(shelf_sensor, 21.0), (oven_sensor, 80.0)]
    assert all(r["material_batch"] == batch for r in body["resources"])
    assert admin.get(body["resources"][1]["uri"]).json() == body["resources"][1]

    other = make_tenant(admin, login, "sensors")
    assert other.manager.get("/material_batch_sensor_data/",
                             params={"filter[material_batch]": batch}).status_code == 404
    assert other.manager.get(body["resources"][0]["uri"]).status_code == 404
    assert other.manager.get("/sensor-data/", params={"filter[sensor]": shelf_sensor}).status_code == 404
    shelf_points = admin.get("/sensor-data/", params={"filter[sensor]": shelf_sensor}).json()["resources"]
    assert other.manager.get(shelf_points[0]["uri"]).status_code == 404
    assert other.manager.get(shelf_sensor).status_code == 404

"""Sensors and their readings on an in-memory store (capture-and-platform.md A12, F8, materials.md H2): the sensor's
rules (unique serial, attached once, frequency, state), the reading messages, the batched and idempotent store, and
the reads over it (/sensor-data/ ranges, pages and buckets; a batch's data points from its residency intervals)."""
from uuid import uuid4

import pytest

from services.capture import ingest
from services.capture.application import Capture as CaptureApp
from services.capture.readings import from_millis, parse_point_uuid, to_millis
from services.capture.sensor_data import batch_data, batch_point, sensor_data, sensor_point
from services.capture.sensors import ALREADY_ATTACHED, SERIAL_TAKEN
from shared.errors import InvalidPayload, NotFound
from shared.uris import uuid_of
from tests.kit.apps import BUREAU, IN_MEMORY, command_ctx

OTHER_BUREAU = "/bureau/22222222-2222-2222-2222-222222222222/"
SHELF = "/sub-location/33333333-3333-3333-3333-333333333333/"
OVEN = "/sub-location/44444444-4444-4444-4444-444444444444/"
T0 = "2023-07-25T12:00:00Z"


@pytest.fixture
def app():
    app = CaptureApp(env=IN_MEMORY)
    yield app
    app.close()


def register(app, serial=None, sub_location=SHELF, bureau=BUREAU, **fields):
    payload = {"serial_number": serial or f"PF-{uuid4().hex[:8]}", "sub_location": sub_location, **fields}
    return app.create("sensor", payload, command_ctx(bureau=bureau))["uri"]


def sensor(app, uri, bureau=BUREAU):
    return app.read("sensor", uuid_of(uri), command_ctx(bureau=bureau))


def reading(minute, temperature=21.0, humidity=40.0):
    return {"timestamp": f"2023-07-25T12:{minute:02d}:00Z", "temperature": temperature, "humidity": humidity}


def publish(app, uri, *bodies):
    """Messages as the broker would hand them over: (routing key, raw JSON bytes)."""
    import json
    messages = [(ingest.routing_key(uuid_of(uri)), json.dumps(body).encode()) for body in bodies]
    return ingest.Ingest(app, lambda result: None).take(messages)


def query(**extra):
    return {"from": None, "to": None, "descending": False, "limit": 1000, "offset": 0, "after": None,
            "bucket": None, **extra}


# -- the sensor ------------------------------------------------------------------------------------------------------

def test_a_registered_sensor_is_new_with_the_default_frequency(app):
    found = sensor(app, register(app))
    assert found["state"] == "new" and found["frequency"] == 15 and found["sub_location"] == SHELF


def test_a_serial_number_names_one_device_on_the_whole_platform(app):
    register(app, serial="PF-0001")
    for bureau in (BUREAU, OTHER_BUREAU):
        with pytest.raises(InvalidPayload) as refused:
            register(app, serial="PF-0001", bureau=bureau)
        assert refused.value.title == SERIAL_TAKEN


@pytest.mark.parametrize("fields, field", [({"serial_number": "x" * 256}, "serial_number"),
                                           ({"frequency": 0}, "frequency")])
def test_bad_registrations_are_refused_naming_the_field(app, fields, field):
    with pytest.raises(InvalidPayload) as refused:
        register(app, **fields)
    assert refused.value.field == field
    assert app.referencing("sensor", "sub_location", SHELF, command_ctx()) == []


def test_a_sensor_is_attached_once(app):
    uri = register(app, serial="PF-0002")
    with pytest.raises(InvalidPayload) as refused:
        app.update("sensor", uuid_of(uri), {"sub_location": OVEN}, command_ctx())
    assert refused.value.title == ALREADY_ATTACHED
    app.update("sensor", uuid_of(uri), {"sub_location": SHELF, "frequency": 30}, command_ctx())
    assert sensor(app, uri)["frequency"] == 30 and sensor(app, uri)["sub_location"] == SHELF


# -- reading messages ------------------------------------------------------------------------------------------------

def test_a_message_holds_one_reading_a_list_of_them_or_an_error():
    key = ingest.routing_key("5b0e3a5e-0000-4000-8000-000000000001")
    sensor_uuid, readings, error, dropped = ingest.parse_message(key, b'[{"timestamp": "2023-07-25T12:00:00",'
                                                                       b' "temperature": 21.5, "humidity": null},'
                                                                       b' {"temperature": 3}]')
    assert sensor_uuid == "5b0e3a5e-0000-4000-8000-000000000001"
    assert readings == [(to_millis(T0), 21.5, None)] and error is None and len(dropped) == 1
    assert ingest.parse_message(key, b'{"error": "battery low"}')[2] == "battery low"
    assert ingest.parse_message(key, b'{"timestamp": "soon", "temperature": 1}')[1] == []
    assert ingest.parse_message(key, b'{"timestamp": "2023-07-25T12:00:00Z", "temperature": true}')[1] == []
    assert ingest.parse_message("stratum.sensor.nope.reading", b"{}")[0] is None
    assert ingest.mqtt_topic("abc") == "stratum/sensor/abc/reading"


def test_times_round_trip_in_utc():
    assert from_millis(to_millis("2023-07-25T14:34:56+02:00")) == "2023-07-25T12:34:56Z"
    assert from_millis(to_millis("2023-07-25T12:34:56.250Z")) == "2023-07-25T12:34:56.250Z"


# -- storing ---------------------------------------------------------------------------------------------------------

def test_readings_are_stored_once_and_the_sensor_becomes_idle(app):
    uri = register(app)
    assert publish(app, uri, [reading(0), reading(30)], reading(45)) == 3
    assert sensor(app, uri)["state"] == "idle"
    assert publish(app, uri, [reading(0), reading(30)], reading(45)) == 0  # a redelivered batch
    page = sensor_data(app, [uuid_of(uri)], query(), command_ctx())
    assert page["total"] == 3 and [r["timestamp"] for r in page["rows"]] == [
        "2023-07-25T12:00:00Z", "2023-07-25T12:30:00Z", "2023-07-25T12:45:00Z"]


def test_an_error_report_marks_the_sensor_until_its_next_reading(app):
    uri = register(app)
    publish(app, uri, {"error": "Pathfindr answered 503"})
    assert sensor(app, uri)["state"] == "error"
    publish(app, uri, reading(5))
    assert sensor(app, uri)["state"] == "idle"


def test_readings_of_unknown_sensors_are_dropped(app):
    stranger = f"/sensor/{uuid4()}/"
    assert publish(app, stranger, reading(0)) == 0
    assert app.readings.key_of(uuid_of(stranger), create=False) is None


# -- reading them back -----------------------------------------------------------------------------------------------

def test_a_time_range_pages_and_a_cursor(app):
    uri = register(app)
    publish(app, uri, [reading(minute, temperature=float(minute)) for minute in range(0, 60, 5)])
    ranged = query(**{"from": "2023-07-25T12:10:00Z", "to": "2023-07-25T12:30:00Z"})
    page = sensor_data(app, [uuid_of(uri)], ranged, command_ctx())
    assert [r["temperature"] for r in page["rows"]] == [10.0, 15.0, 20.0, 25.0]  # from inclusive, to exclusive
    first = sensor_data(app, [uuid_of(uri)], query(limit=5, descending=True), command_ctx())
    assert [r["temperature"] for r in first["rows"]] == [55.0, 50.0, 45.0, 40.0, 35.0] and first["next"]
    second = sensor_data(app, [uuid_of(uri)], query(limit=5, descending=True, after=first["next"]), command_ctx())
    assert [r["temperature"] for r in second["rows"]] == [30.0, 25.0, 20.0, 15.0, 10.0]
    with pytest.raises(InvalidPayload):
        sensor_data(app, [uuid_of(uri)], query(**{"from": "yesterday"}), command_ctx())


def test_buckets_average_and_bound_each_quantity(app):
    uri = register(app)
    publish(app, uri, [reading(minute, temperature=float(minute), humidity=50.0 - minute) for minute in range(60)])
    page = sensor_data(app, [uuid_of(uri)], query(bucket=900), command_ctx())
    assert page["total"] == 4 and page["bucket"] == 900
    first = page["rows"][0]
    assert first["timestamp"] == "2023-07-25T12:00:00Z" and first["count"] == 15
    assert (first["temperature"], first["temperature_min"], first["temperature_max"]) == (7.0, 0.0, 14.0)
    assert (first["humidity_min"], first["humidity_max"]) == (36.0, 50.0)
    auto = sensor_data(app, [uuid_of(uri)], query(bucket="auto", limit=10), command_ctx())
    assert 1 <= len(auto["rows"]) <= 10 and sum(r["count"] for r in auto["rows"]) == 60


def test_another_bureaus_sensor_and_its_points_are_not_found(app):
    uri = register(app)
    publish(app, uri, reading(0))
    with pytest.raises(NotFound):
        sensor_data(app, [uuid_of(uri)], query(), command_ctx(bureau=OTHER_BUREAU))
    [row] = sensor_data(app, [uuid_of(uri)], query(), command_ctx())["rows"]
    assert sensor_point(app, row["uuid"], command_ctx())["temperature"] == 21.0
    with pytest.raises(NotFound):
        sensor_point(app, row["uuid"], command_ctx(bureau=OTHER_BUREAU))


def test_a_batch_gets_the_readings_of_where_it_sat_while_it_sat_there(app):
    shelf, oven = register(app, sub_location=SHELF), register(app, sub_location=OVEN)
    publish(app, shelf, [reading(minute, temperature=20.0) for minute in range(0, 60, 10)])
    publish(app, oven, [reading(minute, temperature=60.0) for minute in range(0, 60, 10)])
    batch = str(uuid4())
    residency = [{"sub_location": SHELF, "since": "2023-07-25T12:00:00+00:00", "until": "2023-07-25T12:25:00+00:00"},
                 {"sub_location": OVEN, "since": "2023-07-25T12:25:00+00:00", "until": None}]
    page = batch_data(app, residency, batch, query(), command_ctx())
    assert [(r["timestamp"][11:16], r["temperature"]) for r in page["rows"]] == [
        ("12:00", 20.0), ("12:10", 20.0), ("12:20", 20.0), ("12:30", 60.0), ("12:40", 60.0), ("12:50", 60.0)]
    assert {r["material_batch"] for r in page["rows"]} == {f"/material-batch/{batch}/"}
    point = page["rows"][3]
    assert parse_point_uuid(point["uuid"])[0] != 0  # a batch point names its batch
    again = batch_point(app, point["uuid"], lambda uuid: residency, command_ctx())
    assert again == point
    with pytest.raises(NotFound):  # the batch is not where it was any more: the point is not its
        batch_point(app, point["uuid"], lambda uuid: residency[:1], command_ctx())


# -- where a batch sat (materials' side of /material_batch_sensor_data/) ------------------------------------------------

def test_a_batch_residency_follows_its_relocations():
    from tests.unit.materials_kit import OTHER_BUREAU as MATERIALS_OTHER, Kit
    kit = Kit()
    try:
        place = kit.location("Store")
        shelf, oven = (kit.create("sub-location", {"name": name, "location": place, "bureau": kit.bureau})
                       for name in ("Shelf", "Oven"))
        batch = kit.initial_batch(kit.lot(location=place, sub_location=shelf, containers=1, size=10.0))
        kit.act("edit_batch_details", batch, custom_status="QA hold")  # not a move: no new interval
        kit.act("relocate", batch, location=place, sub_location=oven)
        uuid = uuid_of(batch)
        first, second = kit.app.batch_residency(uuid, kit.ctx())
        assert (first["sub_location"], second["sub_location"]) == (shelf, oven)
        assert first["since"] < first["until"] == second["since"] and second["until"] is None
        with pytest.raises(NotFound):
            kit.app.batch_residency(uuid, command_ctx(bureau=MATERIALS_OTHER))
    finally:
        kit.close()

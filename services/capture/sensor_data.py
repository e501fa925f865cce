"""/sensor-data/ and /material_batch_sensor_data/ (capture-and-platform.md A12, materials.md H2), answered from the
readings table (services.capture.readings) when asked.

/sensor-data/ is the readings of the sensors in `filter[sensor]` (each one the caller can see, else 404 "The requested
sensor cannot be found."), in a time range, a page at a time, optionally bucketed.

/material_batch_sensor_data/ is computed on read, never copied: the batch's residency intervals (materials'
`batch_residency`, from the batch's own relocate events) joined with the readings of the sensors attached to each
sub-location, each within its interval [since, until). Every field the map lists (`material_batch`, `sensor`,
`timestamp`, `temperature`, `humidity`, `uri`) is served this way, always current, and a relocated batch switches
sensors at the moment of its relocation, past readings included, with nothing rewritten. A batch point's uuid encodes
(batch key, sensor key, time) so GET /material_batch_sensor_data/<uuid>/ finds it again (services.capture.readings).

A query is a dict the gateway builds: {"from": ISO time or None (inclusive), "to": ISO time or None (exclusive),
"descending": bool, "limit", "offset", "after": cursor or None, "bucket": None | "auto" | seconds}.
"""
from datetime import datetime
from uuid import UUID

from services.capture.readings import auto_bucket, from_millis, parse_point_uuid, point_uuid, to_millis
from shared.errors import InvalidPayload, NotFound
from shared.uris import resource_path

SENSOR_NOT_FOUND = "The requested sensor cannot be found."
POINT_NOT_FOUND = "The requested sensor data point cannot be found."
BATCH_POINT_NOT_FOUND = "The requested material_batch_sensor_data cannot be found."
INTERNAL = {"platform_admin": True}


def time_range(query):
    """The query with its `from` and `to` in epoch milliseconds (400 for a time that is not ISO-8601)."""
    query = dict(query)
    for name in ("from", "to"):
        if query.get(name) is not None and not isinstance(query[name], int):
            try:
                query[name] = to_millis(query[name])
            except (ValueError, OverflowError):
                raise InvalidPayload("filter[timestamp] takes an ISO-8601 time, e.g. 2023-07-25T12:34:56Z.",
                                     field="timestamp") from None
    return query


def sensor_data(app, sensors, query, ctx):
    """A page of the readings of `sensors` (uuids) as {"rows", "total", "next"}."""
    query = time_range(query)
    spans = []
    for uuid in sensors:
        sensor = _sensor(app, uuid, ctx)
        key = app.readings.key_of(sensor.id, create=False)
        if key is not None:
            spans.append((key, query.get("from"), query.get("to")))
    return _page(app, spans, query, batch=None)


def sensor_point(app, uuid, ctx):
    try:
        batch_key, key, millis = parse_point_uuid(uuid)
    except (ValueError, TypeError):
        raise NotFound(POINT_NOT_FOUND) from None
    sensor = app.readings.sensor_of(key) if batch_key == 0 else None
    if sensor is None:
        raise NotFound(POINT_NOT_FOUND)
    _sensor(app, sensor, ctx)
    rows = app.readings.select([(key, millis, millis + 1)], limit=1)
    if not rows:
        raise NotFound(POINT_NOT_FOUND)
    return _row(app, rows[0], None)


def batch_data(app, residency, batch_uuid, query, ctx):
    """A page of a batch's data points: its residency intervals joined with their sub-locations' sensors."""
    query = time_range(query)
    spans = _batch_spans(app, residency, ctx, query)
    return _page(app, spans, query, batch=(batch_uuid, app.readings.batch_key(batch_uuid)))


def batch_point(app, uuid, residency_of, ctx):
    """GET one batch data point: `residency_of(batch uuid)` is materials' answer (NotFound for a batch the caller
    cannot see)."""
    try:
        batch_key, key, millis = parse_point_uuid(uuid)
    except (ValueError, TypeError):
        raise NotFound(BATCH_POINT_NOT_FOUND) from None
    batch_uuid = app.readings.batch_of(batch_key) if batch_key else None
    if batch_uuid is None:
        raise NotFound(BATCH_POINT_NOT_FOUND)
    try:
        residency = residency_of(batch_uuid)
    except NotFound:
        raise NotFound(BATCH_POINT_NOT_FOUND) from None
    spans = [span for span in _batch_spans(app, residency, ctx, {}) if span[0] == key]
    inside = [(k, millis, millis + 1) for k, start, end in spans
              if (start is None or millis >= start) and (end is None or millis < end)]
    rows = app.readings.select(inside[:1], limit=1) if inside else []
    if not rows:
        raise NotFound(BATCH_POINT_NOT_FOUND)
    return _row(app, rows[0], (batch_uuid, batch_key))


def _batch_spans(app, residency, ctx, query):
    spans = []
    for interval in residency:
        since, until = _millis(interval["since"]), _millis(interval.get("until"))
        start, end = _clip(since, until, query.get("from"), query.get("to"))
        if start is not None and end is not None and end <= start:
            continue
        for found in app.referencing("sensor", "sub_location", interval["sub_location"], ctx):
            key = app.readings.key_of(found["uri"].rstrip("/").rpartition("/")[2], create=False)
            if key is not None:
                spans.append((key, start, end))
    return spans


def _clip(since, until, start, end):
    low = since if start is None else max(since, start)
    high = until if end is None else (end if until is None else min(until, end))
    return low, high


def _millis(text):
    return None if text is None else int(round(datetime.fromisoformat(text).timestamp() * 1000))


def _sensor(app, uuid, ctx):
    try:
        UUID(str(uuid))
    except ValueError:
        raise NotFound(SENSOR_NOT_FOUND) from None
    return app.load("sensor", uuid, ctx)


def _page(app, spans, query, batch):
    limit, offset, descending = int(query.get("limit") or 1000), int(query.get("offset") or 0), bool(
        query.get("descending"))
    bucket = query.get("bucket")
    if bucket is not None:
        if bucket == "auto":
            first, last = app.readings.bounds(spans)
            size = auto_bucket(query.get("from") or first, query.get("to") or last, limit)
        else:
            size = int(bucket) * 1000
        rows = app.readings.buckets(spans, size, descending, limit, offset)
        return {"rows": [_bucket_row(app, row, size, batch) for row in rows],
                "total": app.readings.bucket_count(spans, size), "next": None, "bucket": size // 1000}
    after = _cursor(query.get("after"))
    rows = app.readings.select(spans, descending, limit, 0 if after else offset, after)
    following = f"{rows[-1]['at']}.{rows[-1]['sensor']}" if len(rows) == limit else None
    return {"rows": [_row(app, row, batch) for row in rows], "total": app.readings.count(spans),
            "next": following}


def _cursor(value):
    if not value:
        return None
    try:
        at, _, key = str(value).partition(".")
        return int(at), int(key)
    except ValueError:
        raise InvalidPayload("page[after] must be the `meta.next` cursor of a previous page.",
                             field="page[after]") from None


def _row(app, row, batch):
    key = int(row["sensor"])
    at = int(row["at"])
    stamp = from_millis(at)
    out = {"uuid": str(point_uuid(key, at, batch[1] if batch else 0)),
           "sensor": resource_path("sensor", app.readings.sensor_of(key)), "timestamp": stamp,
           "temperature": _float(row["temperature"]), "humidity": _float(row["humidity"])}
    if batch:
        out["material_batch"] = resource_path("material-batch", batch[0])
    else:
        out["updated"] = stamp  # a reading never changes after it is stored
    return out


def _bucket_row(app, row, size, batch):
    out = _row(app, row, batch)
    out.pop("uuid")  # a bucket is a summary, not a stored point: it has no URI of its own
    out.update(count=int(row["n"]), bucket_seconds=size // 1000,
               temperature_min=_float(row["temperature_min"]), temperature_max=_float(row["temperature_max"]),
               humidity_min=_float(row["humidity_min"]), humidity_max=_float(row["humidity_max"]))
    return out


def _float(value):
    return None if value is None else round(float(value), 4)

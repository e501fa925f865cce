"""Reads the owning service computes when asked, instead of the read side's stored documents: a material batch's
genealogy is a walk over the edges the batch actions wrote (materials.md §3.12), built in the materials service on
each request (services.materials.genealogy), so nothing is rebuilt on write and the answer is always current.

The gateway keeps its HTTP concerns: the verbs, the LIST query (`filter[target_batch]`, any of), the caller's
bureau (a batch the caller cannot see is a 404, or no row in a list) and the rendering."""
from urllib.parse import unquote_plus

from gateway import listing
from gateway.http import json_response
from gateway.rendering import render
from shared.errors import InvalidPayload, NotFound
from shared.uris import absolute, parse_uri, resource_path

GENEALOGY_TIMEOUT = 60  # seconds: the walk of a long ancestry is one request, but not a quick one


def material_genealogy(gateway, request, spec, verb, uuid, caller):
    base = gateway._base(request)
    ctx = {"user": caller.user, "bureau": caller.bureau, "platform_admin": caller.platform_admin}

    def document(batch_uuid):
        doc = gateway.services.call("materials", "genealogy", batch_uuid, ctx, timeout=GENEALOGY_TIMEOUT)
        return render(spec, resource_path(spec.name, batch_uuid), doc, base)

    if verb == "GET":  # /material-genealogy/<the batch's uuid>/
        return json_response(document(uuid))
    query = listing.parse(spec, request.query_string.decode())
    targets = []
    for each in query.filters:
        if each.field == "target_batch" and each.op == "in":
            targets += [v for v in each.values if v not in targets]
    resources = []
    for target in targets:  # no target: no genealogy to build, an empty list (as a filter that matches nothing)
        try:
            kind, batch_uuid = parse_uri(target)
        except ValueError:
            continue
        if kind != "material-batch":
            continue
        try:
            resources.append(document(batch_uuid))
        except NotFound:  # another bureau's batch, or none: not listed
            continue
    return json_response({"resources": resources, "total_count": len(resources),
                          "meta": {"total_count_is_estimate": False, "next": None}})


# -- sensor readings (capture-and-platform.md A12, materials.md H2; services.capture.sensor_data) ----------------------

SENSOR_DATA_TIMEOUT = 60
SENSOR_FILTER_MISSING = ("Sensor data listing is not supported without filter[sensor]: name the sensor (its URI) "
                         "whose readings to list.")
BUCKET_HELP = "bucket is 'auto' or a whole number of seconds (at least 1) to average the readings over."


def sensor_data(gateway, request, spec, verb, uuid, caller):
    """/sensor-data/: GET one reading, or LIST the readings of filter[sensor] (mandatory), in a filter[timestamp]
    range, a page at a time, optionally downsampled with `bucket` (an extension)."""
    ctx = _ctx(caller)
    base = gateway._base(request)
    if verb == "GET":
        point = gateway.services.call("capture", "sensor_data_point", uuid, ctx, timeout=SENSOR_DATA_TIMEOUT)
        return json_response(_point(spec, point, base))
    raw = unquote_plus(request.query_string.decode())
    if "filter[sensor]" not in raw:
        raise InvalidPayload(SENSOR_FILTER_MISSING, field="sensor")
    query = listing.parse(spec, request.query_string.decode())
    sensors = []
    for each in _filters(query, spec, ("sensor",)):
        for value in each.values:
            kind, sensor_uuid = parse_uri(value)
            if kind != "sensor":
                raise InvalidPayload(f"filter[sensor] must name sensors (/sensor/<uuid>/), not {value}.",
                                     field="sensor")
            sensors.append(sensor_uuid)
    page = gateway.services.call("capture", "sensor_data", sensors, _range(query), ctx, timeout=SENSOR_DATA_TIMEOUT)
    return _listed(spec, page, base)


def material_batch_sensor_data(gateway, request, spec, verb, uuid, caller):
    """/material_batch_sensor_data/: the readings of the sensors of the sub-locations a batch sat in, while it sat
    there (computed on read by the capture service from materials' residency intervals). LIST needs
    filter[material_batch] (one batch); filter[timestamp] and `bucket` work as on /sensor-data/."""
    ctx = _ctx(caller)
    base = gateway._base(request)
    if verb == "GET":
        point = gateway.services.call("capture", "batch_sensor_data_point", uuid, ctx, timeout=SENSOR_DATA_TIMEOUT)
        return json_response(_point(spec, point, base))
    query = listing.parse(spec, request.query_string.decode())
    batches = [v for each in _filters(query, spec, ("material_batch",)) for v in each.values]
    if len(batches) != 1:
        raise InvalidPayload("Listing material_batch_sensor_data needs filter[material_batch] naming one material "
                             "batch (its URI).", field="material_batch")
    kind, batch_uuid = parse_uri(batches[0])
    if kind != "material-batch":
        raise InvalidPayload(f"filter[material_batch] must name a material batch, not {batches[0]}.",
                             field="material_batch")
    page = gateway.services.call("capture", "batch_sensor_data", batch_uuid, _range(query), ctx,
                                 timeout=SENSOR_DATA_TIMEOUT)
    return _listed(spec, page, base)


def _ctx(caller):
    return {"user": caller.user, "bureau": caller.bureau, "platform_admin": caller.platform_admin}


def _filters(query, spec, keys):
    """The `in` filters on `keys`; a filter on anything but those and the timestamp range is refused."""
    found = []
    for each in query.filters:
        if each.field == "timestamp" and each.op in "<>":
            continue
        if each.field not in keys or each.op != "in":
            raise InvalidPayload(f"{spec.name} can be filtered by {', '.join(keys)} and a timestamp range "
                                 "(filter[timestamp]>…, filter[timestamp]<…) only.", field=each.field)
        found.append(each)
    return found


def _range(query):
    """The capture service's query (services.capture.sensor_data): the time range (from inclusive, to exclusive), order, page and bucket."""
    out = {"from": None, "to": None, "descending": False, "limit": query.limit, "offset": query.offset,
           "after": query.after, "bucket": None}
    for each in query.filters:
        if each.field != "timestamp" or each.op not in "<>":
            continue
        out["from" if each.op == ">" else "to"] = str(each.values[0])  # the capture service reads the time
    for name, descending in query.sort:
        if name != "timestamp":
            raise InvalidPayload("Sensor data is sorted by timestamp only (sort=timestamp or sort=-timestamp).",
                                 field=name)
        out["descending"] = descending
    bucket = query.flags.get("bucket")
    if bucket is not None:
        if bucket != "auto":
            try:
                bucket = int(bucket)
            except ValueError:
                raise InvalidPayload(BUCKET_HELP, field="bucket") from None
            if bucket < 1:
                raise InvalidPayload(BUCKET_HELP, field="bucket")
        out["bucket"] = bucket
    return out


def _point(spec, point, base):
    body = {k: absolute(base, v) if k in ("sensor", "material_batch") else v for k, v in point.items() if k != "uuid"}
    if point.get("uuid"):
        body["uri"] = absolute(base, resource_path(spec.name, point["uuid"]))
    return body


def _listed(spec, page, base):
    meta = {"total_count_is_estimate": False, "next": page.get("next")}
    if page.get("bucket"):
        meta["bucket_seconds"] = page["bucket"]
    return json_response({"resources": [_point(spec, row, base) for row in page["rows"]],
                          "total_count": page["total"], "meta": meta})


READS = {"material-genealogy": material_genealogy, "sensor-data": sensor_data,
         "material_batch_sensor_data": material_batch_sensor_data}

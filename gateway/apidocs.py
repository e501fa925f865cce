"""The API described from the catalogue: an OpenAPI 3.1 document (/openapi.json) and a readable page (/docs)."""
import html
import re
from functools import lru_cache

from werkzeug.wrappers import Response

from gateway.files import VIEWS
from gateway.tolerant import aliases
from shared import catalogue
from shared.topics import legacy_class_name as class_name  # schema names as release 0.1 named classes
from shared.uploads import PROFILES as UPLOADS

_ERROR = {"$ref": "#/components/schemas/Error"}
# Every error Stratum answers: which of them an operation documents follows from what it is (a read, a write, with a
# body, an action; see _responses). Each is a JSON Error body, in components/responses.
_ERROR_TEXT = {
    "400": "Invalid input: the error names the field or query parameter",
    "401": "Not logged in (no credentials, or the session or token has ended)",
    "403": "Not allowed: the caller's role may not do this (the error says why)",
    "404": "Not found (or another bureau's)",
    "409": "Conflict with the resource's current state (or with writers changing it at the same moment): retry or "
           "change the request",
    "413": "The request body is larger than the deployment allows (STRATUM_MAX_BODY_KB)",
    "422": "Idempotency-Key reused with a different request (another method, path or body)",
    "501": "Documented but not built yet in this release",
    "503": "A service or database cannot be reached right now: retry after Retry-After seconds",
}
_HEADERS = {
    "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0},
                    "description": "Seconds to wait before retrying"},
    "Stratum-Ignored-Fields": {"schema": {"type": "string"}, "description": (
        "The fields of the request that the tolerant reader ignored (not in the reference), comma-separated (the "
        "first 50, then `...`); characters a header cannot carry are percent-encoded (UTF-8)")},
}
_IGNORED = {"Stratum-Ignored-Fields": {"$ref": "#/components/headers/Stratum-Ignored-Fields"}}
# The resources whose POST answers the generated secret once, in the body (an API token: `uuid` + `secret`).
_SHOWS_SECRET = "secret"


def _schema_of(field):
    kinds = {"string": {"type": "string"}, "integer": {"type": "integer"}, "number": {"type": "number"},
             "boolean": {"type": "boolean"}, "datetime": {"type": "string", "format": "date-time"},
             "uri": {"type": "string", "format": "uri"}, "object": {"type": "object"}, "any": {}}
    if field.type == "array":
        item = kinds.get(field.items or "any", {})
        schema = {"type": ["array", "null"], "items": item}
    else:
        schema = dict(kinds.get(field.type, {}))
        if "type" in schema and not field.required:
            schema["type"] = [schema["type"], "null"]
    if field.choices:
        schema["enum"] = list(field.choices) + ([] if field.required else [None])
    if field.minimum is not None:
        schema["minimum"] = field.minimum
    if field.maximum is not None:
        schema["maximum"] = field.maximum
    if field.readonly:
        schema["readOnly"] = True
    if field.writeonly:
        schema["writeOnly"] = True
    if field.description:
        schema["description"] = field.description
    return schema


def _object_schema(fields, request=True):
    schema = {"type": "object", "properties": {n: _schema_of(f) for n, f in fields.items() if not f.filter_only}}
    required = [n for n, f in fields.items() if f.required and not f.readonly and not f.filter_only]
    if required and request:
        schema["required"] = required
    return schema


def _responses(success, *, write=False, body=False, item=False, action=False):
    """`success` and the errors the operation can answer: every operation can meet an outage (503) and needs a
    session (401); reads of one resource and every write can miss it (404; a write also when what it points at is
    gone); list queries and writes check their input (400); writes are checked against the caller's role (403),
    can conflict with the resource's state or with concurrent writers (409) and carry an Idempotency-Key (422);
    a body can be too large (413); an action can be documented but not built yet (501)."""
    statuses = ["401", "503"]
    if item or write:
        statuses.append("404")
    if write or not item:
        statuses.append("400")
    if write:
        statuses += ["403", "409", "422"]
    if body:
        statuses.append("413")
    if action:
        statuses.append("501")
    return dict(success, **_refs(*sorted(statuses)))


def _refs(*statuses):
    return {status: {"$ref": f"#/components/responses/Error{status}"} for status in statuses}


def _error_responses():
    """components/responses: one per error status, referenced by every operation that can answer it."""
    responses = {}
    for status, text in _ERROR_TEXT.items():
        responses[f"Error{status}"] = {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    responses["Error503"]["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return responses


def _location(text):
    return {"Location": {"required": True, "schema": {"type": "string", "format": "uri"}, "description": text}}


def _created(spec, ref):
    if spec.item_path is None and "LIST" not in spec.verbs:  # nothing to read back (/contact-us/): 204, unless the
        # request made a resource of another kind (/zipfile-request/ → its /zipfile/): 201 pointing at it
        return {"204": {"description": "Accepted", "headers": dict(_IGNORED)},
                "201": {"description": "Made a resource of another kind",
                        "headers": dict(_location("URI of the resource it made"), **_IGNORED)}}
    headers = dict(_location("URI of the new resource"), **_IGNORED)
    if spec.name in UPLOADS:
        headers["X-Upload-Location"] = {"required": True, "schema": {"type": "string", "format": "uri"},
                                        "description": (
            "Signed link: PUT the file's raw bytes there (application/octet-stream); processing follows in the "
            "background and shows in the resource's status")}
    if spec.name == "design-file":
        headers["Model-Location"] = {"schema": {"type": "string", "format": "uri"},
                                     "description": "URI of the model it becomes"}
    created = {"description": "Created", "headers": headers}
    secret = spec.fields.get(_SHOWS_SECRET)
    if secret is not None and secret.readonly:  # generated by the service, shown this once
        created["description"] = "Created; the body holds the generated secret, which is never shown again"
        shown = {"uri": {"type": "string", "format": "uri"}, "uuid": {"type": "string", "format": "uuid"},
                 "secret": {"type": "string"}}
        created["content"] = {"application/json": {"schema": {"allOf": [ref], "required": list(shown),
                                                              "properties": shown}}}
    return {"201": created}


def _signed_query(*names):
    return [{"name": name, "in": "query", "required": True, "schema": {"type": "string"}} for name in names]


def _file_paths():
    """The two protocol endpoints of files.md §0.2 that carry bytes instead of JSON (signed links, no session)."""
    errors = {status: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
              for status, text in (("403", "Invalid or expired link"), ("404", "Not found"),
                                   ("409", "The resource already has its file"), ("413", "The file is too large"))}
    errors["503"] = {"$ref": "#/components/responses/Error503"}
    return {
        "/upload/{resource}/{uuid}/": {"put": {
            "summary": "Upload a file's bytes (the X-Upload-Location of its POST)", "tags": ["files"],
            "operationId": "put-upload", "security": [],
            "parameters": [{"name": "resource", "in": "path", "required": True, "schema": {"type": "string"}},
                           _uuid_parameter(), *_signed_query("expires", "signature")],
            "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                 "format": "binary"}}}},
            "responses": {"204": {"description": "Received; scan and analysis follow"}, **errors}}},
        "/content/{uuid}/": {"get": {
            "summary": "Download a file through its signed link (content, snapshot_content)", "tags": ["files"],
            "operationId": "get-content", "security": [],
            "parameters": [_uuid_parameter(), *_signed_query("resource", "field", "expires", "signature")],
            "responses": {"200": {"description": "The bytes, checked against their SHA-256", "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                **{k: v for k, v in errors.items() if k in ("403", "404", "503")}}}},
    }


def _uuid_parameter():
    return {"name": "uuid", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


# The LIST envelope's extension: how exact total_count is, and where the next page starts.
LIST_META = {
    "type": "object",
    "description": "Extension. total_count is exact up to 10,000 matching rows; past that it is an estimate "
                   "(PostgreSQL: the planner's; SQLite: 10,001, a floor) and total_count_is_estimate is true. "
                   "next is the page[after] cursor of the next page (null when this page is not full); past "
                   "10,000 it carries the estimate, which the pages after it answer again, as do the list's pages by offset "
                   "for a few seconds.",
    "properties": {"total_count_is_estimate": {"type": "boolean"}, "next": {"type": ["string", "null"]}},
}


def _list_parameters(spec):
    params = [{"name": "page[limit]", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
              {"name": "page[offset]", "in": "query", "schema": {"type": "integer", "minimum": 0}},
              {"name": "page[after]", "in": "query", "schema": {"type": "string"},
               "description": "Extension: the keyset cursor `meta.next` of the previous page (same sort); never "
                              "with page[offset]. A deep page by cursor costs what the first page costs."},
              {"name": "sort", "in": "query", "schema": {"type": "string"}, "description": "field or -field"}]
    params += [{"name": f"filter[{name}]", "in": "query", "required": name in spec.required_filters,
                "schema": {"type": "string"}, "description": "comma-separated values (any of)"}
               for name in spec.fields if name != "uri"]
    if spec.name in TIME_SERIES:
        params.append(BUCKET_PARAMETER)
    return params


# Readings (gateway.computed, services.capture.sensor_data): downsampling for long ranges.
TIME_SERIES = ("sensor-data", "material_batch_sensor_data")
BUCKET_PARAMETER = {
    "name": "bucket", "in": "query", "schema": {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string",
                                                                                            "enum": ["auto"]}]},
    "description": "Extension: downsample the readings into buckets of this many seconds (aligned on the epoch), "
                   "or `auto` for the bucket (whole minutes) that fits the time range (filter[timestamp]>…, "
                   "filter[timestamp]<…) in one page. Each row is one bucket of one sensor: `timestamp` is the "
                   "bucket's start, `temperature` and `humidity` the averages, plus `temperature_min`, "
                   "`temperature_max`, `humidity_min`, `humidity_max`, `count` and `bucket_seconds`; a bucket has "
                   "no `uri`. meta.bucket_seconds names the bucket used."}


def _paths_of(spec, ref):
    paths = {}
    collection, item = {}, {}
    if "LIST" in spec.verbs:
        listing = {"type": "object", "required": ["resources", "total_count"], "properties": {
            "resources": {"type": "array", "items": ref}, "total_count": {"type": "integer", "minimum": 0},
            "meta": LIST_META}}
        collection["get"] = {"summary": f"List {spec.name}", "parameters": _list_parameters(spec),
                             "responses": _responses({"200": {"description": "OK", "content": {
                                 "application/json": {"schema": listing}}}})}
        if spec.name in TIME_SERIES:  # a sensor (or batch) the filter names that the caller cannot see: 404 (A12)
            collection["get"]["responses"].update(_refs("404"))
    if "POST" in spec.verbs:
        collection["post"] = {"summary": f"Create {spec.name}", "requestBody": _body(ref),
                              "responses": _responses(_created(spec, ref), write=True, body=True)}
    if "GET" in spec.verbs:
        item["get"] = {"summary": f"Get {spec.name}", "responses": _responses(
            {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}, item=True)}
    if "PUT" in spec.verbs:
        item["put"] = {"summary": f"Update {spec.name} (partial)", "requestBody": _body(ref),
                       "responses": _responses({"204": {"description": "Updated", "headers": dict(_IGNORED)}},
                                               write=True, body=True, item=True)}
    if "DELETE" in spec.verbs:
        item["delete"] = {"summary": f"Delete {spec.name}", "responses": _responses(
            {"204": {"description": "Deleted"}}, write=True, item=True)}
    for shape, operations in (("list", collection), ("item", item)):
        for verb, operation in operations.items():
            operation["tags"] = [spec.service]
            operation["operationId"] = f"{verb}-{shape}-{spec.name}"
    if collection:
        paths[spec.path] = collection
    if item and spec.item_path:
        paths[spec.item_path] = dict(item, parameters=[_uuid_parameter()])
    for action in spec.actions:
        operations = {verb.lower(): dict(_action_operation(spec, action, verb), summary=f"{action.name} {spec.name}",
                                         tags=[spec.service], operationId=f"{verb.lower()}-{spec.name}-{action.name}")
                      for verb in action.verbs}
        paths[action.path] = dict(operations, parameters=[_uuid_parameter()])
    return paths


def _body(schema):
    """A request body: JSON, or form-encoded (clients of the reference send both)."""
    return {"content": {media: {"schema": schema}
                        for media in ("application/json", "application/x-www-form-urlencoded")}}


# Per-uuid actions that are reads (gateway.files.VIEWS) and answer bytes rather than JSON.
_BINARY_VIEWS = {("model", "binary"): "image/png"}


def _action_operation(spec, action, verb):
    """A per-uuid action: a GET the gateway answers as a view (a snapshot), or a command for the owning service
    (answered 202 when it goes on in the background, 204 when done, 201 when it made a resource whose file follows),
    which answers 501 while its rules are not built."""
    if verb == "GET" and (spec.name, action.name) in VIEWS:
        media = _BINARY_VIEWS.get((spec.name, action.name))
        content = {media: {"schema": {"type": "string", "format": "binary"}}} if media else \
            {"application/json": {"schema": _object_schema(action.fields, request=False)}}
        return {"responses": _responses({"200": {"description": "OK", "content": content}}, item=True)}
    done = {"headers": dict(_location("URI of the resource acted on (or of the one the action made)"), **_IGNORED)}
    success = {"202": dict(done, description="Accepted: the action goes on in the background"),
               "204": dict(done, description="Done")}
    if spec.name in UPLOADS:
        success.update(_created(spec, {"type": "object"}))
    operation = {"responses": _responses(success, write=True, body=bool(action.fields), item=True, action=True)}
    if action.fields and verb != "GET":
        operation["requestBody"] = _body(_object_schema(action.fields))
    return operation


def _gateway_paths():
    """The endpoints the gateway answers itself (the catalogue's `special` resources): the public /about/, the session
    (log in, who am I, log out), the CSRF token, and the endpoints whose path carries another parameter than a uuid
    (gateway.special), which answer what this deployment can: a 4xx naming the missing prerequisite, or 501."""
    json_of = lambda schema: {"application/json": {"schema": schema}}  # noqa: E731
    fields = lambda name: _object_schema(catalogue.resource(name).fields, request=False)  # noqa: E731
    about = dict(fields("about"), required=list(catalogue.resource("about").fields))
    session = {"type": "object", "required": ["uri", "user", "username", "name", "emails", "bureau"], "properties": {
        "uri": {"type": "string", "format": "uri"}, "user": {"type": "string", "format": "uri"},
        "username": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]},
        "emails": {"type": "array", "items": {"type": "string"}},
        "bureau": {"type": ["string", "null"], "format": "uri"}}}
    logged_in = {"allOf": [session], "required": ["session_key"], "properties": {"session_key": {
        "type": "string", "description": "The session's key: the `session` cookie, or a Bearer token"}}}
    credentials = {"type": "object", "required": ["username", "password"], "properties": {
        "username": {"type": "string"}, "password": {"type": "string", "writeOnly": True}}}
    error = lambda text, headers=None: dict(  # noqa: E731
        {"description": text, "content": json_of(_ERROR)}, **({"headers": headers} if headers else {}))
    retry = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    paths = {
        "/about/": {"get": {"summary": "The deployment: name, version, date", "operationId": "get-about",
                            "tags": ["gateway"], "security": [], "responses": {
                                "200": {"description": "OK", "content": json_of(about)},
                                **_refs("503")}}},
        "/csrf-token/": {"get": {"summary": "The session's CSRF token (for role changes)", "operationId": "get-csrf",
                                 "tags": ["identity"], "responses": {
                                     "200": {"description": "OK", "content": json_of(fields("csrf-token"))},
                                     "403": error("Not logged in (the reference answers 403 here)"),
                                     **_refs("503")}}},
        "/sessions/": {
            "post": {"summary": "Log in: a session (cookie `session`, or the session_key as a Bearer token)",
                     "operationId": "post-sessions", "tags": ["identity"], "security": [],
                     "requestBody": _body(credentials), "responses": {
                         "201": {"description": "Logged in", "content": json_of(logged_in),
                                 "headers": _location("URI of the session")},
                         **_responses({}, body=True), "401": error("Wrong username or password"),
                         "429": error("Too many failed logins (from this address, or for this account)", retry)}},
            "get": {"summary": "The session's user and bureau", "operationId": "get-sessions", "tags": ["identity"],
                    "responses": {"200": {"description": "OK", "content": json_of(session)}, **_refs("401", "503")}},
            "delete": {"summary": "Log out", "operationId": "delete-sessions", "tags": ["identity"],
                       "responses": {"204": {"description": "Logged out"}, **_refs("401", "503")}}},
    }
    webhook_secret = {"type": "object", "properties": {
        "bureau": {"type": "string", "format": "uri"}, "secret": {"type": "string"}, "generation": {"type": "integer"},
        "header": {"type": "string"}, "scheme": {"type": "string"}}}
    paths["/webhook-secret/"] = {
        "get": {"summary": "The bureau's webhook signing secret (Stratum extension; managers)",
                "operationId": "get-webhook-secret", "tags": ["notifications"],
                "description": "Order webhooks carry X-Stratum-Signature: sha256=<hex HMAC-SHA256(secret, "
                               "X-Stratum-Timestamp + '.' + raw body)>, with this bureau's own secret.",
                "responses": {"200": {"description": "OK", "content": json_of(webhook_secret)},
                              **_refs("401", "503"), "403": error("Not a manager of the bureau")}},
        "post": {"summary": "Replace the bureau's webhook signing secret (Stratum extension; managers)",
                 "operationId": "post-webhook-secret", "tags": ["notifications"],
                 "responses": {"200": {"description": "The new secret", "content": json_of(webhook_secret)},
                               **_refs("401", "503"), "403": error("Not a manager of the bureau")}}}
    paths["/password-reset/"] = {"post": {
        "summary": "Ask for a password reset mail (Stratum extension)", "operationId": "post-password-reset",
        "tags": ["identity"], "security": [],
        "description": "Mails a single-use token, valid for an hour, to the account with this username or e-mail "
                       "(template `users.password_reset`). The answer is the same whether or not the account "
                       "exists. Requests closer than a minute apart send no new mail; a new request replaces the "
                       "previous token.",
        "requestBody": _body({"type": "object", "properties": {"username": {"type": "string"},
                                                              "email": {"type": "string"}}}),
        "responses": {"202": {"description": "Accepted (whether or not the account exists)", "content": json_of(
            {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}})},
                      **_responses({}, body=True), "429": error("Too many failed logins from this address", retry)}}}
    paths["/password-reset/confirm/"] = {"post": {
        "summary": "Set a new password with a mailed reset token (Stratum extension)",
        "operationId": "post-password-reset-confirm", "tags": ["identity"], "security": [],
        "description": "The token works once, until it expires; it also lifts a lock-out after failed logins.",
        "requestBody": _body({"type": "object", "required": ["token", "password"], "properties": {
            "token": {"type": "string"}, "password": {"type": "string", "writeOnly": True}}}),
        "responses": {"204": {"description": "The password is changed"},
                      **_responses({}, body=True),
                      "429": error("Too many failed logins (or wrong tokens) from this address", retry)}}}
    audit_row = dict(fields("event"), properties=dict(fields("event")["properties"], id={
        "type": "integer", "description": "The row's position in the stream (resume after it with Last-Event-ID)"}))
    position = {"type": "integer", "minimum": 0}
    paths["/event-stream/"] = {"get": {
        "summary": "The bureau's events, live (Stratum extension)", "operationId": "get-event-stream",
        "tags": ["gateway"],
        "description": "The rows of /event/ of the caller's bureau as they are recorded, as newline-delimited JSON "
                       "(one row per line; empty lines are heartbeats) or, with `Accept: text/event-stream` or "
                       "`format=sse`, as Server-Sent Events (`id:` = the row's id). Resumable: `Last-Event-ID` or "
                       "`after` starts after that id (0: from the start); without either, from now on. The stream "
                       "lasts until the client leaves, or `max_seconds`.",
        "parameters": [
            {"name": "after", "in": "query", "schema": position, "description": "start after this row id"},
            {"name": "max_seconds", "in": "query", "schema": position, "description": "end the stream after this"},
            {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["ndjson", "sse"]}},
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
             "description": "the last row id received (what EventSource sends when it reconnects)"}],
        "responses": {"200": {"description": "The stream", "content": {
            "application/x-ndjson": {"schema": audit_row},
            "text/event-stream": {"schema": {"type": "string"}}}},
            **_refs("400", "401", "503")}}}
    for spec in catalogue.catalogue().values():
        names = re.findall(r"\{(\w+)\}", spec.path)
        if spec.special and names and "LIST" in spec.verbs:
            listing = {"type": "object", "required": ["resources", "total_count"], "properties": {
                "resources": {"type": "array", "items": _object_schema(spec.fields, request=False)},
                "total_count": {"type": "integer", "minimum": 0}}}
            paths[spec.path] = {"get": {
                "summary": f"List {spec.name}", "operationId": f"get-list-{spec.name.replace('/', '-')}",
                "tags": [spec.service], "description": spec.description,
                "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                               for name in names],
                "responses": {"200": {"description": "OK", "content": json_of(listing)},
                              **_refs("400", "401", "404", "501", "503")}}}
    return paths


@lru_cache(maxsize=4)
def openapi_document(version, base_url):
    schemas = {"Error": {"type": "object", "required": ["errors"], "properties": {"errors": {
        "type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["code", "title"],
            "properties": {"code": {"type": "string"}, "title": {"type": "string"},
                           "field": {"type": "string", "description": "the field or parameter at fault"}}}}}}}
    paths = {}
    for spec in catalogue.catalogue().values():
        if spec.special:
            continue
        schema_name = class_name(spec.name)
        schemas[schema_name] = dict(_object_schema(spec.fields), description=spec.description or spec.name)
        paths.update(_paths_of(spec, {"$ref": f"#/components/schemas/{schema_name}"}))
    paths.update(_file_paths())
    paths.update(_gateway_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stratum MES API", "version": version, "description": _DESCRIPTION + _aliases_text()},
        "servers": [{"url": base_url}],
        "security": [{"session": []}, {"bearer": []}, {"apiToken": []}],
        "components": {"schemas": schemas, "responses": _error_responses(), "headers": _HEADERS, "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "a session_key (POST /sessions/)"},
            "apiToken": {"type": "http", "scheme": "basic", "description": "an API token: its uuid and secret"}}},
        "paths": paths,
    }


_DESCRIPTION = (
    "Event-sourced MES for additive-manufacturing service bureaus.\n\n"
    "**Tolerant reader.** A field a resource does not document is ignored (not stored) and named in the response "
    "header `Stratum-Ignored-Fields`; a read-only field sent back unchanged is accepted, one sent with another value "
    "is a 400; `\"\"` or `null` on an optional field unsets it; a number sent as a string is read as that number. "
    "Send `Prefer: handling=strict` (RFC 7240) to have every unknown field answered with a 400 instead (a deployment "
    "can make that the default with STRATUM_STRICT_FIELDS=1). Browser applications on the origins in "
    "STRATUM_CORS_ORIGINS may call the API with credentials (CORS).\n\n")


def _aliases_text():
    lines = [f"- `{resource}`: `{old}` → `{new}`" for resource, names in sorted(aliases().items())
             for old, new in sorted(names.items())]
    return "**Older field names still read** (also: `-` and `_` are interchangeable in field names):\n" + "\n".join(lines)


@lru_cache(maxsize=1)
def _docs_html():
    specs = [s for s in catalogue.catalogue().values() if not s.special]
    by_service = {}
    for spec in specs:
        by_service.setdefault(spec.service, []).append(spec)
    esc = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>Stratum API</title><style>",
           "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}",
           "table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 6px;"
           "text-align:left;vertical-align:top}code{background:#f4f4f4;padding:1px 3px}h3{margin-top:2em}",
           "</style></head><body><h1>Stratum MES API</h1>",
           "<p>Log in with <code>POST /sessions/</code>; URIs are absolute; POST → 201 + Location, PUT is partial → "
           "204, DELETE → 204. LIST takes <code>filter[field]=a,b</code>, <code>filter[field]&gt;x</code>, "
           "<code>sort=-field</code>, <code>page[limit]</code>, <code>page[offset]</code>, and (an extension) "
           "<code>page[after]</code>, the keyset cursor a page gives as <code>meta.next</code>. "
           "<code>total_count</code> is exact up to 10,000 rows, past that an estimate flagged by "
           "<code>meta.total_count_is_estimate</code>. Machine-readable: "
           "<a href='/openapi.json'>/openapi.json</a>.</p><h2>Contents</h2>"]
    for service, items in sorted(by_service.items()):
        links = ", ".join(f"<a href='#{esc(s.name)}'>{esc(s.path)}</a>" for s in items)
        out.append(f"<p><b>{esc(service)}</b>: {links}</p>")
    for spec in specs:
        out.append(f"<h3 id='{esc(spec.name)}'>{esc(spec.path)} <small>({esc(spec.service)}; "
                   f"{esc(', '.join(spec.verbs))})</small></h3><p>{esc(spec.description)}</p>")
        for action in spec.actions:
            out.append(f"<p>Action: <code>{esc(', '.join(action.verbs))} {esc(action.path)}</code></p>")
        out.append("<table><tr><th>field</th><th>type</th><th>rules</th><th>description</th></tr>")
        for field in spec.fields.values():
            rules = [r for r, on in (("required", field.required), ("read-only", field.readonly),
                                     ("filter only", field.filter_only)) if on]
            if field.choices:
                rules.append("one of: " + " | ".join(map(str, field.choices)))
            if field.ref:
                rules.append(f"→ {field.ref}")
            if field.has_default and field.default is not None:
                rules.append(f"default {field.default}")
            out.append(f"<tr><td><code>{esc(field.name)}</code></td><td>{esc(field.type)}</td>"
                       f"<td>{esc('; '.join(rules))}</td><td>{esc(field.description)}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "".join(out)


def docs_page():
    return Response(_docs_html(), mimetype="text/html")

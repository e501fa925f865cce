"""The API described from the catalogue: an OpenAPI 3.1 document (/openapi.json) and a readable page (/docs)."""
import html
from functools import lru_cache

from werkzeug.wrappers import Response

from gateway.tolerant import aliases
from shared import catalogue
from shared.topics import legacy_class_name as class_name  # schema names as release 0.1 named classes
from shared.uploads import PROFILES as UPLOADS

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_STATUSES = {"400": "Invalid input (the error names the field)", "401": "Not logged in",
                   "404": "Not found (or another bureau's)", "405": "Verb not allowed here"}


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


def _object_schema(fields):
    schema = {"type": "object", "properties": {n: _schema_of(f) for n, f in fields.items() if not f.filter_only}}
    required = [n for n, f in fields.items() if f.required and not f.readonly and not f.filter_only]
    if required:
        schema["required"] = required
    return schema


def _responses(success):
    responses = dict(success)
    for status, text in _ERROR_STATUSES.items():
        responses[status] = {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    return responses


def _created(spec=None):
    headers = {"Location": {"schema": {"type": "string"}, "description": "URI of the new resource"}}
    if spec is not None and spec.name in UPLOADS:
        headers["X-Upload-Location"] = {"schema": {"type": "string"}, "description": (
            "Signed link: PUT the file's raw bytes there (application/octet-stream); processing follows in the "
            "background and shows in the resource's status")}
    if spec is not None and spec.name == "design-file":
        headers["Model-Location"] = {"schema": {"type": "string"}, "description": "URI of the model it becomes"}
    return {"201": {"description": "Created", "headers": headers}}


def _signed_query(*names):
    return [{"name": name, "in": "query", "required": True, "schema": {"type": "string"}} for name in names]


def _file_paths():
    """The two protocol endpoints of files.md §0.2 that carry bytes instead of JSON (signed links, no session)."""
    errors = {status: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
              for status, text in (("403", "Invalid or expired link"), ("404", "Not found"),
                                   ("409", "The resource already has its file"), ("413", "The file is too large"))}
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
                **{k: v for k, v in errors.items() if k in ("403", "404")}}}},
    }


def _uuid_parameter():
    return {"name": "uuid", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def _list_parameters(spec):
    params = [{"name": "page[limit]", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
              {"name": "page[offset]", "in": "query", "schema": {"type": "integer", "minimum": 0}},
              {"name": "sort", "in": "query", "schema": {"type": "string"}, "description": "field or -field"}]
    params += [{"name": f"filter[{name}]", "in": "query", "required": name in spec.required_filters,
                "schema": {"type": "string"}, "description": "comma-separated values (any of)"}
               for name in spec.fields if name != "uri"]
    return params


def _paths_of(spec, ref):
    paths = {}
    collection, item = {}, {}
    if "LIST" in spec.verbs:
        listing = {"type": "object", "properties": {"resources": {"type": "array", "items": ref},
                                                     "total_count": {"type": "integer"}}}
        collection["get"] = {"summary": f"List {spec.name}", "parameters": _list_parameters(spec),
                             "responses": _responses({"200": {"description": "OK", "content": {
                                 "application/json": {"schema": listing}}}})}
    if "POST" in spec.verbs:
        collection["post"] = {"summary": f"Create {spec.name}", "requestBody": {"content": {
            "application/json": {"schema": ref}, "application/x-www-form-urlencoded": {"schema": ref}}},
            "responses": _responses(_created(spec))}
    if "GET" in spec.verbs:
        item["get"] = {"summary": f"Get {spec.name}", "responses": _responses(
            {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}})}
    if "PUT" in spec.verbs:
        item["put"] = {"summary": f"Update {spec.name} (partial)", "requestBody": {"content": {
            "application/json": {"schema": ref}}}, "responses": _responses({"204": {"description": "Updated"}})}
    if "DELETE" in spec.verbs:
        item["delete"] = {"summary": f"Delete {spec.name}", "responses": _responses({"204": {"description": "Deleted"}})}
    for shape, operations in (("list", collection), ("item", item)):
        for verb, operation in operations.items():
            operation["tags"] = [spec.service]
            operation["operationId"] = f"{verb}-{shape}-{spec.name}"
    if collection:
        paths[spec.path] = collection
    if item and spec.item_path:
        paths[spec.item_path] = dict(item, parameters=[_uuid_parameter()])
    for action in spec.actions:
        operations = {verb.lower(): {"summary": f"{action.name} {spec.name}", "tags": [spec.service],
                                     "operationId": f"{verb.lower()}-{spec.name}-{action.name}",
                                     "responses": _responses({"202": {"description": "Accepted"},
                                                              "204": {"description": "Done"}})}
                      for verb in action.verbs}
        paths[action.path] = dict(operations, parameters=[_uuid_parameter()])
    return paths


@lru_cache(maxsize=4)
def openapi_document(version, base_url):
    schemas = {"Error": {"type": "object", "properties": {"errors": {"type": "array", "items": {
        "type": "object", "properties": {"code": {"type": "string"}, "title": {"type": "string"},
                                         "field": {"type": "string"}}}}}}}
    paths = {}
    for spec in catalogue.catalogue().values():
        if spec.special:
            continue
        schema_name = class_name(spec.name)
        schemas[schema_name] = dict(_object_schema(spec.fields), description=spec.description or spec.name)
        paths.update(_paths_of(spec, {"$ref": f"#/components/schemas/{schema_name}"}))
    paths.update(_file_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stratum MES API", "version": version, "description": _DESCRIPTION + _aliases_text()},
        "servers": [{"url": base_url}],
        "security": [{"session": []}, {"bearer": []}],
        "components": {"schemas": schemas, "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            "bearer": {"type": "http", "scheme": "bearer"}}},
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
           "<code>sort=-field</code>, <code>page[limit]</code>, <code>page[offset]</code>. Machine-readable: "
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

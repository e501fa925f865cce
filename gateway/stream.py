"""The live event stream (issue 15 item 4, a Stratum extension): `GET /event-stream/` pushes the caller's bureau's
audit events (the rows of `/event/`: one per changed field, capture-and-platform.md E1) as the read side records
them.

- Newline-delimited JSON (`application/x-ndjson`, one `/event/` row per line, plus its `id`), or Server-Sent Events
  for browsers (`Accept: text/event-stream` or `?format=sse`: `id:` and `data:` per row, `EventSource` reconnects
  by itself with `Last-Event-ID`).
- Resumable: `Last-Event-ID: <id>` or `?after=<id>` starts after that row, so a client that reconnects with the last
  id it saw misses nothing; without either it starts with what happens from now on (`?after=0`: from the start).
- Scoped strictly to the caller's bureau (a platform administrator's too), and to what the caller may read in it.
- `?max_seconds=N` ends the stream after N seconds (scripts, tests); otherwise it lasts until the client leaves.
  Idle streams carry a heartbeat (an empty line; an SSE comment) every few seconds.

An `id` is a change's (one event's changes to one resource: several items share it); resuming after it continues
with the next change. Rows are read from the read store by id, which only grows; each stream polls it (every 0.5 s), so a stream costs a
cheap indexed query per poll and no RabbitMQ consumer.
"""
import json
import time

from werkzeug.wrappers import Response

from gateway.readstore import Scope
from gateway.rendering import render_audit
from shared.errors import InvalidPayload

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 5
BATCH = 200


def _int_parameter(value, name):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidPayload(f"'{name}' must be a non-negative integer.", field=name) from None
    if number < 0:
        raise InvalidPayload(f"'{name}' must be a non-negative integer.", field=name)
    return number


def stream_response(request, store, caller, base_url, poll=POLL_SECONDS, heartbeat=HEARTBEAT_SECONDS):
    sse = request.args.get("format") == "sse" or "text/event-stream" in (request.headers.get("Accept") or "")
    resume = request.headers.get("Last-Event-ID") or request.args.get("after")
    after = None if resume in (None, "") else _int_parameter(resume, "after")
    max_seconds = request.args.get("max_seconds")
    deadline = None if max_seconds in (None, "") else time.monotonic() + _int_parameter(max_seconds, "max_seconds")
    scope = Scope(caller.bureau, caller.user)
    if after is None:
        after = store.audit_after(scope, None, 0)[1]

    def line(row):
        body = dict(render_audit(row, base_url), id=row.id)
        data = json.dumps(body, separators=(",", ":"))
        if not sse:
            return data + "\n"
        # the id of the change rides on its last item only: a client that reconnects resumes after whole changes
        return (f"id: {row.id}\n" if row.closes else "") + f"event: event\ndata: {data}\n\n"

    def generate():
        position = after
        quiet_since = time.monotonic()
        yield "retry: 2000\n\n" if sse else "\n"  # the headers and a first chunk go out at once
        while deadline is None or time.monotonic() < deadline:
            rows, position = store.audit_after(scope, position, BATCH)
            for row in rows:
                yield line(row)
            if rows:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= heartbeat:
                yield ": keep-alive\n\n" if sse else "\n"  # also how a closed connection is noticed
                quiet_since = time.monotonic()
            time.sleep(poll)

    # eventlet's WSGI server gathers small writes into 4 KiB chunks unless told otherwise, per request
    request.environ["eventlet.minimum_write_chunk_size"] = 0
    response = Response(generate(), mimetype="text/event-stream" if sse else "application/x-ndjson",
                        direct_passthrough=True)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # proxies (nginx) must not buffer a live stream
    return response

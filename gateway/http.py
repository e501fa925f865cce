"""HTTP plumbing of the gateway: JSON responses, the error table, request payload parsing."""
import functools
import json
import logging

from nameko.web.handlers import HttpRequestHandler
from werkzeug.wrappers import Response

from shared.errors import InvalidPayload, StratumError
from shared.validation import coerce_form

log = logging.getLogger(__name__)

ANY_METHOD = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"


def json_response(body, status=200, headers=None):
    text = "" if body is None else json.dumps(body, separators=(",", ":"))
    return Response(text, status=status, headers=headers,
                    mimetype="application/json" if body is not None else None)


class JsonHttpEntrypoint(HttpRequestHandler):
    """Every failure becomes a JSON error body with its status; anything unexpected is a logged 500."""

    def response_from_exception(self, exc):
        if isinstance(exc, StratumError):
            return json_response(exc.as_json(), status=exc.status, headers=exc.headers())
        log.error("unhandled error in gateway", exc_info=exc)
        return json_response({"errors": [{"code": "internal-error", "title": "Internal server error."}]}, 500)


def http(method, url, **kwargs):
    """`@http` whose domain errors become their JSON answer inside the worker, so a client's mistake is answered,
    not logged as a failure with a traceback."""
    def decorate(handler):
        @functools.wraps(handler)
        def answer_errors(*args, **kw):
            try:
                return handler(*args, **kw)
            except StratumError as error:
                return json_response(error.as_json(), status=error.status, headers=error.headers())
        return JsonHttpEntrypoint.decorator(method, url, **kwargs)(answer_errors)
    return decorate


def read_payload(request, spec=None):
    """The request body as a dict: JSON, or form-encoded (clients of the reference send both)."""
    mimetype = request.mimetype or ""
    raw = request.get_data(cache=True, parse_form_data=False)
    # curl -d sends JSON labelled as a form; a body that opens with "{" is JSON whatever its label says.
    looks_like_json = raw.lstrip()[:1] == b"{"
    if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") and not looks_like_json:
        return coerce_form(spec, request.form) if spec is not None else request.form.to_dict()
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except ValueError:
        raise InvalidPayload("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidPayload("The request body must be a JSON object.")
    return payload

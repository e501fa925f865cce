"""Request bodies, read so that nothing which could never be stored or replayed gets past the edge.

An event, once committed, is replayed by every rebuild for ever: a string PostgreSQL's JSONB refuses (NUL, a lone
surrogate), a non-finite number (NaN, Infinity, 1e400), a body of many megabytes or a structure nested hundreds
deep would poison the feed or stall the store. They are refused here with a 400 (413 for size) naming where they
are, before any service is asked.
"""
import json
import math

from werkzeug.exceptions import RequestEntityTooLarge

from shared.errors import InvalidPayload, PayloadTooLarge
from shared.validation import coerce_form

MAX_DEPTH = 32  # objects and arrays inside each other; the reference's deepest documented shapes use 4


def read_payload(request, spec=None, max_bytes=1 << 20):
    """The request body as a dict: JSON, or form-encoded (clients of the reference send both), checked."""
    raw = _body(request, max_bytes)
    mimetype = request.mimetype or ""
    # curl -d sends JSON labelled as a form; a body that opens with "{" is JSON whatever its label says.
    looks_like_json = raw.lstrip()[:1] == b"{"
    if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") and not looks_like_json:
        payload = coerce_form(spec, request.form) if spec is not None else request.form.to_dict()
    elif not raw.strip():
        return {}
    else:
        payload = _json(raw)
    check_storable(payload)
    return payload


def _body(request, max_bytes):
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    # A chunked body announces no length, and werkzeug cuts a stream at max_content_length without a word: read
    # one byte past the limit, so a cut body is recognised as too large instead of parsed as a truncated one.
    request.max_content_length = max_bytes + 1
    try:
        raw = request.get_data(cache=True, parse_form_data=False)
    except RequestEntityTooLarge:
        raise _too_large(max_bytes) from None
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    return raw


def _too_large(max_bytes):
    return PayloadTooLarge(f"The request body is larger than {max_bytes // 1024} KiB (STRATUM_MAX_BODY_KB).")


def _json(raw):
    try:
        payload = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep("the body") from None
    except UnicodeDecodeError:
        raise InvalidPayload("The request body is not valid UTF-8.") from None
    except ValueError:
        raise InvalidPayload("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidPayload("The request body must be a JSON object.")
    return payload


def _refuse_constant(name):
    raise InvalidPayload(f"'{name}' is not a number JSON allows; send a finite number or null.")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise InvalidPayload(f"'{text}' is too large a number; send a finite number.")
    return value


def check_storable(payload):
    """Every key and string storable in any backend, every number finite, nesting bounded; 400 naming the field."""
    stack = [(payload, None, 0)]
    while stack:
        value, field, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(f"'{field}'")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, field or key)
                stack.append((item, field or key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, field, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value, field)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidPayload(f"'{field}' must be a finite number.", field=field)


def _check_text(text, field):
    if "\x00" in text:
        raise InvalidPayload(f"'{field}' contains a NUL character, which cannot be stored.", field=field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload(f"'{field}' contains an unpaired surrogate (not valid Unicode).", field=field) from None


def _too_deep(where):
    return InvalidPayload(f"{where[0].upper()}{where[1:]} is nested more than {MAX_DEPTH} levels deep.")

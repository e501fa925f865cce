"""Keyset cursors for `page[after]`: opaque to clients, they carry the order keys of a page's last row.

A cursor is URL-safe base64 of JSON {"s": <signature>, "k": [key values]}. The signature is a short digest of the
list and sort it was made for, so a cursor handed to another list or another sort is refused (400), not silently
misread. Filters are not part of it: a cursor with other filters pages on from the same place in the order.
"""
import base64
import binascii
import functools
import hashlib
import json
import math
import re

from sqlalchemy import Boolean, Float, Integer

from gateway.indexes import DocumentId
from shared.errors import InvalidPayload

FIELD = "page[after]"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@functools.lru_cache(maxsize=1024)  # a (resource, sort) pair: a handful per deployment, asked for on every full page
def _signature(signature):
    return hashlib.sha256(json.dumps(signature, default=str).encode()).hexdigest()[:12]


def encode(signature, values, estimate=None):
    """The cursor after the row whose order keys are `values`. `estimate`: the list's total_count when it was an
    estimate (past the count's bound), carried to the pages after so they need not count again."""
    body = {"s": _signature(signature), "k": values}
    if estimate is not None:
        body["t"] = estimate
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor, signature, length, with_estimate=False):
    """The key values in `cursor`, checked against the list it is used on; InvalidPayload (400) otherwise.
    `with_estimate`: (the values, the estimated total the cursor carries or None)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidPayload(f"{FIELD} is not a cursor: pass the `meta.next` of the previous page unchanged.",
                             field=FIELD) from None
    if not isinstance(body, dict) or not isinstance(body.get("k"), list) or not isinstance(body.get("s"), str):
        raise InvalidPayload(f"{FIELD} is not a cursor: pass the `meta.next` of the previous page unchanged.",
                             field=FIELD)
    if body["s"] != _signature(signature) or len(body["k"]) != length:
        raise InvalidPayload(f"{FIELD} was made for another list or sort order: page on with the same `sort` "
                             "as the page that gave it.", field=FIELD)
    if not all(v is None or isinstance(v, (str, int, float, bool)) for v in body["k"]):
        raise InvalidPayload(f"{FIELD} is not a cursor: pass the `meta.next` of the previous page unchanged.",
                             field=FIELD)
    if not with_estimate:
        return body["k"]
    estimate = body.get("t")
    if estimate is not None and (not isinstance(estimate, int) or isinstance(estimate, bool) or estimate < 0
                                 or estimate >= 2 ** 63):
        raise InvalidPayload(f"{FIELD} is not a cursor: pass the `meta.next` of the previous page unchanged.",
                             field=FIELD)
    return body["k"], estimate


def check_types(values, types):
    """Each key value of the right kind for its column (a hand-made cursor must be a 400, never a database error)."""
    for value, kind in zip(values, types):
        if value is None:
            continue
        if isinstance(kind, Boolean):
            fits = isinstance(value, bool)
        elif isinstance(kind, Integer):
            fits = isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 63
        elif isinstance(kind, Float):
            fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif isinstance(kind, DocumentId):
            fits = isinstance(value, str) and _UUID.fullmatch(value) is not None
        else:
            fits = isinstance(value, str) and "\x00" not in value
        if not fits:
            raise InvalidPayload(f"{FIELD} is not a cursor: pass the `meta.next` of the previous page unchanged.",
                                 field=FIELD)

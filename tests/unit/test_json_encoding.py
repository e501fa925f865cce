"""The gateway's JSON answers (gateway.http.encode_json) are byte for byte what json.dumps(body, separators=(",",
":")) writes, on bodies where orjson alone would write something else and on plain ones."""
import enum
import json
import math
import random
import struct
from uuid import uuid4

import pytest

from gateway.http import encode_json


def reference(body):
    return json.dumps(body, separators=(",", ":")).encode()


class Colour(enum.IntEnum):
    RED = 1


BODIES = [
    {"resources": [{"name": "scale-00000001", "priority": 7, "notes": None, "line_items": [], "ok": True,
                    "cost": 12.5, "uri": "http://host/order/1/"}], "total_count": 1,
     "meta": {"total_count_is_estimate": False, "next": None}},
    {"name": "Café ☕ 😀"},  # non-ASCII: json escapes it
    {"ctrl": "".join(chr(i) for i in range(128))},  # every ASCII character, DEL among them
    {"floats": [0.0, -0.0, 1.0, 0.1, 1e-4, 9999999999999998.0, 1e15, 123456.789]},
    {"big": 1e16}, {"small": 1e-05}, {"tiny": 5e-324}, {"huge": 1.7976931348623157e308},  # exponent notation
    {"nan": math.nan}, {"inf": [math.inf, -math.inf]},
    {"int": [2 ** 63 - 1, -2 ** 63, 2 ** 64, -2 ** 70]},  # past 64 bits: orjson refuses
    {1: "an integer key"}, {None: "a null key"},
    {"tuple": (1, "two", [3])},
    {"enum": Colour.RED},  # an int subclass: json writes its int value
    {"lone": "\ud800"},
    [[[[[[[[[[]]]]]]]]]],
    "a string", 42, None, True,
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_same_bytes_as_json_dumps(body):
    assert bytes(_as_bytes(encode_json(body))) == reference(body)


def test_random_floats():
    numbers = random.Random(12)
    floats = [struct.unpack("d", struct.pack("Q", numbers.getrandbits(64)))[0] for _ in range(20_000)]
    floats += [numbers.uniform(-1e6, 1e6) for _ in range(20_000)]
    body = {"values": floats}
    assert _as_bytes(encode_json(body)) == reference(body)


def test_deep_nesting_is_json_dumps_answer():
    body = []
    for _ in range(300):
        body = [body]
    assert _as_bytes(encode_json(body)) == reference(body)


def test_types_json_refuses_are_still_refused():
    with pytest.raises(TypeError):
        encode_json({"uuid": uuid4()})  # orjson would write it; the gateway never sent one and still does not


def _as_bytes(encoded):
    return encoded if isinstance(encoded, bytes) else encoded.encode()

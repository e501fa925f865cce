"""The read side's JSON decoder (gateway.readstore.json_loads) gives exactly what json.loads gives, including for
what orjson refuses (NaN, integers past 64 bits, lone surrogates), which json.loads then reads."""
import json
import math

import pytest

from gateway.readstore import json_loads

SAMPLES = [
    '{"name":"scale-00000001","priority":7,"notes":"seeded","line_items":[],"due_date":null,"quote_required":false}',
    '{"b":1,"a":2,"b":3}',  # a repeated key: the last one wins, in the first one's place
    '{"x":0.1,"y":1e16,"z":-0.0,"w":1.7976931348623157e308,"v":5e-324,"u":123456789012345678}',
    '{"big":123456789012345678901234567890}',  # past 64 bits: orjson would make it a float
    '{"edge":18446744073709551616,"neg":-9223372036854775809,"max":18446744073709551615}',
    '{"text":"caf\\u00e9 \\ud83d\\ude00 \\u2028"}',
    '{"lone":"\\ud800"}',  # a lone surrogate: not UTF-8, orjson refuses
    '[NaN, Infinity, -Infinity]',
    '"just a string"',
]


@pytest.mark.parametrize("text", SAMPLES)
def test_same_values_as_json_loads(text):
    ours, theirs = json_loads(text), json.loads(text)
    assert json.dumps(ours, allow_nan=True) == json.dumps(theirs, allow_nan=True)
    assert type(ours) is type(theirs)
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)


def test_nan_reads_as_nan():
    assert all(math.isnan(v) or math.isinf(v) for v in json_loads("[NaN, Infinity, -Infinity]"))


def test_bytes_too():
    assert json_loads(b'{"a":[1,2.5,"\xc3\xa9"]}') == {"a": [1, 2.5, "é"]}


def test_invalid_json_still_fails():
    with pytest.raises(ValueError):
        json_loads("{not json")


def test_a_number_is_refused_as_json_loads_refuses_it():
    # SQLAlchemy's SQLite JSON type reads a value SQLite stored as a number by catching exactly this TypeError
    with pytest.raises(TypeError):
        json_loads(5)

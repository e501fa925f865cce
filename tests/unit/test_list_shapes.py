"""gateway.shapes: the statements of a LIST kept per shape, run again with the values of the next LIST."""
from sqlalchemy import column, select, table
from sqlalchemy.dialects import sqlite

from gateway import shapes

ITEMS = table("items", column("a"), column("b"))


def test_lists_of_one_shape_have_one_key_and_their_own_values_in_order():
    first, second = shapes.shape_of(ITEMS.c.a == 5, ITEMS.c.b.in_(["x"])), shapes.shape_of(
        ITEMS.c.a == 6, ITEMS.c.b.in_(["y", "z"]))
    assert first[0] == second[0]  # an IN list of any length is one shape
    assert [bind.value for bind in second[1]] == [6, ["y", "z"]]
    assert shapes.shape_of(ITEMS.c.b == 5)[0] != first[0]


def test_a_kept_statement_takes_the_values_by_the_names_it_was_compiled_with():
    condition = ITEMS.c.a == 5
    _, binds = shapes.shape_of(condition)
    prepared = shapes.Prepared(sqlite.dialect(), select(ITEMS).where(condition), binds)
    assert prepared.complete and prepared.params([9]) == {"a_1": 9}


def test_a_statement_holding_a_value_no_list_brings_is_not_kept():
    condition = ITEMS.c.a == 5
    _, binds = shapes.shape_of(condition)
    stray = select(ITEMS).where(condition, ITEMS.c.b == 7)  # 7 would stay the first LIST's value
    assert not shapes.Prepared(sqlite.dialect(), stray, binds).complete


def test_the_oldest_shape_is_forgotten_first(monkeypatch):
    monkeypatch.setattr(shapes, "MAX_SHAPES", 2)
    kept = shapes.Shapes()
    for key in "abc":
        kept.keep(key, key.upper())
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (None, "B", "C")

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


def _driver_table(tmp_path):
    from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table, create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'driver.sqlite'}", json_deserializer=__import__("json").loads)
    docs = Table("docs", MetaData(), Column("id", Integer, primary_key=True), Column("name", String),
                 Column("doc", JSON), Column("flag", Boolean))
    docs.create(engine)
    with engine.begin() as conn:
        conn.execute(docs.insert(), [{"id": n, "name": f"n{n}", "doc": {"n": n, "tags": ["t"]}, "flag": n % 2 == 0}
                                     for n in range(6)])
    return engine, docs


def test_a_driver_statement_reads_what_sqlalchemy_reads(tmp_path):
    """IN lists of any length (and none), odd parameter names, JSON and booleans decoded, rows read by attribute:
    the same rows as SQLAlchemy's own execution of the statement."""
    from sqlalchemy import bindparam, func

    engine, docs = _driver_table(tmp_path)
    odd = func.json_extract(docs.c.doc, '$."n"')  # a parameter name with characters SQLAlchemy escapes
    statement = (select(docs, docs.c.id.label("_key0")).where(docs.c.name.in_(bindparam("names", expanding=True)),
                                                            odd.in_([0, 1, 2, 3, 4]), docs.c.id != 5)
                 .order_by(docs.c.id))
    driver = shapes.Driver(engine.dialect, statement)
    connection = engine.raw_connection()
    try:
        for names in (["n1"], ["n0", "n2", "n5"], ["n3", "n4"], []):
            with engine.connect() as conn:
                expected = conn.execute(statement, {"names": names}).all()
            cursor = connection.cursor()
            rows = driver.run(cursor, {"names": names})
            cursor.close()
            assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
            assert [(row.doc, row.flag, row._key0) for row in rows] == [(r.doc, r.flag, r._key0) for r in expected]
            if names == ["n3", "n4"]:
                assert isinstance(rows[0].flag, bool) and rows[0].doc == {"n": 3, "tags": ["t"]} and len(rows) == 2
        assert rows == []
    finally:
        connection.close()

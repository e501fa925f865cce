"""LIST statements built once per shape. A LIST's select (its page, the capped count riding on it, the count alone,
the planner's estimate) cost more to build and to key for SQLAlchemy's compiled cache than to run: a one-row
filter spent most of its gateway CPU there. Two LISTs whose conditions and order have the same structure — the same
resource, filters (fields, operators, number of values), sort and kind of page — differ only in their bound values,
so the statements built for the first are kept and run again with the values of the next.

The shape is SQLAlchemy's own cache key of the few expressions a LIST is made of (its conditions, its order, its
sources), which also lists their bound values in a fixed order: nothing here knows how the conditions were built
or what types the columns have. A statement kept here is executed like any other (bind and result processing
unchanged), with the new values passed by the names its compilation gave the first LIST's parameters."""
from sqlalchemy import Integer, bindparam

MAX_SHAPES = 500  # distinct shapes kept per process (a client can make many by combining filters)


def shape_of(*elements):
    """(the structural key of `elements`, their bound parameters in a fixed order), or None when one of them
    cannot be keyed (then nothing is kept)."""
    keys, binds = [], []
    for element in elements:
        cache_key = element._generate_cache_key()
        if cache_key is None:
            return None
        keys.append(cache_key.key)
        binds.extend(cache_key.bindparams)
    return tuple(keys), binds


class Prepared:
    """A statement and, for each of the parameters whose values a LIST brings (`binds`), the name its compilation
    gave it (None when the statement does not use it: the count of a keyset page has no cursor condition).
    `complete`: the statement has no other parameter, so no value of the LIST it was built for stays in it."""

    def __init__(self, dialect, statement, binds, holding=None):
        self.statement = statement
        names = statement.compile(dialect=dialect).bind_names
        self.names = [names.get(bind) for bind in binds]
        # every value the statement holds (those SQLAlchemy itself would take from a new statement of this shape;
        # a compiler's own constants, like SQLite's OFFSET 0, are none of them) is one the LIST brings. `holding`:
        # the statement whose values those are, when the statement itself has no cache key (an EXPLAIN of it)
        cache_key = (holding if holding is not None else statement)._generate_cache_key()
        brought = set(binds)
        self.complete = cache_key is not None and all(bind in brought for bind in cache_key.bindparams)

    def params(self, values):
        return {name: value for name, value in zip(self.names, values) if name is not None}


class Shapes:
    """The statements kept per shape, the oldest shape forgotten first past MAX_SHAPES."""

    def __init__(self):
        self._kept = {}

    def get(self, key):
        return self._kept.get(key)

    def keep(self, key, statements):
        if len(self._kept) >= MAX_SHAPES:
            self._kept.pop(next(iter(self._kept)))
        self._kept[key] = statements
        return statements


def page_bounds():
    """LIMIT and OFFSET as parameters, so one statement serves every page size and depth."""
    return bindparam("page_limit", type_=Integer), bindparam("page_offset", type_=Integer)

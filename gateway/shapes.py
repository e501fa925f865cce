"""LIST statements built once per shape. A LIST's select (its page, the capped count riding on it, the count alone,
the planner's estimate) cost more to build and to key for SQLAlchemy's compiled cache than to run: a one-row
filter spent most of its gateway CPU there. Two LISTs whose conditions and order have the same structure — the same
resource, filters (fields, operators, number of values), sort and kind of page — differ only in their bound values,
so the statements built for the first are kept and run again with the values of the next.

The shape is SQLAlchemy's own cache key of the few expressions a LIST is made of (its conditions, its order, its
sources), which also lists their bound values in a fixed order: nothing here knows how the conditions were built
or what types the columns have. A statement kept here is executed like any other (bind and result processing
unchanged), with the new values passed by the names its compilation gave the first LIST's parameters."""
import functools
import operator

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

    def __init__(self, dialect, statement, binds, holding=None, schema_map=None):
        self.statement = statement
        self.driver = Driver(dialect, statement, schema_map)
        names = self.driver.bind_names
        self.names = [names.get(bind) for bind in binds]
        # every value the statement holds (those SQLAlchemy itself would take from a new statement of this shape;
        # a compiler's own constants, like SQLite's OFFSET 0, are none of them) is one the LIST brings. `holding`:
        # the statement whose values those are, when the statement itself has no cache key (an EXPLAIN of it)
        cache_key = (holding if holding is not None else statement)._generate_cache_key()
        brought = set(binds)
        self.complete = cache_key is not None and all(bind in brought for bind in cache_key.bindparams)

    def params(self, values):
        return {name: value for name, value in zip(self.names, values) if name is not None}

    def run(self, cursor, values):
        """The statement's rows with a LIST's `values` (in the order of `binds`), on a driver cursor (Driver)."""
        return self.driver.run(cursor, self.params(values))


class Shapes:
    """What is kept per key (a shape's statements, a list's plan: ReadStore), the oldest forgotten first past
    MAX_SHAPES."""

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


class Driver:
    """A statement compiled once for the engine's dialect and run on the driver's own cursor (`run`), without
    SQLAlchemy's execution layer: its per-execution context, parameter and result objects cost more CPU than a LIST's
    statement took on the database (a micro-test: 1.4 → 0.65 ms a LIST). What that layer did and a read needs is
    done here, from the compilation: the schema translation, each parameter's bind processing (IN lists expanded to
    one placeholder per value, rendered once per number of values), each result column's result processing (JSON,
    booleans on SQLite, uuids), rows whose columns read as attributes. Values the statement holds itself (those of
    a statement not kept per shape) are its defaults; `run` takes the others by their compiled names."""

    _MARKS = {"qmark": lambda name, i: "?", "pyformat": lambda name, i: f"%({name}__{i})s"}

    def __init__(self, dialect, statement, schema_map=None):
        compiled = statement.compile(dialect=dialect, schema_translate_map=schema_map)
        if dialect.paramstyle not in self._MARKS or compiled.literal_execute_params or compiled.post_compile_params \
                - {bind for bind in compiled.binds.values() if bind.expanding}:
            raise NotImplementedError(f"{dialect.paramstyle} or a literal-execute parameter")  # none of ours
        sql = compiled.string
        if schema_map:
            sql = compiled.preparer._render_schema_translates(sql, schema_map)
        self._dialect, self._sql, self._texts = dialect, sql, {}
        self.bind_names = compiled.bind_names
        self._positional = compiled.positional
        self._expanding, self._processors, self.defaults = set(), {}, {}
        self._escape = dict(compiled.escaped_bind_names)  # names with odd characters: as the SQL text spells them
        self._order = [self._escape.get(name, name) for name in compiled.positiontup or ()]
        for bind, name in compiled.bind_names.items():
            name = self._escape.get(name, name)
            if bind.expanding:
                self._expanding.add(name)
            processor = bind.type._cached_bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor
            if not bind.required and not callable(bind.value):
                self.defaults[name] = bind.effective_value
        self._columns = [(column[0], column[3]) for column in compiled._result_columns]
        self._results = None  # (row class, result processors), from the first execution's cursor description

    def run(self, cursor, values):
        """All rows of the statement with `values` ({compiled name: value}, over its defaults)."""
        if self._escape:
            values = {self._escape.get(name, name): value for name, value in values.items()}
        values = dict(self.defaults, **values) if self.defaults else values
        lengths = tuple((name, len(values[name])) for name in sorted(self._expanding))
        text = self._texts.get(lengths)
        if text is None:
            text = self._text(lengths)
        process = self._processors.get
        if self._positional:
            params = []
            for name in self._order:
                processor = process(name)
                items = values[name] if name in self._expanding else (values[name],)
                params.extend(items if processor is None else [processor(item) for item in items])
            params = tuple(params)
        else:
            params = {}
            for name, value in values.items():
                processor = process(name)
                if name in self._expanding:
                    for i, item in enumerate(value):
                        params[f"{name}__{i}"] = item if processor is None else processor(item)
                else:
                    params[name] = value if processor is None else processor(value)
        cursor.execute(text, params)
        fetched = cursor.fetchall()
        if self._results is None:
            self._results = self._result_plan(cursor.description)
        row, processors = self._results
        if not processors:
            return [row(found) for found in fetched]
        return [row([value if processor is None else processor(value) for processor, value in zip(processors, found)])
                for found in fetched]

    def _text(self, lengths):
        sql, mark = self._sql, self._MARKS[self._dialect.paramstyle]
        for name, length in lengths:  # an empty list matches nothing, as SQLAlchemy's empty IN
            marks = ", ".join(mark(name, i) for i in range(length)) or "NULL"
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", marks)
        if len(self._texts) < 64:  # a few counts of values per list; past them, rendered each time
            self._texts[lengths] = sql
        return sql

    def _result_plan(self, description):
        columns = self._columns or [(entry[0], None) for entry in description]
        processors = [None if kind is None else kind._cached_result_processor(self._dialect, entry[1])
                      for (_, kind), entry in zip(columns, description)]
        return row_class(tuple(name for name, _ in columns)), (processors if any(processors) else None)


@functools.lru_cache(maxsize=256)
def row_class(names):
    """A tuple whose items also read as attributes named `names` (as SQLAlchemy's rows do)."""
    return type("Row", (tuple,), {"__slots__": (), "_fields": names,
                                  **{name: property(operator.itemgetter(i)) for i, name in enumerate(names)}})

"""List keys: what every LIST filters and sorts on, typed and indexed, one narrow table per resource.

Why not expression indexes on `documents`: every field of every resource is filterable and sortable (2,400 fields
of 233 listable resources). On PostgreSQL the planner opens and locks *every* index of a table for each query, so
a thousand indexes on `documents` cost about 5 ms of planning and 1,000 lock-table entries per query (measured on
PostgreSQL 15), and a handful of concurrent queries would exhaust the shared lock table. So each resource gets
its own table of list keys, generated from the catalogue:

    lk_<resource>(path PRIMARY KEY, bureau, id, f_<field> for each scalar field, f_created)

with an index on (bureau, f_<field>, id) for each field a LIST uses: a filter, a sort and a keyset page of one
resource plan against that resource's few indexes only. A field's index is built on its first use (see "which fields
have an index" below; STRATUM_LIST_INDEXES=all builds every field's from the start, as the releases before did). A
row exists for each live (not deleted) document of the resource.

The entries are compact, since an order has ~48 of them (in the release before, bureau and path text made the list
keys 70 % of the read side): `bureau` is a small integer naming the bureau's path in `tenants` (NULL: no bureau,
platform reference data), and the tie-breaker `id` is the document's uuid (PostgreSQL `uuid`, 16 bytes; SQLite its
32 hex digits, as SQLite 3.40 has no unhex()). Ordering by `id` is ordering by `path`: every document of a listable
resource is at `/<resource>/<uuid>/` (shared.uris.resource_path of an aggregate's id or a uuid5, so canonical
lowercase), and in one resource such paths differ only in the uuid's hex digits (byte order, the C collation; the
hyphens stand at the same places, so other collations agree). A path of any other shape (none is known) still gets a
unique id (PostgreSQL: the path's md5; SQLite: the path itself), so pages stay complete. `path` is in the table, not
in the indexes: the page joins its documents on it.

The rows are kept by triggers on `documents`, generated here as well, so every write to `documents` keeps them in
the same transaction, whoever writes (the projector, the derived views of
gateway.order_views, a rebuild), and nothing in the apply path knows about them. PostgreSQL: one row trigger,
`list_keys_sync`, finds the resource by a binary search over the names and calls its `lk_<resource>_put` (240
triggers each with its WHEN cost about 1 µs apiece per row); an update that changes nothing is skipped. SQLite:
one trigger per resource and operation, with its WHEN. Measured on PostgreSQL: with every field's index an order's
document write cost ~0.3 ms more (its 48 indexes); with the indexes of the fields used, that share of it. Values
are typed as the LIST query types them (`gateway.readstore`): integer → BIGINT, number → DOUBLE PRECISION, boolean →
BOOLEAN, anything else → the text of the JSON value (ISO datetimes sort as text). On PostgreSQL a value that is not
of its field's type is stored as NULL (never an error that would stop the projector); on SQLite the columns keep
json_extract's value as it is, exactly what the query compared before. Arrays and objects have no column: an array
filter (any of) still reads the document.

`create(conn)` runs at the migrate step (gateway.readstore.ReadStore.create_tables): it creates what is missing,
and recreates (and refills from `documents`) the tables of resources whose generated definition changed (a new
catalogue field), recorded per resource in `list_keys_schema`, with the always-indexed fields' indexes and the
recorded ones (`list_key_indexes`); it also builds a recorded index a build on first use left missing or invalid.
Plain CREATE INDEX, not CONCURRENTLY (which cannot run in a transaction): the refill of a big resource locks its list
keys while the migrate step runs.
"""
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table, Text, select, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.types import TypeDecorator

from gateway.tables import READ_SCHEMA, dialect_insert
from shared import catalogue
from shared.access import OWNED_BY_USER

metadata = MetaData()
SCALAR = {"integer": "integer", "number": "number", "boolean": "boolean"}
UNINDEXED = {"array", "object"}  # no column: an array filter reads the document; objects are not comparable

schema_versions = Table(
    "list_keys_schema", metadata,
    Column("resource", String(64), primary_key=True),
    Column("digest", String(64), nullable=False),
)

# The bureaus the list keys name, numbered: a 4-byte key in every index entry instead of the bureau's path.
tenants = Table(
    "tenants", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bureau", String(200), nullable=False, unique=True),
)

_TYPES = {"integer": BigInteger, "number": Float, "boolean": Boolean}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX32 = re.compile(r"[0-9a-f]{32}")


class DocumentId(TypeDecorator):
    """The list keys' tie-breaker, a document's uuid as canonical text in Python (what a keyset cursor carries):
    PostgreSQL `uuid`, SQLite the 32 hex digits. A value of another shape passes unchanged (SQLite's ids of
    non-uuid paths, and a hand-made cursor, which PostgreSQL's cursor check refuses first)."""
    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(UUID(as_uuid=False) if dialect.name == "postgresql" else Text())

    def process_bind_param(self, value, dialect):
        if dialect.name != "postgresql" and isinstance(value, str) and _UUID.fullmatch(value):
            return value.replace("-", "")
        return value

    def process_result_value(self, value, dialect):
        if dialect.name == "postgresql" or not isinstance(value, str) or not _HEX32.fullmatch(value):
            return value if value is None else str(value)
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def indexed_fields(spec):
    """{field: kind} of the fields of `spec` that have a list key (kind: integer, number, boolean or text)."""
    fields = {name: SCALAR.get(f.type, "text") for name, f in spec.fields.items() if f.type not in UNINDEXED}
    fields.setdefault("created", "text")  # the default order; every document has it (projection, views)
    return fields


def listable():
    return [spec for spec in catalogue.catalogue().values()
            if "LIST" in spec.verbs and not spec.special and spec.name != "event"]


# -- which fields have an index ----------------------------------------------------------------------------------
# One index per field cost ~150 MB of a 268 MB read side at 10,000 orders, ~0.3 ms of each order document's write and
# a large share of a rebuild's end, and a bureau filters and sorts on a handful of fields per resource. So only what
# every LIST of a resource uses is indexed from the start (always_indexed); any other field's index is built the first
# time a LIST filters or sorts on it (gateway.list_index_builds), recorded in `list_key_indexes` so that the migrate
# step and a rebuild's end build it again. Until it exists the LIST is still answered, from a scan of the bureau's
# rows of the list keys (on the `created` index, the bureau its first column).

# The fields indexed whether used or not: `created` (the default sort, and the tie-break of every sort), the fields
# the catalogue filters every LIST of the resource on (its required and default filters, e.g. a line item's type),
# and the field naming a resource's owner, which every caller's LIST of it filters on (shared.access.OWNED_BY_USER).
LIST_INDEXES = "STRATUM_LIST_INDEXES"  # "all": every field's index from the start (the releases before this one)

used_indexes = Table(
    "list_key_indexes", metadata,
    Column("resource", String(64), primary_key=True),
    Column("field", String(200), primary_key=True),
    Column("state", String(16), nullable=False),  # "requested", then "built" once its index is valid
)


def every_field_indexed():
    return os.environ.get(LIST_INDEXES, "").strip().lower() == "all"


def always_indexed(spec):
    """The fields of `spec` indexed whether a LIST used them or not (see above)."""
    fields = indexed_fields(spec)
    wanted = {"created", *spec.required_filters, *spec.default_filters}
    if spec.name in OWNED_BY_USER:
        wanted.add(OWNED_BY_USER[spec.name])
    return {field for field in wanted if field in fields}


def built_fields(spec, used=()):
    """The fields of `spec` whose index is built: the always-indexed ones and those of `used` that have a list key
    (every field's under STRATUM_LIST_INDEXES=all)."""
    fields = indexed_fields(spec)
    if every_field_indexed():
        return set(fields)
    return always_indexed(spec) | {field for field in used if field in fields}


def lazily_indexed(resource, fields):
    """Those of `fields` whose index a LIST of `resource` asks for on first use (none of a resource without list
    keys, of an always-indexed field, or under STRATUM_LIST_INDEXES=all)."""
    spec = catalogue.catalogue().get(resource)
    if every_field_indexed() or spec is None or keys_table(resource) is None:
        return []
    have, always = indexed_fields(spec), always_indexed(spec)
    return [field for field in dict.fromkeys(fields) if field in have and field not in always]


def recorded(conn):
    """{resource: {field}} of the fields whose index some LIST asked for (the table is created if missing)."""
    used_indexes.create(conn, checkfirst=True)
    used = {}
    for resource, field in conn.execute(select(used_indexes.c.resource, used_indexes.c.field)):
        used.setdefault(resource, set()).add(field)
    return used


def index_name(resource, field):
    return _index_name(_table_name(resource), field)


def index_statement(resource, field, dialect, concurrently=False):
    """CREATE INDEX of `field`'s list key: (bureau, value, id), a filter, a sort and a keyset page within a bureau.
    `concurrently`: PostgreSQL's build that lets writes go on (outside a transaction)."""
    table = _table_name(resource)
    target = f"{_ident(READ_SCHEMA)}.{_ident(table)}" if dialect == "postgresql" else _ident(table)
    how = " CONCURRENTLY" if concurrently else ""
    return (f"CREATE INDEX{how} IF NOT EXISTS {_ident(_index_name(table, field))} ON {target} "
            f"(bureau, {_ident(column_name(field))}, id)")


def analyze_new_sqlite_index(conn, resource, field):
    """SQLite: the statistics of a newly built index, where the database has any (an operator's ANALYZE). The
    planner takes an index without them for a selective one: built after an ANALYZE, a new (bureau, status, id)
    index won the bureau's first page over the analyzed `created` index, then sorted the whole bureau (measured at
    10,000 orders: 69 ms against 1.3 ms). Without any statistics every index is judged alike, as before."""
    if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is not None:
        conn.exec_driver_sql(f"ANALYZE {_ident(index_name(resource, field))}")


def build_lock_key(resource, field):
    """The advisory lock key of one list-key index's builders (PostgreSQL): a signed 64-bit number from its name."""
    return int.from_bytes(hashlib.sha1(f"list index {resource}.{field}".encode()).digest()[:8], "big", signed=True)


def invalid_list_indexes(conn):
    """{index name} of the list keys' indexes PostgreSQL holds as invalid: a CREATE INDEX CONCURRENTLY that failed
    or was cut short (a crash) leaves its index so, never used by the planner and never finished. Also those being
    built right now look so: check a builder's advisory lock (build_lock_key) before dropping one."""
    return _list_indexes_present(conn)[1]


def _table_name(resource):
    clean = re.sub(r"[^a-z0-9]+", "_", resource.lower()).strip("_")
    name = f"lk_{clean}"
    if len(name) > 50:
        name = name[:40] + "_" + hashlib.sha1(resource.encode()).hexdigest()[:8]
    return name


@lru_cache(maxsize=None)
def keys_table(resource):
    """The list-keys Table of `resource` (None for a resource that has none)."""
    spec = catalogue.catalogue().get(resource)
    if spec is None or spec not in listable():
        return None
    columns = [Column("path", String(200), primary_key=True), Column("bureau", Integer), Column("id", DocumentId())]
    for name, kind in indexed_fields(spec).items():
        columns.append(Column(column_name(name), _TYPES.get(kind, Text)))
    return Table(_table_name(resource), metadata, *columns)


def column_name(field):
    return "f_" + field


def _index_name(table, field):
    digest = hashlib.sha1(f"{table}.{field}".encode()).hexdigest()[:10]
    return f"ix_{table[:30]}_{digest}"


# -- DDL ----------------------------------------------------------------------------------------------------------

# A B-tree entry on PostgreSQL holds at most ~2,700 bytes: a longer text value (an order's pasted notes) made the
# list-key insert fail, and with it the whole projector batch, for ever. Text keys keep their first characters; a
# filter on a longer value rechecks the document (gateway.readstore._column_filter). SQLite has no such limit.
TEXT_KEY_LENGTH = 200


def _pg_id(resource, path):
    """The document's uuid from its path `/<resource>/<uuid>/` (docstring above), as `uuid`."""
    prefix = f"/{resource}/"
    return (f"CASE WHEN left({path}, {len(prefix)}) = {_quote(prefix)} AND substr({path}, {len(prefix) + 1}) ~ "
            f"'^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}/$' "
            f"THEN substr({path}, {len(prefix) + 1}, 36)::uuid ELSE md5({path})::uuid END")


def _sqlite_id(resource, path):
    """The document's uuid from its path, as its 32 hex digits (text: SQLite 3.40 has no unhex())."""
    prefix = f"/{resource}/"
    digits = "-".join("[0-9a-f]" * n for n in (8, 4, 4, 4, 12))
    return (f"CASE WHEN substr({path}, 1, {len(prefix)}) = {_quote(prefix)} AND substr({path}, {len(prefix) + 1}) "
            f"GLOB '{digits}/' THEN replace(substr({path}, {len(prefix) + 1}, 36), '-', '') ELSE {path} END")


def _pg_value(field, kind):
    raw = f"NEW.doc->>{_quote(field)}"
    typed = f"jsonb_typeof(NEW.doc->{_quote(field)})"
    if kind == "integer":
        return f"CASE WHEN {raw} ~ '^-?[0-9]{{1,18}}$' THEN ({raw})::bigint END"
    if kind == "number":
        return f"CASE WHEN {typed} = 'number' THEN ({raw})::double precision END"
    if kind == "boolean":
        return f"CASE WHEN {typed} = 'boolean' THEN ({raw})::boolean END"
    return f"left({raw}, {TEXT_KEY_LENGTH})"


def _sqlite_value(field):
    return f"json_extract(NEW.doc, {_quote('$.' + _json_key(field))})"


def _json_key(field):
    return '"' + field.replace('"', '\\"') + '"'


def _quote(value):
    return "'" + value.replace("'", "''") + "'"


def _ident(name):
    return '"' + name.replace('"', '""') + '"'


def statements(resource, dialect, used=()):
    """The DDL of one resource's list keys: table, triggers (and, on PostgreSQL, the trigger function), the fill from
    `documents`, then the indexes of the always-indexed fields and of `used` (built once over the filled rows: a
    sort, not one insertion per row)."""
    parts = _parts(resource, dialect, used)
    return parts["table"] + parts["maintain"] + [parts["fill"]] + parts["indexes"]


def _parts(resource, dialect, used=()):
    """The DDL of one resource's list keys; "indexes" builds those of built_fields(spec, used), "drop_indexes"
    drops every field's, and "every_index" (the digest's) names every field's, whatever is built."""
    spec = catalogue.catalogue()[resource]
    table = _table_name(resource)
    fields = indexed_fields(spec)
    built = built_fields(spec, used)
    pg = dialect == "postgresql"
    q = (lambda name: f"{_ident(READ_SCHEMA)}.{_ident(name)}") if pg else _ident
    types = {"integer": "BIGINT", "number": "DOUBLE PRECISION", "boolean": "BOOLEAN", "text": "TEXT"}
    # SQLite: no declared type, so no affinity converts what json_extract gives (the comparisons stay as they were)
    columns = ", ".join(f"{_ident(column_name(f))} {types[k] if pg else ''}".rstrip() for f, k in fields.items())
    parts = {"table": [f"CREATE TABLE IF NOT EXISTS {q(table)} (path VARCHAR(200) PRIMARY KEY, bureau INTEGER, "
                       f"id {'UUID NOT NULL' if pg else 'NOT NULL'}, {columns})"],
             "indexes": [index_statement(resource, field, dialect) for field in fields if field in built],
             "every_index": [index_statement(resource, field, dialect) for field in fields],
             "drop_indexes": [f"DROP INDEX IF EXISTS {q(_index_name(table, field))}" for field in fields],
             "empty": f"DELETE FROM {q(table)}"}
    names = ", ".join(_ident(column_name(f)) for f in fields)
    if pg:
        values = ", ".join(_pg_value(f, k) for f, k in fields.items())
        updates = ", ".join(f"{_ident(column_name(f))} = EXCLUDED.{_ident(column_name(f))}" for f in fields)
        current = ", ".join(f"t.{_ident(column_name(f))}" for f in fields)
        excluded = ", ".join(f"EXCLUDED.{_ident(column_name(f))}" for f in fields)
        # put(path, bureau, doc, deleted): the row of one document (called by the dispatcher, list_keys_sync)
        parts["maintain"] = [
            f"CREATE OR REPLACE FUNCTION {q(table + '_put')}(p text, b text, doc jsonb, gone boolean) "
            f"RETURNS void LANGUAGE plpgsql AS $body$\n"
            f"BEGIN\n"
            f"  IF gone THEN DELETE FROM {q(table)} WHERE path = p; RETURN; END IF;\n"
            f"  INSERT INTO {q(table)} AS t (path, bureau, id, {names}) VALUES (p, {q('list_keys_tenant')}(b), "
            f"{_pg_id(resource, 'p')}, {values.replace('NEW.', '')})\n"
            f"  ON CONFLICT (path) DO UPDATE SET bureau = EXCLUDED.bureau, {updates}\n"
            f"  WHERE (t.bureau, {current}) IS DISTINCT FROM (EXCLUDED.bureau, {excluded});\n"
            f"END $body$"]
        parts["unmaintain"] = []  # the one dispatcher trigger is switched off instead (suspend)
        parts["fill"] = (f"INSERT INTO {q(table)} (path, bureau, id, {names}) SELECT d.path, n.id, "
                         f"{_pg_id(resource, 'd.path')}, {values.replace('NEW.', 'd.')} FROM {q('documents')} d "
                         f"LEFT JOIN {q('tenants')} n ON n.bureau = d.bureau "
                         f"WHERE d.resource = {_quote(resource)} AND NOT d.deleted ON CONFLICT (path) DO NOTHING")
        return parts
    values = ", ".join(_sqlite_value(f) for f in fields)
    write = (f"DELETE FROM {q(table)} WHERE path = NEW.path; "
             # not INSERT OR IGNORE: in a trigger the outer statement's conflict policy (an upsert's) overrides it
             f"INSERT INTO tenants (bureau) SELECT NEW.bureau WHERE NEW.bureau IS NOT NULL AND NOT NEW.deleted "
             f"AND NOT EXISTS (SELECT 1 FROM tenants WHERE bureau = NEW.bureau); "
             f"INSERT INTO {q(table)} (path, bureau, id, {names}) SELECT NEW.path, "
             f"(SELECT id FROM tenants WHERE bureau = NEW.bureau), {_sqlite_id(resource, 'NEW.path')}, {values} "
             f"WHERE NOT NEW.deleted;")
    maintain, unmaintain = [], []
    for operation in ("INSERT", "UPDATE"):
        trigger = _ident(f"{table}_{operation.lower()}")
        unmaintain.append(f"DROP TRIGGER IF EXISTS {trigger}")
        maintain += [unmaintain[-1], f"CREATE TRIGGER {trigger} AFTER {operation} ON documents "
                                     f"WHEN NEW.resource = {_quote(resource)} BEGIN {write} END"]
    trigger = _ident(f"{table}_delete")
    unmaintain.append(f"DROP TRIGGER IF EXISTS {trigger}")
    maintain += [unmaintain[-1], f"CREATE TRIGGER {trigger} AFTER DELETE ON documents WHEN OLD.resource = "
                                 f"{_quote(resource)} BEGIN DELETE FROM {q(table)} WHERE path = OLD.path; END"]
    parts.update(maintain=maintain, unmaintain=unmaintain,
                 fill=f"INSERT OR IGNORE INTO {q(table)} (path, bureau, id, {names}) SELECT d.path, n.id, "
                      f"{_sqlite_id(resource, 'd.path')}, {values.replace('NEW.', 'd.')} FROM documents d "
                      f"LEFT JOIN tenants n ON n.bureau = d.bureau WHERE d.resource = {_quote(resource)} AND NOT d.deleted")
    return parts


def _number_tenants(dialect):
    """The bureaus of `documents` numbered in `tenants` (before a fill of list keys)."""
    if dialect != "postgresql":
        return "INSERT OR IGNORE INTO tenants (bureau) SELECT DISTINCT bureau FROM documents WHERE bureau IS NOT NULL"
    return (f"INSERT INTO {_ident(READ_SCHEMA)}.tenants (bureau) SELECT DISTINCT bureau FROM "
            f"{_ident(READ_SCHEMA)}.documents WHERE bureau IS NOT NULL ON CONFLICT (bureau) DO NOTHING")


def tenant_numbers(conn, bureaus):
    """{bureau path: its number in `tenants`} for `bureaus` (None left out), numbering those not seen before, in
    `conn`'s transaction (the audit log's writes; a concurrent writer's new number is waited for, then read)."""
    wanted = sorted({bureau for bureau in bureaus if bureau is not None})
    if not wanted:
        return {}
    found = dict(conn.execute(select(tenants.c.bureau, tenants.c.id).where(tenants.c.bureau.in_(wanted))).all())
    missing = [bureau for bureau in wanted if bureau not in found]  # usually none: one statement a batch
    if missing:
        conn.execute(dialect_insert(conn)(tenants).on_conflict_do_nothing(index_elements=["bureau"]),
                     [{"bureau": b} for b in missing])
        found.update(conn.execute(select(tenants.c.bureau, tenants.c.id).where(tenants.c.bureau.in_(missing))).all())
    return found


def _pg_tenant_function():
    """list_keys_tenant(bureau): its number, a new one for a bureau not seen before (PostgreSQL's triggers; SQLite's
    insert it themselves)."""
    tenants_ = f"{_ident(READ_SCHEMA)}.tenants"
    return (
        f"CREATE OR REPLACE FUNCTION {_ident(READ_SCHEMA)}.list_keys_tenant(b text) RETURNS integer "
        f"LANGUAGE plpgsql AS $body$\n"
        f"DECLARE t integer;\n"
        f"BEGIN\n"
        f"  IF b IS NULL THEN RETURN NULL; END IF;\n"
        f"  SELECT id INTO t FROM {tenants_} WHERE bureau = b;\n"
        f"  IF t IS NULL THEN\n"
        f"    INSERT INTO {tenants_} (bureau) VALUES (b) ON CONFLICT (bureau) DO NOTHING RETURNING id INTO t;\n"
        f"    IF t IS NULL THEN SELECT id INTO t FROM {tenants_} WHERE bureau = b; END IF;\n"
        f"  END IF;\n"
        f"  RETURN t;\n"
        f"END $body$")


def _drop(resource, dialect, conn):
    table = _table_name(resource)
    if dialect == "postgresql":
        conn.execute(text(f"DROP TABLE IF EXISTS {_ident(READ_SCHEMA)}.{_ident(table)}"))
    else:
        conn.execute(text(f"DROP TABLE IF EXISTS {_ident(table)}"))


def digest(resource, dialect):
    """The resource's generated definition. Every field's index counts, built or not (so an index built on first use
    changes nothing here, and the digests of the releases that built them all still match)."""
    parts = _parts(resource, dialect)  # in the order of the releases before statements() built indexes last
    return hashlib.sha256("\n".join(parts["table"] + parts["every_index"] + parts["maintain"] + [parts["fill"]])
                          .encode()).hexdigest()


def fill_statement(resource, dialect):
    """INSERT … SELECT of `resource`'s list keys from its live documents."""
    return _parts(resource, dialect)["fill"]


def _dispatch(names, depth=1):
    """A binary search over the sorted resource names: a handful of comparisons per row, not one per resource."""
    pad = "  " * depth
    if len(names) == 1:
        name = names[0]
        put = f"{_ident(READ_SCHEMA)}.{_ident(_table_name(name) + '_put')}"
        return (f"{pad}IF r = {_quote(name)} THEN\n"
                f"{pad}  IF TG_OP = 'DELETE' THEN PERFORM {put}(OLD.path, NULL, NULL, true);\n"
                f"{pad}  ELSE PERFORM {put}(NEW.path, NEW.bureau, NEW.doc, NEW.deleted); END IF;\n"
                f"{pad}END IF;\n")
    middle = len(names) // 2
    return (f"{pad}IF r < {_quote(names[middle])} THEN\n{_dispatch(names[:middle], depth + 1)}"
            f"{pad}ELSE\n{_dispatch(names[middle:], depth + 1)}{pad}END IF;\n")


def _pg_dispatcher(resources):
    """One row trigger on documents for every resource (per-resource triggers with WHEN cost ~1 µs each per row)."""
    function = f"{_ident(READ_SCHEMA)}.list_keys_sync"
    return [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $body$\n"
        f"DECLARE r text;\n"
        f"BEGIN\n"
        f"  IF TG_OP = 'UPDATE' AND NEW.path = OLD.path AND NEW.resource = OLD.resource AND NEW.doc = OLD.doc\n"
        f"     AND NEW.deleted = OLD.deleted AND NEW.bureau IS NOT DISTINCT FROM OLD.bureau THEN RETURN NULL; END IF;\n"
        f"  IF TG_OP = 'UPDATE' AND (NEW.resource <> OLD.resource OR NEW.path <> OLD.path) THEN\n"
        f"    RAISE EXCEPTION 'list keys: a document changed its path or resource';\n"
        f"  END IF;\n"
        f"  r := CASE WHEN TG_OP = 'DELETE' THEN OLD.resource ELSE NEW.resource END;\n"
        f"{_dispatch(sorted(resources))}"
        f"  RETURN NULL;\n"
        f"END $body$",
        f"DROP TRIGGER IF EXISTS list_keys_sync ON {_ident(READ_SCHEMA)}.documents",
        f"CREATE TRIGGER list_keys_sync AFTER INSERT OR UPDATE OR DELETE ON {_ident(READ_SCHEMA)}.documents "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
    ]


# The audit log's filters and sorts (gateway.readstore._AUDIT_COLUMNS) within a bureau, ties in feed order. A filter
# on `key` reads the changes of the rows the other conditions leave (the key is an element of `changes`, by ordinal).
# `tenant` is the bureau's number (gateway.tables.audit_log); the indexes of releases that keyed on its path are
# dropped when the migrate step converts the table (gateway.readstore._convert_audit_bureaus).
AUDIT_INDEXES = (
    ("ix_audit_log_tenant_created", ("tenant", "created", "id")),
    ("ix_audit_log_tenant_user", ("tenant", "user", "id")),
    ("ix_audit_log_tenant_reference", ("tenant", "reference", "id")),
    ("ix_audit_log_created", ("created", "id")),
)
# What else a bulk load drops and its end builds again over the loaded rows (gateway.readstore.ReadStore.
# begin_bulk_load): indexes of gateway.tables kept row by row otherwise (table, name, columns). On PostgreSQL also
# audit_keys' primary key: a random uuid per row, each insert a write in a random leaf of a B-tree larger than the
# server's cache. GET /event/<uuid>/ scans the table meanwhile, as LISTs are incomplete until the load ends.
BULK_INDEXES = (
    ("audit_keys", "ix_audit_keys_log", ("log_id",)),
    ("documents", "ix_documents_resource_bureau", ("resource", "bureau")),
)
AUDIT_KEYS_PRIMARY_KEY = "audit_keys_pkey"  # PostgreSQL's name for it (SQLAlchemy names none)
LEGACY_AUDIT_INDEXES = ("ix_audit_log_bureau", "ix_audit_log_bureau_created", "ix_audit_log_bureau_user",
                        "ix_audit_log_bureau_reference")


def create(conn, finish_load=True):
    """Create (or bring up to date) every resource's list keys, and the audit log's extra indexes, in `conn`'s
    transaction. PostgreSQL: under an advisory lock, so two migrate steps at once take turns. A bulk load left
    unfinished is finished too, unless `finish_load` is false (then finish_bulk_load does it after the commit)."""
    dialect = conn.dialect.name
    pg = dialect == "postgresql"
    if pg:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
    schema_versions.create(conn, checkfirst=True)
    tenants.create(conn, checkfirst=True)
    known = dict(conn.execute(schema_versions.select()).all())
    interrupted = known.pop(SUSPENDED, None) is not None  # a bulk load that did not finish: resumed below
    if pg:
        conn.exec_driver_sql(_pg_tenant_function())
    used = recorded(conn)
    wanted_digests = {spec.name: digest(spec.name, dialect) for spec in listable()}
    outdated = [spec for spec in listable() if known.get(spec.name) != wanted_digests[spec.name]]
    if outdated:
        conn.exec_driver_sql(_number_tenants(dialect))
    for spec in outdated:
        wanted = wanted_digests[spec.name]
        if spec.name in known:
            _drop(spec.name, dialect, conn)  # its fields changed: rebuilt and refilled below
        for statement in statements(spec.name, dialect, used.get(spec.name, ())):
            conn.exec_driver_sql(statement)
        if spec.name in known:
            conn.execute(schema_versions.update().where(schema_versions.c.resource == spec.name)
                         .values(digest=wanted))
        else:
            conn.execute(schema_versions.insert().values(resource=spec.name, digest=wanted))
    if pg:
        for statement in _pg_dispatcher([spec.name for spec in listable()]):
            conn.exec_driver_sql(statement)
    _build_used(conn, used, skip={spec.name for spec in outdated})
    if not finish_load:
        if interrupted and pg:  # the dispatcher was made again, enabled: still suspended until finish_bulk_load
            conn.exec_driver_sql(f"ALTER TABLE {_ident(READ_SCHEMA)}.documents DISABLE TRIGGER list_keys_sync")
        return
    if interrupted:
        resume(conn)
    create_bulk_indexes(conn)


def _build_used(conn, used, skip=()):
    """Build, in `conn`'s transaction, the recorded indexes (`used`) that are missing, of the resources not in `skip`
    (just made with theirs), and mark those there built: a build on first use that a crash cut short, or that did
    not start. PostgreSQL: an index that a crashed CREATE INDEX CONCURRENTLY left invalid is dropped and built again,
    unless a builder holds its lock (then it is being built right now, and its builder finishes it)."""
    dialect = conn.dialect.name
    pg = dialect == "postgresql"
    present, invalid = _list_indexes_present(conn) if pg else (set(), set())
    ready = []  # (resource, field) whose index is there now
    for resource, fields in sorted(used.items()):
        if keys_table(resource) is None or resource in skip:
            continue  # no longer a listable resource, or just made with its indexes
        for field in sorted(fields & set(indexed_fields(catalogue.catalogue()[resource]))):
            name = index_name(resource, field)
            if pg and name in present and name not in invalid:
                ready.append((resource, field))
                continue  # built (not even a CREATE … IF NOT EXISTS: it would wait for a build on the same table)
            if pg and not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                       {"key": build_lock_key(resource, field)}).scalar():
                continue  # a gateway builds it right now (waiting here, each build would wait for the other)
            if name in invalid:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {_ident(READ_SCHEMA)}.{_ident(name)}")
            there = not pg and conn.exec_driver_sql(f"SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = "
                                                    f"{_quote(name)}").first() is not None
            if not there:
                conn.exec_driver_sql(index_statement(resource, field, dialect))
                if not pg:
                    analyze_new_sqlite_index(conn, resource, field)
            ready.append((resource, field))
    for resource, field in ready:
        conn.execute(used_indexes.update().where(used_indexes.c.resource == resource, used_indexes.c.field == field,
                                                 used_indexes.c.state != "built").values(state="built"))


def _list_indexes_present(conn):
    """PostgreSQL: ({index name} of the read side's schema, {those of them invalid})."""
    rows = conn.execute(text(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = :schema"), {"schema": READ_SCHEMA}).all()
    return {name for name, _ in rows}, {name for name, valid in rows if not valid}


def _bulk_indexes():
    """(table, name, columns) of every index a bulk load drops: the audit log's list indexes, then BULK_INDEXES."""
    return [("audit_log", name, columns) for name, columns in AUDIT_INDEXES] + list(BULK_INDEXES)


def drop_bulk_indexes(conn):
    """Drop the audit log's list indexes, BULK_INDEXES and (PostgreSQL) audit_keys' primary key, in `conn`'s
    transaction, for a bulk load; `create` (the migrate step, or the load's end) builds them again."""
    pg = conn.dialect.name == "postgresql"
    schema = f"{_ident(READ_SCHEMA)}." if pg else ""
    for _, name, _ in _bulk_indexes():
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {schema}{name}")
    if pg:
        conn.exec_driver_sql(f"ALTER TABLE {schema}audit_keys DROP CONSTRAINT IF EXISTS {AUDIT_KEYS_PRIMARY_KEY}")
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {schema}{AUDIT_KEYS_PRIMARY_KEY}")  # built, not yet attached


def create_bulk_indexes(conn):
    """Build what drop_bulk_indexes dropped, where it is missing."""
    for _, statement in _bulk_index_statements(conn.dialect.name):
        conn.exec_driver_sql(statement)
    if conn.dialect.name == "postgresql":
        _attach_primary_key(conn)


def _bulk_index_statements(dialect):
    """(table, CREATE INDEX IF NOT EXISTS) of each index drop_bulk_indexes drops; on PostgreSQL audit_keys' primary
    key as a unique index (_attach_primary_key makes it the key): a plain index build, which the others' builds on
    the same table do not wait for, as they would for ALTER TABLE's lock."""
    schema = f"{_ident(READ_SCHEMA)}." if dialect == "postgresql" else ""
    built = [(table, f"CREATE INDEX IF NOT EXISTS {name} ON {schema}{table} ({', '.join(map(_ident, columns))})")
             for table, name, columns in _bulk_indexes()]
    if dialect == "postgresql":
        built.append(("audit_keys",
                      f"CREATE UNIQUE INDEX IF NOT EXISTS {AUDIT_KEYS_PRIMARY_KEY} ON {schema}audit_keys (uuid)"))
    return built


def _attach_primary_key(conn):
    """audit_keys' primary key from its unique index (PostgreSQL), where the table has none."""
    schema = f"{_ident(READ_SCHEMA)}."
    if conn.exec_driver_sql(f"SELECT NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = "
                            f"'{schema}audit_keys'::regclass AND contype = 'p')").scalar():
        conn.exec_driver_sql(f"ALTER TABLE {schema}audit_keys ADD CONSTRAINT {AUDIT_KEYS_PRIMARY_KEY} "
                             f"PRIMARY KEY USING INDEX {AUDIT_KEYS_PRIMARY_KEY}")


_DDL_LOCK = 0x57A7_0002  # the read side's DDL lock key ("STratum" 2)
SUSPENDED = "!suspended"  # the list_keys_schema row present while a bulk load runs without the triggers


# -- bulk loads ---------------------------------------------------------------------------------------------------
# A rebuild from zero writes every document once or more; a trigger per write that inserts into a resource's dozens
# of indexes costs more than the rest of the rebuild (measured at 70,000 orders on PostgreSQL: 4 ms an order
# document with triggers, 0.2 ms without, the indexes far larger than the server's cache). So a bulk load empties
# the list keys and switches their upkeep off; its end fills each resource once from `documents` and builds its
# indexes over the filled rows. The row SUSPENDED records the state in the database, so a load that crashed half-way
# is finished by the next migrate step (`create`).

def suspend(conn):
    """Empty every resource's list keys and stop keeping them, in `conn`'s transaction, until `resume`."""
    pg = conn.dialect.name == "postgresql"
    if pg:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
        conn.exec_driver_sql(f"ALTER TABLE {_ident(READ_SCHEMA)}.documents DISABLE TRIGGER list_keys_sync")
    if not suspended(conn):
        conn.execute(schema_versions.insert().values(resource=SUSPENDED, digest=""))
    for spec in listable():
        parts = _parts(spec.name, conn.dialect.name)
        for statement in parts["unmaintain"] + [parts["empty"]]:
            conn.exec_driver_sql(statement)


def suspended(conn):
    return conn.execute(schema_versions.select().where(schema_versions.c.resource == SUSPENDED)).first() is not None


def resume(conn):
    """Keep the list keys again and fill them from `documents`, in `conn`'s transaction: upkeep first (on
    PostgreSQL that locks `documents` against writers until the commit), so no write falls between fill and
    upkeep. A resource with documents gets its indexes dropped, its rows filled, its indexes built."""
    dialect = conn.dialect.name
    present = _keep_list_keys(conn)
    used = recorded(conn)
    conn.exec_driver_sql(_number_tenants(dialect))
    for spec in listable():
        upkeep = [] if dialect == "postgresql" else _parts(spec.name, dialect)["maintain"]  # PostgreSQL kept its own
        for statement in upkeep + _refill(spec.name, dialect, spec.name in present, used.get(spec.name, ())):
            conn.exec_driver_sql(statement)
    conn.execute(schema_versions.delete().where(schema_versions.c.resource == SUSPENDED))


def _keep_list_keys(conn):
    """Upkeep on again (PostgreSQL: the dispatcher enabled, which locks `documents` against writers until the
    commit); returns the resources that have live documents."""
    pg = conn.dialect.name == "postgresql"
    if pg:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
        conn.exec_driver_sql(f"ALTER TABLE {_ident(READ_SCHEMA)}.documents ENABLE TRIGGER list_keys_sync")
    documents = f"{_ident(READ_SCHEMA)}.documents" if pg else "documents"
    return {row[0] for row in conn.exec_driver_sql(f"SELECT DISTINCT resource FROM {documents} WHERE NOT deleted")}


def _refill(resource, dialect, present, used=()):
    """One resource's list keys emptied and, if it has live documents, its indexes dropped (every field's: what an
    earlier release built too), its rows filled from `documents` and the indexes of the always-indexed fields and
    of `used` built over them."""
    parts = _parts(resource, dialect, used)
    return [parts["empty"]] + (parts["drop_indexes"] + [parts["fill"]] + parts["indexes"] if present else [])


# -- the end of a bulk load on PostgreSQL, on several connections ---------------------------------------------------
# The end of a load is mostly index builds (~250 at 10,000 orders: a sort and a write each) and the list keys' fills,
# each a statement on one table, one server process busy at a time. Run on several connections at once, the server's
# other cores work too. One transaction holds `documents` against writers from the upkeep's start to the end, as
# `resume` does in its one transaction; each resource is refilled and indexed in a transaction of its own meanwhile.
# Those commit before the upkeep does: a crash in between leaves the load suspended, and the next end or migrate
# step refills every resource again.

BULK_LOAD_CONNECTIONS = 2  # the machine's cores: each build is one server process's work (a sort, then a write)
BULK_INDEX_MEMORY = "256MB"  # maintenance_work_mem of each build: a load's largest index sorts in memory


def finish_bulk_load(engine, take_turn, connections=BULK_LOAD_CONNECTIONS):
    """PostgreSQL: what `create` finishes of a suspended bulk load (`resume`, then create_bulk_indexes), with the
    fills and index builds spread over `connections` connections of `engine`. `take_turn(conn)` holds the read
    side's appliers off. Call it after create(conn, finish_load=False) has committed."""
    with engine.begin() as conn:
        take_turn(conn)
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{BULK_INDEX_MEMORY}'")
        if not suspended(conn):
            create_bulk_indexes(conn)
            return
        present = _keep_list_keys(conn)
        used = recorded(conn)
        connections = min(connections, _spare_connections(engine))
        bulk = _bulk_index_statements("postgresql")
        here = [statement for table, statement in bulk if table == "documents"]  # see below
        refills = [_refill(name, "postgresql", True, used.get(name, ())) for name in sorted(present)
                   if keys_table(name) is not None]
        refills.sort(key=lambda job: -sum(statement.startswith("CREATE INDEX") for statement in job))
        absent = [spec.name for spec in listable() if spec.name not in present]  # emptied only: one job for all
        # the longest first, so both connections end at about one time: the bulk indexes (the audit rows, several an
        # event), then each resource by its number of indexes (its fill reads as many fields), the emptied last
        jobs = [[statement for table, statement in bulk if table != "documents"], *refills,
                [statement for name in absent for statement in _refill(name, "postgresql", False)]]
        if connections < 1:  # a pool of one connection: all in this transaction, as resume does
            here, jobs = [_number_tenants("postgresql")] + here + [statement for job in jobs for statement in job], []
        else:  # numbered and committed before any fill reads them (documents are held: no new bureau comes)
            _in_transaction(engine, [_number_tenants("postgresql")])
        with ThreadPoolExecutor(max_workers=max(connections, 1), thread_name_prefix="bulk-load-end") as pool:
            running = [pool.submit(_in_transaction, engine, job) for job in jobs]
            for statement in here:  # documents' index: this transaction's lock on documents would hold off another's
                conn.exec_driver_sql(statement)
            for done in running:
                done.result()
        _attach_primary_key(conn)
        conn.execute(schema_versions.delete().where(schema_versions.c.resource == SUSPENDED))


def _spare_connections(engine):
    """How many more connections `engine`'s pool opens while one is held (a pool's size 0 or overflow -1: any)."""
    size, overflow = engine.pool.size(), getattr(engine.pool, "_max_overflow", 0)
    return float("inf") if size == 0 or overflow < 0 else size + overflow - 1


def _in_transaction(engine, statements_):
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{BULK_INDEX_MEMORY}'")
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")  # the upkeep's commit, after, flushes the WAL
        for statement in statements_:
            conn.exec_driver_sql(statement)


def all_tables():
    return [keys_table(spec.name) for spec in listable()]

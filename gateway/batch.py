"""One feed batch applied in memory: the documents it touches are read once (one SELECT … WHERE path IN (…) per
round), every event of the batch changes them here, and `flush` writes back what changed with bulk upserts and the
batch's audit rows with bulk inserts, in the caller's transaction.

The projections (gateway.projection, gateway.order_views, gateway.task_views) see the documents through this object
exactly as they would see the database after each event: `document`, `entry`, `pointing_at` answer from the batch's
own changes first, then from what the database held when the batch began (nothing is written before `flush`).

A batch of a load from zero (`FromZero`: the read side emptied by this process, nobody else writing since) knows that
a document exists only if an earlier batch of the same load wrote it: it reads none of the others, and writes them
with a plain INSERT instead of an upsert.
"""
import json
from collections import defaultdict, namedtuple
from dataclasses import dataclass
from itertools import chain

from sqlalchemy import Text, func, literal_column, select, type_coerce

from gateway import audit_changes, indexes
from gateway.http import encode_json
from gateway.tables import READ_SCHEMA, audit_keys, audit_log, documents

Ref = namedtuple("Ref", "path bureau")
CHUNK = 900  # values per IN (…): below SQLite's default limit of 999 bound parameters


@dataclass
class Entry:
    resource: str
    bureau: str
    doc: dict
    deleted: bool


def stored(doc):
    """A document as `documents` holds it: without its null fields, which were ~40 % of an order's JSONB. Every reader
    takes a missing field for null (doc.get, `->>`, json_extract, the list keys, rendering's catalogue fields), so
    documents written with their nulls (earlier releases) read the same. Its fields in name order (as JSONB keeps
    them anyway): a field set from null comes back from the database last, so SQLite's JSON text would otherwise
    depend on which batch the null was dropped in (a rebuild would differ from the live read side)."""
    return {key: doc[key] for key in sorted(doc) if doc[key] is not None}


def field_of(doc, field):
    """`doc[field]`, or `doc[a][b]` for `a.b` (as the database's `doc->'a'->>'b'`)."""
    for part in field.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _chunks(values):
    values = list(values)
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


class FromZero:
    """What a load from zero has written so far (gateway.readstore.ReadStore.reset starts one, the first write by
    anyone else ends it): the paths of the documents it wrote, the resources they are of, and the feed positions it
    recorded, by which it recognises that nobody else wrote in between. Paths are kept, not documents: a document an
    earlier batch wrote is read back like any other."""

    def __init__(self):
        self.paths = set()
        self.resources = set()
        self.positions = {}  # application → the position this load recorded (absent: 0)

    def unchanged_since(self, positions):
        """Whether the tracking rows `positions` ({application: position}) are this load's own: no other applier
        (the live projector, a gateway's read-your-writes) applied anything since the reset."""
        return {a: p for a, p in positions.items() if p} == {a: p for a, p in self.positions.items() if p}


@dataclass
class Prepared:
    """A batch's writes, built and encoded (`Batch.prepare`), for `Batch.write` on any connection and thread: the
    documents as the database takes them (PostgreSQL: one JSON text per statement; SQLite: tuples with the doc's JSON
    text), so nothing the next batch's projection changes reaches them; the audit rows likewise, numbered from 0 and
    naming their bureau: the write's own transaction gives the first id and the bureaus' numbers, and the database
    adds them (PostgreSQL), so the thread that writes has next to no Python to run (a pipelined load's writer would
    otherwise take the GIL from the projection)."""
    new: object  # documents this load never wrote: a plain INSERT
    documents: object  # documents written before, or possibly: an upsert
    logs: object  # audit_log rows, `n` 0, 1, … in feed order
    keys: object  # audit_keys rows, naming their log row by its `n`
    bureaus: list  # the bureaus the audit rows name
    written: dict  # path → Entry of every document the batch wrote (a pipelined load's next batch starts from them)
    stored: dict  # SQLite: path → the row as written (Batch._stored), for the same reason; PostgreSQL: {}


class Batch:
    def __init__(self, conn, from_zero=None, carried=None):
        self.conn = conn
        self.from_zero = from_zero  # a FromZero: the read side holds only what this load wrote
        # `carried`: the Prepared of the previous batch of a pipelined load (gateway.readstore), still being written
        # on another connection: its documents are taken from it, not read back (the database may not hold them yet)
        self._carried = carried.written if carried is not None else {}
        self.docs = dict(self._carried)  # path → Entry, or None: not in the database
        self.dirty = {}  # path → Entry changed by this batch (insertion order kept: written in that order)
        self._found = {}  # (resource, field, value) → paths the database held pointing at value when the batch began
        self._written = {}  # (resource, field) → value → paths this batch wrote with that value (superset)
        self._audit = []  # (log row, [key rows]) in feed order
        self.loads = 0  # statements issued to read (for the benchmark's report)
        # SQLite: path → (resource, bureau, doc's JSON text, deleted) as the database holds the row, so `flush` skips
        # a rewrite that would store the very same row (a derived view refreshed to what it was)
        self._stored = {} if conn.dialect.name == "sqlite" else None
        if self._stored is not None and carried is not None:
            self._stored.update(carried.stored)

    # -- documents ----------------------------------------------------------------------------------------------

    def load(self, paths):
        """Read the documents at `paths` that the batch does not hold yet, in one statement per CHUNK paths."""
        missing = {p for p in paths if isinstance(p, str) and p and p not in self.docs}
        if self.from_zero is not None:  # what this load never wrote is not there
            written = self.from_zero.paths
            for path in [p for p in missing if p not in written]:
                self.docs[path] = None
                missing.discard(path)
        for chunk in _chunks(sorted(missing)):
            self.loads += 1
            rows = self.conn.execute(select(documents.c.path, documents.c.resource, documents.c.bureau,
                                            documents.c.doc, documents.c.deleted, *self._raw())
                                     .where(documents.c.path.in_(chunk))).all()
            for row in rows:
                self.docs[row.path] = Entry(row.resource, row.bureau, row.doc, row.deleted)
                self._remember(row)
            for path in set(chunk) - {row.path for row in rows}:
                self.docs[path] = None

    def _raw(self):
        """SQLite: the document's JSON text as stored, beside its decoded value."""
        return [] if self._stored is None else [type_coerce(documents.c.doc, Text).label("raw")]

    def _remember(self, row):
        if self._stored is not None:
            self._stored[row.path] = (row.resource, row.bureau, row.raw, bool(row.deleted))

    def entry(self, path):
        """The Entry at `path` (deleted or not), or None."""
        if not path:
            return None
        if path not in self.docs:
            self.load([path])
        return self.docs[path]

    def document(self, path):
        """The document at `path`, deleted or not ({} when there is none): what `SELECT doc` would return."""
        entry = self.entry(path)
        return entry.doc if entry is not None else {}

    def put(self, path, entry):
        """The document at `path` is now `entry` (written back by `flush`)."""
        self.docs[path] = self.dirty[path] = entry
        for (resource, field), by_value in self._written.items():
            if resource == entry.resource:
                by_value[_key(field_of(entry.doc, field))].add(path)

    # -- references ---------------------------------------------------------------------------------------------

    def prefetch_pointing(self, resource, field, values):
        """Learn, in one statement per CHUNK values, which live `resource` documents point at each of `values`."""
        wanted = {v for v in values if isinstance(v, str) and v and (resource, field, v) not in self._found}
        if self.from_zero is not None and resource not in self.from_zero.resources:
            # no document of `resource` written by this load yet (those of a carried batch are in `pointing_at`'s
            # own index): none in the database points anywhere
            for value in wanted:
                self._found[(resource, field, value)] = []
            wanted = ()
        element = literal_column(reference_sql(self.conn.dialect.name, field))
        of_resource = literal_column(_of_resource(self.conn.dialect.name, resource))
        for chunk in _chunks(sorted(wanted)):
            self.loads += 1
            rows = self.conn.execute(
                select(documents.c.path, documents.c.resource, documents.c.bureau, documents.c.doc,
                       documents.c.deleted, element.label("target"), *self._raw())
                .where(of_resource, documents.c.deleted.is_(False), element.in_(chunk))).all()
            for value in chunk:
                self._found[(resource, field, value)] = []
            for row in rows:
                self._found[(resource, field, row.target)].append(row.path)
                if row.path not in self.docs:
                    self.docs[row.path] = Entry(row.resource, row.bureau, row.doc, row.deleted)
                    self._remember(row)

    def pointing_at(self, resource, field, value):
        """(path, bureau) of the live `resource` documents whose `field` is `value`, as of now in this batch."""
        if (resource, field, value) not in self._found:
            self.prefetch_pointing(resource, field, [value])
        written = self._written.get((resource, field))
        if written is None:  # first question about this field: index what the batch wrote so far
            written = self._written[(resource, field)] = defaultdict(set)
            for path, entry in chain(self._carried.items(), self.dirty.items()):  # carried: maybe not stored yet
                if entry.resource == resource:
                    written[_key(field_of(entry.doc, field))].add(path)
        found = []
        for path in sorted(set(self._found.get((resource, field, value), ())) | written.get(value, set())):
            entry = self.docs.get(path)
            if (entry is not None and entry.resource == resource and not entry.deleted
                    and field_of(entry.doc, field) == value):
                found.append(Ref(path, entry.bureau))
        return found

    # -- audit --------------------------------------------------------------------------------------------------

    def audit(self, row, items):
        """One audit_log row (without its id) and its items' uuids, in the order of row['changes']."""
        self._audit.append((row, items))

    # -- write back ---------------------------------------------------------------------------------------------

    def flush(self):
        """Write back what the batch changed, in the caller's transaction."""
        self.write(self.conn, self.prepare())

    def prepare(self):
        """The batch's writes (a Prepared), built without the database; the batch starts empty again. A load from
        zero counts the written documents as its own from here (gateway.batch.FromZero)."""
        postgresql = self.conn.dialect.name == "postgresql"
        documents_rows = [{"path": path, "resource": e.resource, "bureau": e.bureau, "doc": stored(e.doc),
                           "deleted": e.deleted} for path, e in self.dirty.items()]
        fresh = set()
        if self.from_zero is not None:  # a path this load never wrote has no row yet: INSERT, no upsert
            fresh = {path for path in self.dirty if path not in self.from_zero.paths}
            self.from_zero.paths.update(self.dirty)
            self.from_zero.resources.update(entry.resource for entry in self.dirty.values())
        if not postgresql:
            documents_rows = self._changed(documents_rows)
        new = [row for row in documents_rows if row["path"] in fresh]
        if new:
            documents_rows = [row for row in documents_rows if row["path"] not in fresh]
        logs, keys = [], []
        for n, (row, items) in enumerate(self._audit):
            logs.append(dict(row, n=n, changes=audit_changes.encoded(row["changes"])))
            keys += [{"uuid": uuid, "n": n, "ordinal": ordinal} for ordinal, uuid in enumerate(items)]
        bureaus = sorted({row["bureau"] for row in logs if row["bureau"] is not None})
        if postgresql:
            encoded = [_json_text(rows) if rows else None for rows in (new, documents_rows, logs, keys)]
            stored_rows = {}
        else:
            encoded = [_sqlite_documents(new), _sqlite_documents(documents_rows),
                       [(r["n"], r["application"], r["position"], r["bureau"], r["reference"], r["user"], r["created"],
                         r["changes"]) for r in logs],
                       [(r["uuid"].replace("-", ""), r["n"], r["ordinal"]) for r in keys]]
            stored_rows = {path: self._stored[path] for path in self.dirty if path in self._stored}
        prepared = Prepared(*encoded, bureaus, self.dirty, stored_rows)
        self.dirty, self._audit = {}, []
        return prepared

    @staticmethod
    def write(conn, prepared):
        """Write `prepared` (Batch.prepare) in `conn`'s transaction: the audit rows numbered after the last one."""
        first_id, tenants = None, {}
        if prepared.logs:
            first_id = (conn.execute(select(func.max(audit_log.c.id))).scalar() or 0) + 1
            tenants = indexes.tenant_numbers(conn, prepared.bureaus)  # each bureau's number
        (_write_postgresql if conn.dialect.name == "postgresql" else _write_sqlite)(conn, prepared, first_id, tenants)

    def _changed(self, documents_rows):
        """SQLite: the rows of `documents_rows` (their doc as JSON text) that differ from what the database holds.
        Rewriting an identical row is not free there: every list-key trigger of its resource deletes and inserts its
        row again (dozens of index entries), and the documents row itself goes to the WAL once more. PostgreSQL's
        list-key trigger skips such an update on its own."""
        changed = []
        for row in documents_rows:
            stored = (row["resource"], row["bureau"], json.dumps(row["doc"]), bool(row["deleted"]))
            if self._stored.get(row["path"]) != stored:
                changed.append(dict(row, doc=stored[2]))
                self._stored[row["path"]] = stored
        return changed


# A document written before is replaced whole (both databases); one that cannot be there yet (`new`: a load from zero,
# gateway.batch.FromZero) is inserted without ON CONFLICT; audit rows are only ever inserted.
_DOCUMENT_UPSERT = (" ON CONFLICT (path) DO UPDATE SET resource = excluded.resource, bureau = excluded.bureau,"
                    " doc = excluded.doc, deleted = excluded.deleted")

# PostgreSQL: each table's rows go as one JSON parameter, unpacked by the server (jsonb_to_recordset): one statement
# and one parse per table and batch, instead of a parameter list per row built and sent by the driver.
_PG_COLUMNS = {
    "documents": "path varchar, resource varchar, bureau varchar, doc jsonb, deleted boolean",
    "audit_log": 'n bigint, application varchar, position bigint, bureau varchar, reference varchar, "user" varchar,'
                 " created varchar, changes text",
    "audit_keys": "uuid uuid, n bigint, ordinal smallint",
}

# What each table's INSERT takes from its recordset: an audit row's id is the batch's first id + its `n`, its tenant
# its bureau's number (a small JSON object of the batch's bureaus); audit_log.changes comes as its JSON text
# (gateway.audit_changes.encoded), stored as it is: a `json` field of the recordset would be PostgreSQL's rendering of
# it, with a space after every separator.
_PG_SELECTED = {
    "documents": ("path, resource, bureau, doc, deleted", "path, resource, bureau, doc, deleted"),
    "audit_log": ('id, application, position, tenant, reference, "user", created, changes',
                  "%(first_id)s + n, application, position, (%(tenants)s::jsonb ->> bureau)::integer, reference, "
                  '"user", created, changes::json'),
    "audit_keys": ("uuid, log_id, ordinal", "uuid, %(first_id)s + n, ordinal"),
}


def _write_postgresql(conn, prepared, first_id, tenants):
    """Each table's rows come as one JSON text (Batch.prepare), unpacked by the server."""
    numbering = {"first_id": first_id, "tenants": _json_text(tenants)}
    for table, payload, conflict in (("documents", prepared.new, ""),
                                     ("documents", prepared.documents, _DOCUMENT_UPSERT),
                                     ("audit_log", prepared.logs, ""), ("audit_keys", prepared.keys, "")):
        if not payload:
            continue
        columns, selected = _PG_SELECTED[table]
        conn.exec_driver_sql(
            f'INSERT INTO "{READ_SCHEMA}".{table} ({columns}) SELECT {selected} '
            "FROM jsonb_to_recordset(%(rows)s::jsonb) "
            f"AS x({_PG_COLUMNS[table]}){conflict}", dict(numbering, rows=payload))


def _json_text(rows):
    """json.dumps(rows), compactly, by orjson where that writes the same (gateway.http.encode_json): about 3× less
    CPU, ~15 µs an event of a rebuild. Byte for byte is more than the server needs (it parses the text), but NaN and
    the infinities must still reach it as json.dumps writes them, to be refused, not stored as orjson's null."""
    encoded = encode_json(rows)
    return encoded.decode() if isinstance(encoded, bytes) else encoded


# SQLite: the driver's executemany over plain tuples, values encoded as SQLAlchemy's types store them (JSON text by
# json.dumps, booleans as 0/1, a Uuid as its 32 hex digits), without its per-row parameter processing (which cost more
# than the inserts). Each table's columns in the order of its statement.
_SQLITE_COLUMNS = {
    "documents": "path, resource, bureau, doc, deleted",
    "audit_log": 'id, application, position, tenant, reference, "user", created, changes',
    "audit_keys": "uuid, log_id, ordinal",
}


def _sqlite_documents(rows):
    """The documents' rows as the statement's tuples; their docs come as JSON text already (Batch._changed)."""
    return [(r["path"], r["resource"], r["bureau"], r["doc"], r["deleted"]) for r in rows]


def _write_sqlite(conn, prepared, first_id, tenants):
    """The rows come as tuples already (Batch.prepare); the audit rows get their ids and tenants here."""
    logs = [(first_id + n, application, position, tenants.get(bureau), reference, user, created, changes)
            for n, application, position, bureau, reference, user, created, changes in prepared.logs]
    keys = [(uuid, first_id + n, ordinal) for uuid, n, ordinal in prepared.keys]
    for table, rows, conflict in (("documents", prepared.new, ""), ("documents", prepared.documents, _DOCUMENT_UPSERT),
                                  ("audit_log", logs, ""), ("audit_keys", keys, "")):
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            conn.exec_driver_sql(f"INSERT INTO {table} ({_SQLITE_COLUMNS[table]}) VALUES ({marks}){conflict}", rows)


def _key(value):
    return value if isinstance(value, str) else None  # the database compares the text form; references are text


def _of_resource(dialect, resource):
    """`resource = '…'`, the term that lets the reference's partial index (WHERE resource = '…') serve the lookup.
    SQLite, without statistics, rates that term as selective as the index on the reference and, from two values in
    the IN list up, chose ix_documents_resource_bureau instead: a scan of every document of the resource, with a
    json_extract each (30–75 ms a lookup at 10,000 line items, against 1.5 ms; quadratic over a rebuild).
    likelihood(…, 0.9) says the term is not selective; the partial index still matches it."""
    term = f"resource = '{resource}'"
    return f"likelihood({term}, 0.9)" if dialect == "sqlite" else term


def reference_sql(dialect, field):
    """`doc->>field` (`a.b`: key b of object field a) as SQL text, spelled exactly as the partial indexes that serve
    it (gateway.readstore.reference_indexes), so the planner matches them."""
    if dialect == "sqlite":
        return f"json_extract(doc, '$.{field}')"
    if "." in field:
        return f"doc #>> '{{{','.join(field.split('.'))}}}'"
    return f"doc ->> '{field}'"

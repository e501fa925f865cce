"""Sensor readings at rate (capture-and-platform.md A12, F8): a compact time-series table beside the capture service's
event store, never one aggregate event per reading.

Why not events: a sensor reporting every few seconds would write an event, a receipt and a read-side document per
reading, and /sensor-data/ would scan a JSON store. Readings are facts without rules (a timestamp and two numbers),
so they are appended in batches (one transaction per delivery batch, services.capture.ingest) to

    sensor_readings (sensor INTEGER, at BIGINT epoch milliseconds UTC, temperature REAL, humidity REAL,
                     PRIMARY KEY (sensor, at))           -- SQLite: WITHOUT ROWID, the key is the table

in the capture service's own database (its SQLite file, or its PostgreSQL schema). `sensor` is a small integer from
`sensor_keys` (sensor uuid ↔ key), so a row costs 24 bytes of data instead of a 16-byte uuid per row. The primary key
makes a redelivered batch idempotent: `INSERT … ON CONFLICT DO NOTHING` stores each (sensor, timestamp) once, and the
first value wins (a device does not report two values for one instant).

Reads (/sensor-data/) are ranges of that key: one sensor, a time range, in order, a page at a time, or bucketed
(`bucket=<seconds>`: one row per bucket with the average, minimum and maximum of each quantity) for long ranges.
"""
import math
import struct
from datetime import datetime, timezone
from uuid import UUID

TABLE = "sensor_readings"
KEYS = "sensor_keys"
BATCH_KEYS = "sensor_batch_keys"
MAX_BUCKETS = 1000  # bucket=auto picks the bucket that gives at most this many rows


def to_millis(text):
    """An ISO-8601 timestamp (a naive one is UTC) → epoch milliseconds; ValueError when it is not one."""
    if not isinstance(text, str):
        raise ValueError("a timestamp is an ISO-8601 string")
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(round(moment.timestamp() * 1000))


def from_millis(millis):
    """Epoch milliseconds → "2023-07-25T12:34:56Z" (milliseconds shown only when there are some)."""
    moment = datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis % 1000:
        text += f".{millis % 1000:03d}"
    return text + "Z"


def point_uuid(key, millis, batch_key=0):
    """The uuid of one reading (sensor key, time) — and of one batch's data point (batch key too): it encodes them, so
    GET /sensor-data/<uuid>/ finds its row by primary key without an index of its own."""
    return UUID(bytes=struct.pack(">IIq", batch_key, key, millis))


def parse_point_uuid(value):
    """(batch key, sensor key, millis) of a point uuid; ValueError when it is not one."""
    return struct.unpack(">IIq", UUID(str(value)).bytes)


class ReadingStore:
    """The readings table of one application's database (SQLite file or PostgreSQL schema)."""

    def __init__(self, app):
        datastore = app.recorder.datastore
        self.datastore = datastore
        self.postgres = type(datastore).__module__ == "eventsourcing.postgres"
        schema = f'"{datastore.schema}".' if self.postgres else ""
        self.table, self.keys, self.batch_keys = schema + TABLE, schema + KEYS, schema + BATCH_KEYS
        self.mark = "%s" if self.postgres else "?"
        self._keys = {}  # sensor uuid (str) → key, and back
        self._sensors = {}

    # -- schema ------------------------------------------------------------------------------------------------

    def create_tables(self):
        if self.postgres:
            statements = [
                f"CREATE TABLE IF NOT EXISTS {self.keys} (key SERIAL PRIMARY KEY, sensor UUID NOT NULL UNIQUE)",
                f"CREATE TABLE IF NOT EXISTS {self.batch_keys} (key SERIAL PRIMARY KEY, batch UUID NOT NULL UNIQUE)",
                f"CREATE TABLE IF NOT EXISTS {self.table} (sensor INTEGER NOT NULL, at BIGINT NOT NULL, "
                "temperature REAL, humidity REAL, PRIMARY KEY (sensor, at))",
            ]
        else:
            statements = [
                f"CREATE TABLE IF NOT EXISTS {self.keys} (key INTEGER PRIMARY KEY, sensor TEXT NOT NULL UNIQUE)",
                f"CREATE TABLE IF NOT EXISTS {self.batch_keys} (key INTEGER PRIMARY KEY, batch TEXT NOT NULL UNIQUE)",
                f"CREATE TABLE IF NOT EXISTS {self.table} (sensor INTEGER NOT NULL, at INTEGER NOT NULL, "
                "temperature REAL, humidity REAL, PRIMARY KEY (sensor, at)) WITHOUT ROWID",
            ]
        with self.datastore.transaction(commit=True) as cursor:
            for statement in statements:
                cursor.execute(statement)

    # -- keys --------------------------------------------------------------------------------------------------

    def key_of(self, sensor, cursor=None, create=True):
        """The sensor's small integer key (made on first use when `create`), or None."""
        sensor = str(sensor)
        if sensor in self._keys:
            return self._keys[sensor]
        key = self._key(cursor, self.keys, "sensor", sensor, create)
        if key is not None:
            self._keys[sensor], self._sensors[key] = key, sensor
        return key

    def sensor_of(self, key):
        if key not in self._sensors:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(f"SELECT sensor FROM {self.keys} WHERE key = {self.mark}", (key,))
                row = cursor.fetchone()
            if row is None:
                return None
            self._sensors[key], self._keys[str(row["sensor"])] = str(row["sensor"]), key
        return self._sensors[key]

    def batch_key(self, batch, create=True):
        return self._key(None, self.batch_keys, "batch", str(batch), create)

    def batch_of(self, key):
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT batch FROM {self.batch_keys} WHERE key = {self.mark}", (key,))
            row = cursor.fetchone()
        return str(row["batch"]) if row else None

    def _key(self, cursor, table, column, value, create):
        if cursor is None:
            with self.datastore.transaction(commit=create) as own:
                return self._key(own, table, column, value, create)
        m = self.mark
        cursor.execute(f"SELECT key FROM {table} WHERE {column} = {m}", (value,))
        row = cursor.fetchone()
        if row is None and create:
            cursor.execute(f"INSERT INTO {table} ({column}) VALUES ({m}) ON CONFLICT ({column}) DO NOTHING", (value,))
            cursor.execute(f"SELECT key FROM {table} WHERE {column} = {m}", (value,))
            row = cursor.fetchone()
        return int(row["key"]) if row else None

    # -- writing ------------------------------------------------------------------------------------------------

    def append(self, readings):
        """Store readings [(sensor uuid, millis, temperature, humidity)] in one transaction; a (sensor, time) already
        stored is skipped. Returns how many rows were new."""
        if not readings:
            return 0
        with self.datastore.transaction(commit=True) as cursor:
            rows = [(self.key_of(sensor, cursor), millis, temperature, humidity)
                    for sensor, millis, temperature, humidity in readings]
            if self.postgres:
                # one statement for the whole batch (executemany would send one INSERT per row)
                cursor.execute(
                    f"INSERT INTO {self.table} (sensor, at, temperature, humidity) "
                    "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::real[], %s::real[]) "
                    "ON CONFLICT (sensor, at) DO NOTHING", [list(column) for column in zip(*rows)])
                return cursor.rowcount
            cursor.executemany(f"INSERT INTO {self.table} (sensor, at, temperature, humidity) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (sensor, at) DO NOTHING", rows)
            return getattr(cursor, "sqlite_cursor", cursor).rowcount  # inserted rows: skipped conflicts count nothing

    # -- reading ------------------------------------------------------------------------------------------------

    def select(self, spans, descending=False, limit=1000, offset=0, after=None):
        """Rows of the readings in `spans` [(sensor key, from millis or None, to millis or None)] (a reading at `to`
        is not in its span), in time order, as dicts {sensor, at, temperature, humidity}. `after` (a cursor: the
        last row's (at, sensor) of the previous page) starts the page past it."""
        where, params = self._spans(spans)
        if after is not None:
            at, key = after
            where = f"({where}) AND " + ("(at < {m} OR (at = {m} AND sensor < {m}))" if descending else
                                          "(at > {m} OR (at = {m} AND sensor > {m}))").format(m=self.mark)
            params += [at, at, key]
        order = "DESC" if descending else "ASC"
        sql = (f"SELECT sensor, at, temperature, humidity FROM {self.table} WHERE {where} "
               f"ORDER BY at {order}, sensor {order} LIMIT {int(limit)} OFFSET {int(offset)}")
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, params)
            return [dict(row) for row in cursor.fetchall()]

    def count(self, spans):
        where, params = self._spans(spans)
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n FROM {self.table} WHERE {where}", params)
            return int(cursor.fetchone()["n"])

    def bounds(self, spans):
        """(first millis, last millis) of the readings in `spans`, or (None, None)."""
        where, params = self._spans(spans)
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT MIN(at) AS first, MAX(at) AS last FROM {self.table} WHERE {where}", params)
            row = cursor.fetchone()
        return (row["first"], row["last"]) if row and row["first"] is not None else (None, None)

    def buckets(self, spans, bucket_ms, descending=False, limit=1000, offset=0):
        """One row per `bucket_ms` of time (buckets aligned on the epoch) and sensor: its start, the number of readings
        and the average, minimum and maximum of each quantity."""
        where, params = self._spans(spans)
        size = int(bucket_ms)
        start = f"((at / {size}) * {size})"  # integer division on both databases (at ≥ 0: readings after 1970)
        order = "DESC" if descending else "ASC"
        sql = (f"SELECT sensor, {start} AS at, COUNT(*) AS n, AVG(temperature) AS temperature, "
               "MIN(temperature) AS temperature_min, MAX(temperature) AS temperature_max, AVG(humidity) AS humidity, "
               f"MIN(humidity) AS humidity_min, MAX(humidity) AS humidity_max FROM {self.table} WHERE {where} "
               f"GROUP BY sensor, {start} ORDER BY at {order}, sensor {order} LIMIT {int(limit)} OFFSET {int(offset)}")
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, params)
            return [dict(row) for row in cursor.fetchall()]

    def bucket_count(self, spans, bucket_ms):
        where, params = self._spans(spans)
        size = int(bucket_ms)
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM {self.table} WHERE {where} "
                           f"GROUP BY sensor, ((at / {size}) * {size})) AS grouped", params)
            return int(cursor.fetchone()["n"])

    def _spans(self, spans):
        if not spans:
            return "1 = 0", []
        clauses, params = [], []
        for key, start, end in spans:
            clause = [f"sensor = {self.mark}"]
            params.append(key)
            if start is not None:
                clause.append(f"at >= {self.mark}")
                params.append(start)
            if end is not None:
                clause.append(f"at < {self.mark}")
                params.append(end)
            clauses.append("(" + " AND ".join(clause) + ")")
        return " OR ".join(clauses), params

    def size_on_disk(self):
        """Bytes the readings table and its key take (PostgreSQL: table + indexes; SQLite: the table's pages)."""
        with self.datastore.transaction(commit=False) as cursor:
            if self.postgres:
                cursor.execute("SELECT pg_total_relation_size(%s) AS n", (self.table,))
            else:
                cursor.execute("SELECT SUM(pgsize) AS n FROM dbstat WHERE name = ? OR name LIKE ?",
                               (TABLE, f"sqlite_autoindex_{TABLE}%"))
            return int(cursor.fetchone()["n"] or 0)


def auto_bucket(first, last, limit=MAX_BUCKETS):
    """The bucket (milliseconds, a whole number of minutes) that puts the span first..last in at most `limit` rows."""
    if first is None or last is None or last <= first:
        return 60_000
    minutes = math.ceil((last - first + 1) / limit / 60_000)
    return max(1, minutes) * 60_000

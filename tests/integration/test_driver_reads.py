"""The reads run on the driver's cursor (ReadStore._cursor, gateway.shapes.Driver) keep the read side's outage rules:
a connection the database ended is retried on a fresh one, and a database that cannot be reached is a 503."""
import psycopg2
import pytest

from gateway import listing, readstore
from shared import catalogue
from shared.errors import ServiceUnavailable
from tests.integration.test_list_indexes import BUREAU, order_event

SPEC = catalogue.resource("order")


def test_a_read_database_that_cannot_be_reached_is_a_503(monkeypatch):
    monkeypatch.setattr(readstore.time, "sleep", lambda seconds: None)
    store = readstore.ReadStore(readstore.read_store_url({"STRATUM_POSTGRES_DSN": "postgresql://postgres@127.0.0.1:9/x"}))
    try:
        for read in (lambda: store.credential("0" * 36), lambda: store.document("/order/x/", BUREAU),
                     lambda: store.documents(SPEC, BUREAU, listing.parse(SPEC, "page[limit]=5"))):
            with pytest.raises(ServiceUnavailable):
                read()
    finally:
        store.dispose()


def test_reads_on_connections_the_database_ended_are_retried_on_fresh_ones(postgres_dsn):
    store = readstore.ReadStore(readstore.read_store_url({"STRATUM_POSTGRES_DSN": postgres_dsn}))
    try:
        store.create_tables()
        store.apply_feed("orders", [order_event(n + 1, n) for n in range(10)], 10)
        query = listing.parse(SPEC, "page[limit]=5")
        before = [row.path for row in store.documents(SPEC, BUREAU, query).rows]
        admin = psycopg2.connect(postgres_dsn)
        admin.autocommit = True
        with admin.cursor() as cursor:  # every other connection to the read database: the pooled ones
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        admin.close()
        assert [row.path for row in store.documents(SPEC, BUREAU, query).rows] == before
        assert store.document(before[0], BUREAU)["name"].startswith("order-")
        assert store.credential("0" * 36) is None
    finally:
        store.dispose()

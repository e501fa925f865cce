"""The event stores record without eventsourcing's NOTIFY (shared.recorders): nothing listens, and every notifying
commit of the cluster queues under one lock. Both recorder kinds: a plain service's and a follower's (a process
recorder, whose batches carry their tracking record)."""
import uuid

import psycopg
import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Tracking

from runtime.config import build_config
from services.identity.application import Identity
from services.orders.application import Orders
from shared.eventstore import create_store
from shared.settings import event_store_env

pytestmark = pytest.mark.integration


def _store(application_cls, tmp_path, postgres_dsn):
    config = build_config({"STRATUM_DATA_DIR": str(tmp_path), "STRATUM_POSTGRES_DSN": postgres_dsn})
    env = dict(event_store_env(config, application_cls.name), POSTGRES_SCHEMA=f"notify_{uuid.uuid4().hex[:8]}",
               POSTGRES_POOL_SIZE="1", POSTGRES_MAX_OVERFLOW="0")
    create_store(env, application_cls)
    return application_cls(env=env)


def _notifies_heard(postgres_dsn, app, record):
    with psycopg.connect(postgres_dsn, autocommit=True) as listener:
        listener.execute(f'LISTEN "{app.recorder.channel_name}"')
        record()
        return list(listener.notifies(timeout=0.5))


@pytest.mark.parametrize("application_cls", [Identity, Orders])
def test_a_recording_transaction_sends_no_notify(application_cls, tmp_path, postgres_dsn):
    app = _store(application_cls, tmp_path, postgres_dsn)
    try:
        assert _notifies_heard(postgres_dsn, app, lambda: app.save(Aggregate())) == []
        assert app.recorder.max_notification_id() == 1  # recorded all the same
        if application_cls is Orders:  # a follower's batch: its events with the position reached
            processing = ProcessingEvent(tracking=Tracking(application_name="production", notification_id=7))
            processing.collect_events(Aggregate())
            assert _notifies_heard(postgres_dsn, app, lambda: app._record(processing)) == []
            assert app.recorder.max_tracking_id("production") == 7
    finally:
        app.close()

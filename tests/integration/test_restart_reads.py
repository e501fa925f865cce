"""Issue 12 goal 4: a restart never re-reads a whole log. Each service with an event store runs as a real nameko
container (the broker, the store on SQLite and on PostgreSQL); its start-up work is its store's start (identity's
bootstrap, capture's machine catalogue) and one tick of every timer (sweeps, the deliverer, the genealogy
projection, the followers of other services, which are not running here and answer nothing). The stored events read
are counted at the recorder: its select_notifications and select_events, the real methods wrapped.

The log grows by N events, a first start reads what is new (at least N: what the counting sees), and a restart
then reads the same small number of events whatever N is: nothing of the log it read before."""
from uuid import uuid4

import pytest
from eventsourcing.persistence import ApplicationRecorder, AggregateRecorder
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook
from nameko.timer import Timer

from runtime.topology import APPLICATIONS, PROCESSES, load
from shared.resource import UniqueKey
from shared.settings import event_store_env

pytestmark = pytest.mark.integration
SIZES = (30, 600)  # events added to the log before each round


@pytest.fixture(scope="module")
def config_overrides():
    return {"STRATUM_RPC_TIMEOUT": "1"}  # the followed services are not running: their pulls fail soon


@pytest.fixture
def reads(monkeypatch):
    """The stored events every recorder of this process returns while the test runs (both backends' recorders
    inherit these two methods' names from eventsourcing's base classes; each concrete class is wrapped)."""
    counted = []
    import eventsourcing.postgres as postgres
    import eventsourcing.sqlite as sqlite
    for module in (sqlite, postgres):
        for cls in vars(module).values():
            if not isinstance(cls, type) or cls.__module__ != module.__name__:
                continue
            for method, base in (("select_notifications", ApplicationRecorder), ("select_events", AggregateRecorder)):
                if issubclass(cls, base) and method in vars(cls):
                    monkeypatch.setattr(cls, method, _counting(vars(cls)[method], counted))
    return counted


def _counting(select, counted):
    def counting(self, *args, **kwargs):
        found = select(self, *args, **kwargs)
        counted.append(len(found))
        return found

    return counting


def grow(config, name, count):
    """`count` more events in the service's log (command receipts: every reader of the whole log reads them)."""
    app = load(APPLICATIONS[name])(env=event_store_env(config, name))
    try:
        for begin in range(0, count, 200):
            app.save(*[UniqueKey.claim("command", str(uuid4()), {}) for _ in range(min(200, count - begin))])
    finally:
        app.close()


def start(config, name):
    """One life of the service's process: started, every timer ticked once, stopped."""
    container = ServiceContainer(load(PROCESSES[name]), config)
    container.start()
    try:
        for entrypoint in sorted({e.method_name for e in container.entrypoints if isinstance(e, Timer)}):
            with entrypoint_hook(container, entrypoint) as tick:
                tick()
    finally:
        container.stop()


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_a_restart_reads_no_more_for_a_longer_log(config, name, reads):
    first_starts, restarts = [], []
    for size in SIZES:
        grow(config, name, size)
        reads.clear()
        start(config, name)
        first_starts.append(sum(reads))
        reads.clear()
        start(config, name)
        restarts.append(sum(reads))
    assert all(read >= size for read, size in zip(first_starts, SIZES)), first_starts  # the counting sees reads
    assert restarts[0] == restarts[1], restarts  # whatever the log's length

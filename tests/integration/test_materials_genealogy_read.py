"""The genealogy read (services.materials.genealogy) loads a whole level of the trees in one SELECT; on SQLite and on
PostgreSQL it gives exactly the document the per-aggregate repository gives, for a genealogy with splits, a blend,
a top-off cycle and root edges."""
import json
import uuid

import pytest

from runtime.config import build_config
from services.materials import genealogy
from services.materials.application import Materials
from shared.eventstore import create_store
from shared.settings import event_store_env
from tests.unit.materials_kit import Kit

pytestmark = pytest.mark.integration

PRINTERS = {f"/printer/{n * 8}-{n * 4}-{n * 4}-{n * 4}-{n * 12}/": {"printer_type": None} for n in "45"}


class OneByOne(genealogy.Reader):
    """The reference: each aggregate from the repository, as any other read of the service."""

    def prefetch(self, paths):
        for path in paths:
            if path and path not in self.loaded:
                try:
                    self.loaded[path] = self.app.repository.get(uuid.UUID(path.rstrip("/").rpartition("/")[2]))
                except Exception:
                    self.loaded[path] = None


@pytest.fixture(scope="module")
def kit(storage):
    config = build_config(storage)
    env = dict(event_store_env(config, "materials"), POSTGRES_SCHEMA=f"materials_{uuid.uuid4().hex[:8]}")
    create_store(env, Materials)
    kit = Kit.__new__(Kit)
    kit.app, kit.bureau = Materials(env=env), Kit().bureau
    yield kit
    kit.app.close()


def test_a_level_at_a_time_reads_what_one_by_one_reads(kit):
    printer, other_printer = list(PRINTERS)
    batch = kit.initial_batch(kit.lot(containers=4, size=10.0))
    left = kit.act("split_batch", batch, 10.0)
    right = kit.act("split_batch", batch, 5.0)
    blend = kit.act("blend_batches", left, batches=[right])
    kit.act("machine_load", batch, 5.0, printer=printer, printers=PRINTERS)
    kit.act("machine_load", blend, 5.0, printer=other_printer, printers=PRINTERS)
    kit.act("machine_top_off", batch, 1.0, batch_to_load=blend)
    kit.act("machine_top_off", blend, 1.0, batch_to_load=batch)
    for target in (batch, blend, left):
        uuid_ = target.rstrip("/").rpartition("/")[2]
        fast = kit.app.genealogy(uuid_, {"platform_admin": True})
        slow = genealogy.genealogy(kit.app, uuid_, {"platform_admin": True}, reader=OneByOne(kit.app))
        assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)
        assert fast["parents_tree"] and fast["actions"]

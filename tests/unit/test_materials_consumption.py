"""Consumption by production (materials.md §9 F3): materials follows production's feed; a printing run that
completes in the printer a batch is loaded in is the batch's run; the batch's unload measures what its runs consumed
(one RunConsumption per run and batch, the unload naming the runs) and asks for production's run-actuals-additive;
the feed is followed once (a batch at or below the position changes nothing); production is told once, with ids of
its own."""
import uuid
from datetime import datetime, timezone

import pytest
from eventsourcing.application import AggregateNotFoundError
from nameko.testing.services import worker_factory

from services.materials.actions import MaterialBatchAction
from services.materials.consumption import PRODUCTION, RUN_CONSUMPTION_RECORDED, PrintingRun, additive_id
from services.materials.service import MaterialsService
from shared.errors import ServiceUnavailable
from tests.unit.materials_kit import Kit

PRINTER = "/printer/44444444-4444-4444-4444-444444444444/"
PRINTER_TYPE = "/printer-type/55555555-5555-5555-5555-555555555555/"
PRINTERS = {PRINTER: {"printer_type": PRINTER_TYPE}}


@pytest.fixture
def kit():
    kit = Kit()
    yield kit
    kit.close()


class Production:
    """A production feed as materials reads it (shared.application.feed's shape)."""

    def __init__(self, kit):
        self.kit = kit
        self.position = 0
        self.events = []

    def event(self, resource, uuid_, kind, fields):
        self.position += 1
        self.events.append({"position": self.position, "application": PRODUCTION, "resource": resource,
                            "uuid": uuid_, "kind": kind, "bureau": self.kit.bureau, "fields": fields,
                            "timestamp": datetime.now(timezone.utc).isoformat()})

    def run(self, printer=PRINTER, operation="printing"):
        run_id = str(uuid.uuid4())
        self.event("run", run_id, "created", {"printer": printer, "operation": operation, "status": "queued"})
        return run_id

    def start(self, run_id):
        actuals = str(uuid.uuid4())
        self.event("run", run_id, "updated", {"status": "in-progress"})
        self.event("run-actuals", actuals, "created", {"run": f"/run/{run_id}/"})
        return f"/run-actuals/{actuals}/"

    def complete(self, run_id):
        self.event("run", run_id, "updated", {"status": "complete"})

    def deliver(self, start=1):
        """Everything from `start` on, as one batch of the feed (a follower pulls from its position + 1)."""
        events = [e for e in self.events if e["position"] >= start]
        return self.kit.app.apply_feed(PRODUCTION, {"application": PRODUCTION, "events": events,
                                                    "last": self.position, "complete": True})


def unload(kit, batch, quantity, chamber=True):
    result = kit.app.create("material-batch-action", {
        "action_type": "machine_unload_chamber" if chamber else "machine_unload_hopper", "source_batch": batch,
        "quantity": quantity, "metadata": {}}, kit.ctx())
    return result


def test_a_completed_run_consumes_what_the_unload_finds_gone(kit):
    batch = kit.initial_batch(kit.lot(containers=4, size=10.0))
    kit.act("machine_load", batch, 30.0, printer=PRINTER, printers=PRINTERS)
    production = Production(kit)
    run = production.run()
    run_actual = production.start(run)
    production.complete(run)
    assert production.deliver() == production.position
    assert kit.app.position(PRODUCTION) == production.position
    assert kit.genealogy(batch)["batches"][0]["runs"] == [f"/run/{run}/"]  # the forward link, at once

    result = unload(kit, batch, 26.5)
    assert [(t, p) for t, p in MaterialBatchAction.follow_ups("create", result, {})] == [
        (RUN_CONSUMPTION_RECORDED, {"consumption": c}) for c in result["run_consumptions"]]
    (consumption_id,) = result["run_consumptions"]
    consumption = kit.app.run_consumption(consumption_id)
    assert consumption.fields == {"run": f"/run/{run}/", "run_actual": run_actual, "material_batch": batch,
                                  "base_material_used": 3.5, "units": "kg", "action": result["uri"]}
    assert consumption.additive() == {"run_actual": run_actual, "material_batch": batch, "base_material_used": 3.5}
    assert kit.get(result["uri"])["metadata"]["runs"] == [f"/run/{run}/"]
    assert kit.get(batch)["quantity"] == 36.5  # 40 − 3.5, and the ledger agrees (its unload took 3.5 out)
    assert not consumption.sent
    assert kit.app.consumption_sent(consumption_id, "/run-actuals-additive/x/")
    assert kit.app.run_consumption(consumption_id).sent
    assert kit.app.consumption_sent(consumption_id, "/run-actuals-additive/x/") is None  # once

    # the next load's unload finds no run of its own: nothing is consumed by a run
    kit.act("machine_load", batch, 10.0, printer=PRINTER, printers=PRINTERS)
    assert "run_consumptions" not in unload(kit, batch, 10.0, chamber=False)


def test_runs_completed_during_one_load_share_it_and_other_runs_do_not_count(kit):
    batch = kit.initial_batch(kit.lot(containers=4, size=10.0))
    idle = kit.initial_batch(kit.lot(containers=1, size=10.0))
    production = Production(kit)
    early, late_news = production.run(), production.run()
    production.start(early)
    production.complete(early)  # before the batch was loaded: not its run
    production.deliver()
    production.start(late_news)
    production.complete(late_news)  # before the load too, but the feed is read after it: still not its run
    kit.act("machine_load", batch, 20.0, printer=PRINTER, printers=PRINTERS)
    first, second = production.run(), production.run()
    sifting = production.run(operation="post-processing")
    elsewhere = production.run(printer="/printer/77777777-7777-7777-7777-777777777777/")
    for each in (first, second, sifting, elsewhere):
        production.start(each)
        production.complete(each)
    production.deliver(kit.app.position(PRODUCTION) + 1)
    assert kit.genealogy(batch)["batches"][0]["runs"] == [f"/run/{first}/", f"/run/{second}/"]
    assert kit.genealogy(idle)["batches"][0]["runs"] == []
    with pytest.raises(AggregateNotFoundError):  # not a printing run: not noted
        kit.app.repository.get(PrintingRun.id_for(f"/run/{sifting}/"))
    result = unload(kit, batch, 17.0)
    used = sorted((kit.app.run_consumption(c).fields["run"], kit.app.run_consumption(c).fields["base_material_used"])
                  for c in result["run_consumptions"])
    assert used == sorted([(f"/run/{first}/", 1.5), (f"/run/{second}/", 1.5)])


def test_the_feed_is_followed_once(kit):
    batch = kit.initial_batch(kit.lot(containers=1, size=10.0))
    kit.act("machine_load", batch, 5.0, printer=PRINTER, printers=PRINTERS)
    production = Production(kit)
    run = production.run()
    production.start(run)
    production.complete(run)
    production.deliver()
    before = kit.app.recorder.max_notification_id()
    assert production.deliver() == production.position  # the same batch again: nothing changes
    assert kit.app.recorder.max_notification_id() == before
    assert kit.genealogy(batch)["batches"][0]["runs"] == [f"/run/{run}/"]


def test_production_is_told_once_with_ids_of_its_own(kit):
    """The service's send (after the unload's message, or the sweeper's): production's run-actuals-additive is created
    with an id and a command id derived from the consumption, then the consumption is sent and is not sent again; a
    refusal leaves it unsent for the sweeper."""
    batch = kit.initial_batch(kit.lot(containers=1, size=10.0))
    kit.act("machine_load", batch, 6.0, printer=PRINTER, printers=PRINTERS)
    production = Production(kit)
    run = production.run()
    run_actual = production.start(run)
    production.complete(run)
    production.deliver()
    (consumption,) = unload(kit, batch, 5.0)["run_consumptions"]
    service = worker_factory(MaterialsService, app=kit.app)
    service.services.command.side_effect = ServiceUnavailable("The production service is not running.")
    service.send_run_consumption({"consumption": consumption})
    assert not kit.app.run_consumption(consumption).sent
    service.services.command.side_effect = None
    service.services.command.return_value = {"uri": f"/run-actuals-additive/{additive_id(uuid.UUID(consumption))}/"}
    service.send_run_consumption({"consumption": consumption})
    (call,) = service.services.command.call_args_list[1:]
    (production_name, method, resource, payload, ctx) = call.args
    assert (production_name, method, resource) == ("production", "create", "run-actuals-additive")
    assert payload == {"run_actual": run_actual, "material_batch": batch, "base_material_used": 1.0}
    assert ctx["uuid"] == str(additive_id(uuid.UUID(consumption))) and ctx["internal"] is True
    assert ctx["command_id"] == f"materials:run-consumption:{consumption}" and ctx["bureau"] == kit.bureau
    assert kit.app.run_consumption(consumption).sent
    service.send_run_consumption({"consumption": consumption})  # again (a repeated message): nothing sent
    assert service.services.command.call_count == 2

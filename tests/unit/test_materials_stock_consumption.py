"""Stock-tracked consumption and the stock's lots (materials.md §3.13–3.16, §9 F6): a stock's `material_lots` and
`on_order_quantity` follow the lots of its material at its location; a complete printing run no powder batch printed
consumes its actual base material from that stock once (production's feed read twice consumes once), drawing from
the lots first in first out, with `/material-stock-action-relationship/` rows lot → piece; a manual consume by a run
writes the same rows; StockBelowMinimum still fires once per fall."""
import uuid

import pytest

from services.materials.consumption import PrintingRun
from shared.errors import InvalidPayload
from tests.kit.apps import IN_MEMORY
from tests.unit.materials_kit import Kit
from tests.unit.test_materials_consumption import PRINTER, Production


@pytest.fixture
def kit():
    kit = Kit()
    kit._material = kit.material(units="meter", density=None, name="PLA filament")
    kit._location = kit.location()
    yield kit
    kit.close()


def stock(kit, **fields):
    return kit.create("stock", {"material": kit._material, "location": kit._location, **fields})


def relationships(kit, action):
    """{(type, resource): quantity} of a stock action."""
    rows = {}
    for notification in kit.app.recorder.select_notifications(start=1, limit=10_000):
        if notification.topic.startswith("materials/material-stock-action-relationship/"):
            fields = kit.app.mapper.to_domain_event(notification).fields
            if fields["stock_action"] == action:
                rows[(fields["relationship_type"], fields["resource"])] = fields["quantity"]
    return rows


def stock_actions(kit, stock_path):
    found = []
    for notification in kit.app.recorder.select_notifications(start=1, limit=10_000):
        if notification.topic.startswith("materials/material-stock-action/"):
            event = kit.app.mapper.to_domain_event(notification)
            if getattr(event, "fields", {}).get("source_stock") == stock_path:
                found.append((f"/material-stock-action/{event.originator_id}/", event.fields))
    return found


def test_the_stock_lots_and_what_is_on_order(kit):
    early = kit.lot(containers=2, size=5.0, status="on_order")
    s = stock(kit)  # created after a lot: finds it
    assert kit.get(s)["material_lots"] == [early] and kit.get(s)["on_order_quantity"] == 10.0
    later = kit.lot(containers=1, size=4.0, status="on_order")
    kit.lot(material=kit._material, location=kit.location("Elsewhere"), status="on_order")  # another location
    kit.lot(material=kit.material(units="meter", density=None, name="PETG"), location=kit._location)  # material
    assert kit.get(s)["material_lots"] == [early, later] and kit.get(s)["on_order_quantity"] == 14.0
    kit.create("material-lot-action", {"action_type": "receive_lot", "material_lot": early, "notes": "arrived"})
    assert kit.get(s)["on_order_quantity"] == 4.0
    kit.app.update("material-lot", later.rstrip("/").rsplit("/", 1)[1], {"status": "return_to_supplier"}, kit.ctx())
    assert kit.get(s)["material_lots"] == [early] and kit.get(s)["on_order_quantity"] == 0.0
    with pytest.raises(InvalidPayload) as refused:
        kit.app.update("stock", s.rstrip("/").rsplit("/", 1)[1], {"on_order_quantity": 99.0}, kit.ctx())
    assert "is computed from the lots" in refused.value.title
    assert kit.get(s)["on_order_quantity"] == 0.0


class Shop(Production):
    """Production's feed with a printing run's prints, pieces and actuals (F6)."""

    def pieces(self, count, material):
        prints = []
        for _ in range(count):
            print_id, piece = str(uuid.uuid4()), f"/piece/{uuid.uuid4()}/"
            self.event("print", print_id, "created", {"piece": piece, "operation": "printing", "run": None,
                                                      "base_material": material.rstrip("/").rsplit("/", 1)[1]})
            prints.append((f"/print/{print_id}/", piece))
        return prints

    def printing_run(self, prints, location):
        run_id = str(uuid.uuid4())
        self.event("run", run_id, "created", {"printer": PRINTER, "operation": "printing", "status": "queued",
                                              "prints": [p for p, _ in prints], "location": location})
        return run_id

    def used(self, actual, base_material_used, material_batch=None):
        additive = str(uuid.uuid4())
        self.event("run-actuals-additive", additive, "created", {
            "run_actual": actual, "base_material_used": base_material_used, "material_batch": material_batch})
        return additive


def test_a_complete_run_consumes_its_actual_from_the_lots_first_in_first_out_once(kit):
    first = kit.lot(containers=1, size=5.0)
    second = kit.lot(containers=1, size=10.0)
    s = stock(kit, quantity=20.0, stock_min=14.0)
    shop = Shop(kit)
    prints = shop.pieces(2, kit._material)
    run = shop.printing_run(prints, kit._location)
    actual = shop.start(run)
    shop.used(actual, 7.0)
    shop.complete(run)
    shop.deliver()
    ((action, fields),) = stock_actions(kit, s)
    assert (fields["action_type"], fields["run"], fields["action_quantity"], fields["quantity"]) == (
        "consume", f"/run/{run}/", 7.0, 13.0)
    assert kit.get(s)["quantity"] == 13.0
    assert relationships(kit, action) == {("source", first): 5.0, ("source", second): 2.0,
                                          ("destination", prints[0][1]): 3.5, ("destination", prints[1][1]): 3.5}
    shop.deliver()  # the same feed again (a follower restarted from an old position): nothing more
    assert len(stock_actions(kit, s)) == 1 and kit.get(s)["quantity"] == 13.0
    # the next run draws on from where the first left: the second lot's remaining 8
    prints = shop.pieces(1, kit._material)
    run = shop.printing_run(prints, kit._location)
    actual = shop.start(run)
    shop.complete(run)
    start = shop.position + 1
    shop.used(actual, 3.0)  # the actual comes after the completion: consumed then
    shop.deliver(start=1)
    action, fields = stock_actions(kit, s)[-1]
    assert fields["quantity"] == 10.0
    assert relationships(kit, action) == {("source", second): 3.0, ("destination", prints[0][1]): 3.0}
    below = [e for e in kit.app.feed(1, 10_000)["events"] if e["uuid"] == s.rstrip("/").rsplit("/", 1)[1]
             and e["names"][-1] == "StockBelowMinimum"]
    assert len(below) == 1 and below[0]["fields"]["quantity"] == 13.0  # fell once (13 < 14), not again at 10


def test_runs_that_consume_no_stock(kit):
    s = stock(kit, quantity=20.0)
    shop = Shop(kit)
    # a run whose actual is a powder batch's (F3's), one at another location, one never complete
    for location, batch, complete in ((kit._location, "/material-batch/%s/" % uuid.uuid4(), True),
                                      (kit.location("Annex"), None, True), (kit._location, None, False)):
        run = shop.printing_run(shop.pieces(1, kit._material), location)
        actual = shop.start(run)
        shop.used(actual, 2.0, material_batch=batch)
        if complete:
            shop.complete(run)
    shop.deliver()
    assert stock_actions(kit, s) == [] and kit.get(s)["quantity"] == 20.0


def test_a_run_consuming_more_than_the_stock_holds_is_recorded_with_its_shortfall(kit):
    s = stock(kit, quantity=2.0)
    shop = Shop(kit)
    run = shop.printing_run(shop.pieces(1, kit._material), kit._location)
    shop.used(shop.start(run), 5.0)
    shop.complete(run)
    shop.deliver()
    ((_, fields),) = stock_actions(kit, s)
    assert (fields["quantity"], fields["metadata"]) == (0.0, {"shortfall": 3.0})
    assert kit.get(s)["status"] == "exhausted"


def test_a_manual_consume_by_a_run_relates_its_lots_and_pieces(kit):
    lot = kit.lot(containers=1, size=10.0)
    s = stock(kit, quantity=10.0)
    shop = Shop(kit)
    prints = shop.pieces(2, kit._material)
    run = shop.printing_run(prints, kit._location)
    shop.deliver()
    assert kit.aggregate(f"/printing-run/{PrintingRun.id_for(f'/run/{run}/')}/") is not None
    action = kit.create("material-stock-action", {"action_type": "consume", "source_stock": s,
                                                  "action_quantity": 4.0, "run": f"/run/{run}/"})
    assert relationships(kit, action) == {("source", lot): 4.0, ("destination", prints[0][1]): 2.0,
                                          ("destination", prints[1][1]): 2.0}
    assert kit.get(action)["run"] == f"/run/{run}/"
    with pytest.raises(InvalidPayload) as refused:
        kit.create("material-stock-action", {"action_type": "replenish", "source_stock": s,
                                             "action_quantity": 1.0, "run": f"/run/{run}/"})
    assert "Only a consume" in refused.value.title


def test_lots_saved_before_the_lot_index_are_indexed_by_the_migrate_step(tmp_path):
    """A store written by a release without the lot index: its stock learns its lots when the migrate step runs."""
    from services.materials.application import Materials
    from services.materials.lot_index import index_lots

    class Earlier(Materials):
        indexed_references = (("material-batch", "at_machine"),)

    store = {**IN_MEMORY, "PERSISTENCE_MODULE": "eventsourcing.sqlite",
             "SQLITE_DBNAME": str(tmp_path / "materials.sqlite")}
    kit = Kit(**store)
    kit.app.close()
    kit.app = Earlier(env=store)
    kit._material = kit.material(units="meter", density=None, name="PLA filament")
    kit._location = kit.location()
    lot = kit.lot(containers=2, size=5.0, status="on_order")
    kit.app.close()
    kit.app = Materials(env=store)
    s = stock(kit)
    assert kit.get(s)["material_lots"] == [] and kit.get(s)["on_order_quantity"] == 0.0  # not indexed yet
    assert index_lots(kit.app) == 1
    assert kit.get(s)["material_lots"] == [lot] and kit.get(s)["on_order_quantity"] == 10.0
    before = kit.app.recorder.max_notification_id()
    assert index_lots(kit.app) is None  # again: done once, the log is not read again
    assert kit.app.recorder.max_notification_id() == before
    kit.close()

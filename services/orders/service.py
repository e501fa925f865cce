import hashlib
import json
import logging

from nameko.timer import timer

from services.orders.application import Orders
from services.orders.domain import (CLONE_REQUESTED, ESTIMATE_REQUESTED, NOT_PRINTABLE, UNPRINTABLE_MODEL_STATUSES,
                                   LineItem, Order)
from services.orders.estimates import estimate, out_of_date
from shared.amqp import event_handler
from shared.errors import StratumError
from shared.eventstore import EventStore
from shared.follower import CATCH_UP_INTERVAL, pull
from shared.resource import Resource
from shared.service import NEWS_EVENT, ResourceService
from shared.sweep import sweep_timer, sweeper_for
from shared.uris import parse_uri

MODEL_ANALYZED = "model_analyzed"  # dispatched by the files service when a model's analysis ends, well or not
DESIGN_FILE_UNPACKED = "design_file_unpacked"  # …and when a product's design file has become a model
INTERNAL = {"platform_admin": True}
PRODUCTION = "production"  # its feed moves line items and orders as pieces progress (F3)
log = logging.getLogger(__name__)


class OrdersService(ResourceService):
    name = "orders"
    app = EventStore(Orders)

    @sweep_timer(interval=30)
    def resume_stuck_work(self):
        """Work whose message a crash lost (see shared.sweep), found in one read of the orders log: a clone still
        `cloning` is copied again, a line item without current estimates is estimated again."""
        starts = ((Order, Resource.Created), (LineItem, Resource.Created), (LineItem, Resource.Updated))
        sweeper = sweeper_for(self.app, "jobs", starts, int(self.config["STRATUM_SWEEP_SECONDS"]))
        sweeper.sweep(_still_waiting, self._resume)

    def _resume(self, aggregate):
        if isinstance(aggregate, LineItem):
            self.dispatch(ESTIMATE_REQUESTED, {"line_item": f"/line-item/{aggregate.id}/"})
        else:
            self.dispatch(CLONE_REQUESTED, {"clone": str(aggregate.id),
                                            "source": parse_uri(aggregate.fields["cloned_from"])[1]})

    # -- following production's feed (F3) -------------------------------------------------------------------------------

    @event_handler(PRODUCTION, NEWS_EVENT)
    def on_production_news(self, payload):
        self._follow_production(news=payload)

    @timer(interval=CATCH_UP_INTERVAL)
    def follow_production(self):
        self._follow_production()

    def _follow_production(self, news=None):
        pull(self.app, self.services, PRODUCTION, lambda feed: self.app.apply_feed(PRODUCTION, feed), self._announce,
             news=news)

    @event_handler("orders", ESTIMATE_REQUESTED)
    def estimate_line_item(self, payload):
        self._estimate(payload["line_item"])

    @event_handler("files", MODEL_ANALYZED)
    def model_analyzed(self, payload):
        for line_item in self.app.line_items_printing(payload["model"]):
            self._estimate(line_item)

    @event_handler("files", DESIGN_FILE_UNPACKED)
    def design_file_unpacked(self, payload):
        """files.md §5 F2 step 4: the product's line items without a model print the design file's model; a design
        file that could not become a usable model puts them in error."""
        model, status = payload["model"], payload.get("model_status")
        for found in self.app.referencing("line-item", "product", payload["product"], INTERNAL):
            if found["fields"].get("model"):
                continue
            uuid = parse_uri(found["uri"])[1]
            try:
                if status in UNPRINTABLE_MODEL_STATUSES:
                    result = self.app.record_estimates(uuid, None, NOT_PRINTABLE, f"design-failed:{uuid}:{model}")
                else:
                    ctx = dict(INTERNAL, internal=True, command_id=f"design-model:{uuid}:{model}",
                               model_states={model: {"status": status}})
                    result = self.app.update("line-item", uuid, {"model": model}, ctx)
                    self.dispatch(ESTIMATE_REQUESTED, {"line_item": found["uri"]})
            except StratumError as error:
                log.warning("design file model not linked to %s: %s", found["uri"], error.title)
                continue
            self._announce(result)

    def _estimate(self, line_item_path):
        """orders.md §3 / files.md §5 F1 step 5: estimates follow the model's analysis; a model that failed
        analysis puts its line items in error with the documented message."""
        uuid = parse_uri(line_item_path)[1]
        try:
            item = self.app.read("line-item", uuid, INTERNAL)
            if not item.get("model"):
                moved = self.app.estimating(uuid, model_pending=False)  # nothing to compute, or not yet
                if moved:
                    self._announce(moved)
                return
            model = self.services.call("files", "get", "model", parse_uri(item["model"])[1], INTERNAL)
            estimates, error = None, None
            if model.get("status") in UNPRINTABLE_MODEL_STATUSES or model.get("virus_scan") == "quarantined":
                error = NOT_PRINTABLE
            elif model.get("volume_mm") is None:  # not analysed yet: MODEL_ANALYZED brings us back
                moved = self.app.estimating(uuid, model_pending=True)
                if moved:
                    self._announce(moved)
                return
            else:
                base = (item.get("materials") or {}).get("base")
                material = dict(self.services.call("materials", "get", "material", parse_uri(base)[1], INTERNAL),
                                uri=base) if base else None
                order = self.app.read("order", parse_uri(item["order"])[1], INTERNAL) if item.get("order") else {}
                estimates = dict(estimate(model, item.get("quantity") or 1, material, None, order.get("currency")),
                                 model=item["model"])
            digest = hashlib.sha256(json.dumps([estimates, error], sort_keys=True).encode()).hexdigest()[:16]
            # once per input and status: a line item sent back to calculating_estimates is estimated (and moved) again
            result = self.app.record_estimates(uuid, estimates, error, f"estimate:{uuid}:{digest}:{item.get('status')}")
        except StratumError as error:  # a deleted line item, a missing material: nothing to estimate
            log.warning("no estimate for %s: %s", line_item_path, error.title)
            return
        self._announce(result)

    @event_handler("orders", CLONE_REQUESTED)
    def complete_clone(self, payload):
        try:
            position = self.app.complete_clone(payload["clone"], payload["source"])
        except Exception as error:  # a failed copy shows on the order (status error), it is not silently dropped
            log.exception("clone %s failed", payload["clone"])
            position = self.app.fail_clone(payload["clone"], f"Cloning failed: {error}")
        if position:
            self._announce({"application": self.app.name, "position": position})
            for line_item in self.app.read("order", payload["clone"], INTERNAL).get("line_items") or []:
                self.dispatch(ESTIMATE_REQUESTED, {"line_item": line_item})  # copies start new, like any line item


def _still_waiting(aggregate):
    if isinstance(aggregate, LineItem):
        return not aggregate.deleted and out_of_date(aggregate.fields)
    return aggregate.fields.get("status") == "cloning" and bool(aggregate.fields.get("cloned_from"))

import hashlib
import json
import logging

from nameko.dependency_providers import Config
from nameko.events import event_handler

from services.orders.application import Orders
from services.orders.domain import (
    LINE_ITEM_IN_PRODUCTION,
    NOT_PRINTABLE,
    ORDER_IN_PRODUCTION,
    UNPRINTABLE_MODEL_STATUSES,
    LineItem,
    check_no_prints_in_runs,
)
from services.orders.estimates import estimate, out_of_date
from shared.errors import NotFound, StratumError
from shared.eventstore import EventStore
from shared.rpc import Services
from shared.service import ResourceService, rpc
from shared.sweep import sweep_timer, sweeper_for
from shared.uris import parse_uri

CLONE_REQUESTED = "order_clone_requested"
ESTIMATE_REQUESTED = "line_item_estimate_requested"
MODEL_ANALYZED = "model_analyzed"  # dispatched by the files service when a model's analysis ends, well or not
DESIGN_FILE_UNPACKED = "design_file_unpacked"  # …and when a product's design file has become a model
ESTIMATE_INPUTS = ("model", "quantity", "materials")
INTERNAL = {"platform_admin": True}
log = logging.getLogger(__name__)


class OrdersService(ResourceService):
    name = "orders"
    app = EventStore(Orders)
    services = Services()
    config = Config()

    @sweep_timer(interval=30)
    def resume_stuck_work(self):
        """Work whose message a crash lost (see shared.sweep), found in one read of the orders log: a clone still
        `cloning` is copied again, a line item without current estimates is estimated again."""
        sweeper = sweeper_for(self.app, "jobs", ("Order.Created", "LineItem.Created", "LineItem.Updated"),
                              int(self.config["STRATUM_SWEEP_SECONDS"]))
        sweeper.sweep(_still_waiting, self._resume)

    def _resume(self, aggregate):
        if isinstance(aggregate, LineItem):
            self.dispatch(ESTIMATE_REQUESTED, {"line_item": f"/line-item/{aggregate.id}/"})
        else:
            self.dispatch(CLONE_REQUESTED, {"clone": str(aggregate.id),
                                            "source": parse_uri(aggregate.fields["cloned_from"])[1]})

    @rpc
    def create(self, resource, payload, ctx):
        result = super().create(resource, payload, self._with_model_state(resource, payload, ctx))
        self._request_estimate(resource, result["uri"], payload)
        return result

    @rpc
    def update(self, resource, uuid, payload, ctx):
        result = super().update(resource, uuid, payload, self._with_model_state(resource, payload, ctx))
        self._request_estimate(resource, result["uri"], payload)
        return result

    @rpc
    def delete(self, resource, uuid, ctx):
        """orders.md §1.1, §1.3: an order or line item whose prints are in a run is in production: not deletable."""
        if resource == "line-item":
            check_no_prints_in_runs(self._prints(f"/line-item/{uuid}/", ctx), LINE_ITEM_IN_PRODUCTION)
        elif resource == "order":
            order = self.app.read("order", uuid, ctx)
            for line_item in order.get("line_items") or []:
                check_no_prints_in_runs(self._prints(line_item, ctx), ORDER_IN_PRODUCTION)
        return super().delete(resource, uuid, ctx)

    def _prints(self, line_item_path, ctx):
        return self.services.call("production", "referencing", "print", "line_item", line_item_path, ctx)

    def _with_model_state(self, resource, payload, ctx):
        """A line item naming a model carries the model's state, as the files service knows it, into the rules."""
        model = payload.get("model") if resource == "line-item" and isinstance(payload, dict) else None
        if not model:
            return ctx
        try:
            model_uuid = parse_uri(model)[1]
        except ValueError:
            return ctx  # not a URI: validation answers that
        path = f"/model/{model_uuid}/"
        try:
            state = self.services.call("files", "get", "model", model_uuid, ctx)
        except NotFound:
            state = {"status": "missing"}
        return dict(ctx, model_states={path: state})

    def _request_estimate(self, resource, uri, payload):
        if resource == "line-item" and any(key in payload for key in ESTIMATE_INPUTS):
            self.dispatch(ESTIMATE_REQUESTED, {"line_item": uri})

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
                return
            model = self.services.call("files", "get", "model", parse_uri(item["model"])[1], INTERNAL)
            estimates, error = None, None
            if model.get("status") in UNPRINTABLE_MODEL_STATUSES or model.get("virus_scan") == "quarantined":
                error = NOT_PRINTABLE
            elif model.get("volume_mm") is None:
                return  # not analysed yet: MODEL_ANALYZED brings us back
            else:
                base = (item.get("materials") or {}).get("base")
                material = dict(self.services.call("materials", "get", "material", parse_uri(base)[1], INTERNAL),
                                uri=base) if base else None
                order = self.app.read("order", parse_uri(item["order"])[1], INTERNAL) if item.get("order") else {}
                estimates = dict(estimate(model, item.get("quantity") or 1, material, None, order.get("currency")),
                                 model=item["model"])
            digest = hashlib.sha256(json.dumps([estimates, error], sort_keys=True).encode()).hexdigest()[:16]
            result = self.app.record_estimates(uuid, estimates, error, f"estimate:{uuid}:{digest}")
        except StratumError as error:  # a deleted line item, a missing material: nothing to estimate
            log.warning("no estimate for %s: %s", line_item_path, error.title)
            return
        self._announce(result)

    @rpc
    def act(self, resource, uuid, action, payload, ctx):
        result = super().act(resource, uuid, action, payload, ctx)
        if result.get("clone_of"):
            # The copy of products and line items runs from a durable queue, after this command has committed.
            self.dispatch(CLONE_REQUESTED, {"clone": result["uri"].split("/")[2], "source": result["clone_of"]})
        return result

    @event_handler("orders", CLONE_REQUESTED)
    def complete_clone(self, payload):
        try:
            position = self.app.complete_clone(payload["clone"], payload["source"])
        except Exception as error:  # a failed copy shows on the order (status error), it is not silently dropped
            log.exception("clone %s failed", payload["clone"])
            position = self.app.fail_clone(payload["clone"], f"Cloning failed: {error}")
        if position:
            self._announce({"application": self.app.name, "position": position})


def _still_waiting(aggregate):
    if isinstance(aggregate, LineItem):
        return not aggregate.deleted and out_of_date(aggregate.fields)
    return aggregate.fields.get("status") == "cloning" and bool(aggregate.fields.get("cloned_from"))

"""The production service: its resources' commands (shared.service), the follower of the orders feed that plans
pieces and prints (services.production.planning) and the follower of the capture feed that moves runs by their
machines' builds (services.production.builds)."""
import logging

from nameko.timer import timer

from services.production.application import Production
from services.production.create_runs_job import CreateRunsJobs
from services.production.packing.service import LayoutJobs
from services.production.rework_job import RunTransformationJobs
from shared.amqp import event_handler
from shared.errors import StratumError
from shared.eventstore import EventStore
from shared.follower import CATCH_UP_INTERVAL, pull
from shared.service import NEWS_EVENT, ResourceService, rpc
from shared.uris import parse_uri

log = logging.getLogger(__name__)
INTERNAL = {"platform_admin": True}
FOLLOWED = "orders"
CAPTURE = "capture"  # F6 step 5: builds move their runs
WORKFLOW_REPLACED = "workflow_replaced"  # published by production after a /workflow/{uuid}/replace/ committed


# the jobs of /layout/, /run-transformation/, /create-runs/ and /packing-process/
class ProductionService(LayoutJobs, RunTransformationJobs, CreateRunsJobs, ResourceService):
    name = "production"
    app = EventStore(Production)

    @rpc
    def workflow_facts(self, workflow_path, ctx):
        return self.app.workflow_facts(workflow_path, ctx)

    # -- following the orders feed (F1) ---------------------------------------------------------------------------

    @event_handler(FOLLOWED, NEWS_EVENT)
    def on_orders_news(self, payload):
        self._follow(news=payload)

    @timer(interval=CATCH_UP_INTERVAL)
    def catch_up(self):
        self._follow()
        self._follow_capture()

    def _follow(self, news=None):
        pull(self.app, self.services, FOLLOWED,
             lambda feed: self.app.apply_feed(FOLLOWED, feed, self._model_name), self._announce, news=news)

    # -- following the capture feed (F6 step 5) -----------------------------------------------------------------------

    @event_handler(CAPTURE, NEWS_EVENT)
    def on_capture_news(self, payload):
        self._follow_capture(news=payload)

    def _follow_capture(self, news=None):
        pull(self.app, self.services, CAPTURE, self.app.apply_capture_feed, self._announce, news=news)

    def _model_name(self, model_path):
        try:
            return self.services.call("files", "get", "model", parse_uri(model_path)[1], INTERNAL).get("name")
        except StratumError:
            return None

    # -- F6: line items follow a replaced workflow --------------------------------------------------------------------

    def _command(self, verb, resource, uuid, payload, ctx, run):
        result = super()._command(verb, resource, uuid, payload, ctx, run)
        if verb == "act" and result.get("replaced") and result.get("repoint"):
            self._repoint(result, ctx)
        return result

    def _repoint(self, result, ctx):
        """The line items a replacement moves to the new workflow (their owner, the orders service, records it; the
        feed brings the change back here, and planning re-plans their unstarted prints)."""
        for line_item in result["repoint"]:
            command = dict(ctx, internal=True, command_id=f"replace:{result['uri']}:{line_item}")
            self.services.call("orders", "update", "line-item", parse_uri(line_item)[1],
                               {"workflow": result["uri"]}, command)

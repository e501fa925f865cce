"""The materials service: the generic resource commands (shared.service), the genealogy read, and flow F3: it
follows production's feed (completed runs, shared.follower) and tells production what each run consumed
(services.materials.consumption). The traceability reports' background jobs run here too
(services.materials.reports)."""
import logging

from nameko.timer import timer

from services.materials.application import INTERNAL, Materials
from services.materials.consumption import PRODUCTION, RUN_CONSUMPTION_RECORDED, RunConsumption, additive_id
from services.materials.genealogy_projection import projection_of
from services.materials.reports import REPORT_CLASSES, REPORT_REQUESTED, ReportJob
from shared.blobstore import Blobs
from shared.amqp import event_handler
from shared.errors import StratumError
from shared.eventstore import EventStore
from shared.follower import CATCH_UP_INTERVAL, pull
from shared.service import NEWS_EVENT, ResourceService, rpc
from shared.sweep import changed_within, sweep_timer, sweeper_for
from shared.uris import resource_path

log = logging.getLogger(__name__)


class MaterialsService(ResourceService):
    name = "materials"
    app = EventStore(Materials)
    blobs = Blobs()

    @rpc
    def genealogy(self, batch_uuid, ctx):
        """GET /material-genealogy/ (the gateway asks; the trees are built on read, services.materials.genealogy)."""
        return self.app.genealogy(batch_uuid, ctx)

    @timer(interval=CATCH_UP_INTERVAL)
    def keep_genealogy_current(self):
        """The stored genealogy projection follows the store between answers, so that an answer has little to catch
        up (services.materials.genealogy_projection)."""
        try:
            projection_of(self.app).catch_up()
        except Exception:  # the store may be away: the next tick, or the next answer, catches up
            log.warning("the genealogy projection could not catch up; will retry", exc_info=True)

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

    # -- traceability reports (background jobs) ------------------------------------------------------------------------

    @event_handler("materials", REPORT_REQUESTED)
    def make_report(self, payload):
        try:
            ReportJob(self.app, self.blobs, self.services, self._announce).run(payload["report"])
        except Exception:  # nameko would ack and drop it anyway; the sweep starts it again
            log.exception("traceability report job %s failed", payload)

    @sweep_timer(interval=30)
    def resume_reports(self):
        """Reports still pending or processing long after they were asked for (a lost message, a killed service)
        are asked for again; the job's steps are idempotent."""
        grace = int(self.config["STRATUM_SWEEP_SECONDS"])
        sweeper = sweeper_for(self.app, "reports", [(cls, cls.Created) for cls in REPORT_CLASSES], grace)

        def resume(report):
            if changed_within(report, grace):
                return  # asked for or started just now: look again later
            self.dispatch(REPORT_REQUESTED, {"report": resource_path(report.resource, report.id)})

        sweeper.sweep(lambda report: isinstance(report, REPORT_CLASSES) and report.waiting, resume)

    # -- telling production what a run consumed -------------------------------------------------------------------------

    @event_handler("materials", RUN_CONSUMPTION_RECORDED)
    def send_run_consumption(self, payload):
        self._send(payload["consumption"])

    @sweep_timer(interval=30)
    def resend_run_consumptions(self):
        """A consumption whose message a crash lost is found in the log and sent again (shared.sweep)."""
        sweeper = sweeper_for(self.app, "run-consumptions", [(RunConsumption, RunConsumption.Recorded)],
                              int(self.config["STRATUM_SWEEP_SECONDS"]))
        sweeper.sweep(lambda consumption: not consumption.sent,
                      lambda consumption: self.dispatch(RUN_CONSUMPTION_RECORDED, {"consumption": str(consumption.id)}))

    def _send(self, consumption_id):
        """Production's /run-actuals-additive/ for the consumption: one id and one command id whatever the repeats,
        so a second send is answered from production's receipt and creates nothing."""
        consumption = self.app.run_consumption(consumption_id)
        if consumption is None or consumption.sent:
            return
        if not consumption.fields.get("run_actual"):
            log.warning("run consumption %s: the run %s has no actuals; not sent", consumption_id,
                        consumption.fields.get("run"))
            return
        uuid = str(additive_id(consumption.id))
        ctx = dict(INTERNAL, internal=True, bureau=consumption.bureau, uuid=uuid,
                   command_id=f"materials:run-consumption:{consumption.id}")
        try:
            result = self.services.command(PRODUCTION, "create", "run-actuals-additive", consumption.additive(), ctx)
        except StratumError as error:
            log.warning("run consumption %s not sent to production: %s", consumption_id, error.title)
            return
        position = self.app.consumption_sent(consumption_id, result.get("uri") or resource_path(
            "run-actuals-additive", uuid))
        if position:
            self._announce({"application": self.app.name, "position": position})

    # -- where a batch sat (the capture service's /material_batch_sensor_data/ asks) ------------------------------------

    @rpc
    def batch_residency(self, batch_uuid, ctx):
        """The sub-locations a batch sat in, and when (services.materials.application.Materials.batch_residency)."""
        return self.app.batch_residency(batch_uuid, ctx)

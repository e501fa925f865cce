"""What the production service adds for `/layout/`: the job's message handler and the sweep that restarts lost
jobs. A mixin, so that the production service's own module only lists it (services/production/service.py)."""
import logging

from services.production.packing.job import LayoutJob
from services.production.packing.layout import LAYOUT_REQUESTED, Layout
from shared.amqp import event_handler
from shared.blobstore import Blobs
from shared.sweep import changed_within, sweep_timer, sweeper_for

log = logging.getLogger(__name__)


class LayoutJobs:
    blobs = Blobs()

    @event_handler("production", LAYOUT_REQUESTED)
    def pack_layout(self, payload):
        try:
            self._layout_job().run(payload["layout"])
        except Exception:  # nameko would ack and drop it anyway; the sweep starts it again
            log.exception("layout job %s failed", payload)

    def _layout_job(self):
        return LayoutJob(self.app, self.blobs, self.config, self._announce, self.services)

    @sweep_timer(interval=30)
    def resume_layouts(self):
        """Layouts still queued or processing long after they were asked for (a lost message, a killed service) are
        asked for again, unless their job shows signs of life (a progress event within the grace period)."""
        grace = int(self.config["STRATUM_SWEEP_SECONDS"])
        sweeper = sweeper_for(self.app, "layouts", ((Layout, Layout.Created),), grace)

        def resume(layout):
            if changed_within(layout, grace):
                return  # its job is alive: look again later
            self.dispatch(LAYOUT_REQUESTED, {"layout": f"/layout/{layout.id}/"})

        sweeper.sweep(lambda layout: isinstance(layout, Layout) and layout.waiting, resume)

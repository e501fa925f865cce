"""The projector: a process of its own that keeps the read side up to date with every service's events.

Each service's `events_recorded` doorbell triggers a pull of that service's feed; a timer pulls all feeds anyway,
so a lost doorbell (or one rung while the projector was down) costs a few seconds, never an event.

On SQLite, a ring whose commands' callers apply their events themselves (shared.service.CALLER_APPLIES: the
gateway, for read-your-writes) is left to them. There the projector and the gateway are two processes taking turns
at the database's one writer lock: the loser of each race for the same events waited (in SQLite's C code, its whole
event loop with it) and began a write transaction that found nothing left to apply, and each turn threw away the
other's page cache. Measured with `make bench --sqlite`, two pairs: 8.8 / 8.4 → 6.7 / 7.4 ms of CPU an order, 137 /
144 → 169 / 151 orders/s, but the live lag at load p99 68 / 59 → 79 / 102 ms. On PostgreSQL the projector applies such
a ring at once on the other core, in parallel with a busy gateway: leaving it to the gateway saved ~0.6 ms of CPU an
order there but raised the lag at load by 6-8 ms at p99 (and a 25 ms grace before backing the gateway up made
throughput, CPU and lag all worse), so PostgreSQL keeps the race. A caller that fails to apply (its deadline past,
its process gone) leaves the events to the timer on SQLite, as a lost doorbell does.
"""
import logging

from nameko.timer import timer

from gateway.readside import FOLLOWED_SERVICES, ReadSide
from shared.amqp import event_handler
from shared.rpc import Services
from shared.service import CALLER_APPLIES, NEWS_EVENT

log = logging.getLogger(__name__)
CATCH_UP_INTERVAL = 2  # seconds
PARKED_RETRY_INTERVAL = 60  # seconds between attempts to apply parked events again (gateway.readstore)


class ProjectorService:
    name = "projector"
    services = Services()
    read = ReadSide()

    def _catch_up(self, application, news=None):
        # with a ring's events: up to the ring's position (what comes later rings on its own, or the timer pulls it)
        until = news["last"] if news else None
        return self.read.catch_up(application, self.services.fetcher(application), until=until, news=news)

    @timer(interval=CATCH_UP_INTERVAL)
    def catch_up_all(self):
        for application in FOLLOWED_SERVICES:
            try:
                self._catch_up(application)
            except Exception:  # one unreachable service must not stop the others' projection
                log.warning("catch-up of %s failed; will retry", application, exc_info=True)

    @timer(interval=PARKED_RETRY_INTERVAL)
    def retry_parked(self):
        """Events the read side could not apply are tried again, so a fix (a new release, a repaired database)
        heals the read side without a rebuild."""
        for application in sorted({row.application for row in self.read.store.parked()}):
            try:
                still = self.read.store.retry_parked(application, self.services.fetcher(application))
                if still:
                    log.error("%s: events of %d resource(s) are still parked (see /health/ready)", application,
                              len(still))
            except Exception:
                log.warning("retrying parked events of %s failed; will retry", application, exc_info=True)

    def _handle_news(self, application, payload):
        if payload.get(CALLER_APPLIES) and self.read.store.is_sqlite:  # left to the caller (see the docstring)
            return
        # Usually the gateway has already caught up on its own write: then there is nothing to pull, and no RPC. A ring
        # carrying its events needs no such check: the catch-up stops at the ring's position, which it reads anyway
        # (under the follower's lock); a ring without them would pull the feed, so it is checked first.
        if "events" not in payload and self.read.store.position(application) >= int(payload.get("position") or 0):
            return
        try:
            # the ring's own events (a command's, shared.service) are applied without a pull when they continue ours
            self._catch_up(application, news=payload if "events" in payload else None)
        except Exception:  # e.g. the service is stopping; the timer pulls whatever this doorbell announced
            log.warning("catch-up of %s after its doorbell failed; the timer will retry", application, exc_info=True)

    # One doorbell handler per followed service (nameko binds a handler to one source service).
    for _service in FOLLOWED_SERVICES:
        def _on_news(self, payload, _application=_service):
            self._handle_news(_application, payload)

        _on_news.__name__ = f"on_{_service}_news"
        locals()[_on_news.__name__] = event_handler(_service, NEWS_EVENT)(_on_news)
    del _service, _on_news

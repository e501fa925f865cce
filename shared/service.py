"""What every domain service exposes over RPC: the generic resource commands and its event feed.

After each commit the service rings the doorbell (`events_recorded`) on RabbitMQ. The doorbell may be lost or
repeated; followers never depend on it, they pull the feed (`get_notifications`) on every ring and on a timer.
"""
import logging

from nameko.events import EventDispatcher
from nameko.rpc import rpc as nameko_rpc

from shared.errors import StratumError

log = logging.getLogger(__name__)

NEWS_EVENT = "events_recorded"

# Domain errors are answers, not failures: log them without a traceback.
rpc = nameko_rpc(expected_exceptions=StratumError)


class ResourceService:
    """Subclasses set `name` and `app = EventStore(TheirApplication)`."""

    dispatch = EventDispatcher()

    @rpc
    def create(self, resource, payload, ctx):
        return self._announce(self.app.create(resource, payload, ctx))

    @rpc
    def update(self, resource, uuid, payload, ctx):
        return self._announce(self.app.update(resource, uuid, payload, ctx))

    @rpc
    def delete(self, resource, uuid, ctx):
        return self._announce(self.app.delete(resource, uuid, ctx))

    @rpc
    def act(self, resource, uuid, action, payload, ctx):
        return self._announce(self.app.act(resource, uuid, action, payload, ctx))

    @rpc
    def get(self, resource, uuid, ctx):
        return self.app.read(resource, uuid, ctx)

    @rpc
    def referencing(self, resource, field, target, ctx):
        return self.app.referencing(resource, field, target, ctx)

    @rpc
    def get_notifications(self, start, limit):
        return self.app.feed(start, limit)

    @rpc
    def max_position(self):
        return self.app.recorder.max_notification_id()

    def _announce(self, result):
        try:
            self.dispatch(NEWS_EVENT, {"application": result["application"], "position": result["position"]})
        except Exception:  # the commit stands; followers' timers will pull what the lost doorbell announced
            log.exception("could not publish %s for %s", NEWS_EVENT, result)
        return result

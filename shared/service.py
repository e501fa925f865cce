"""What every domain service exposes over RPC: the generic resource commands and its event feed.

After each commit the service rings the doorbell (`events_recorded`) on RabbitMQ. The doorbell may be lost or
repeated; followers never depend on it, they pull the feed (`get_notifications`) on every ring and on a timer.
The gateway applies its own commands' events to the read side (ctx CALLER_CATCHES_UP: they come back with the
result), so the projector usually finds nothing to pull; the ring still goes, because other followers (production
follows orders, notifications follows everyone) must hear of the write at once, not at their next timer. Writes at
the same moment share one ring (`Doorbell`): followers pull from their own position, so the highest position
announces them all. A ring whose every command was sent by a caller that applies it (CALLER_APPLIES) tells the
projector so: on SQLite it leaves those events to that caller instead of racing it for the one writer
(gateway.projector).

A command's ring also carries its events, as the feed gives them (`first`..`last`, every notification between them:
one transaction's notifications are consecutive). A follower whose position is `first - 1` or later applies them
without pulling (shared.follower.from_news), so one write costs its followers no RPC and its service no feed
decoding per follower; a follower that finds a gap before `first` pulls as before. Rings merged by the Doorbell keep
their events only when the slices are contiguous (another replica's writes may sit in a gap).
"""
import functools
import logging
import threading

import eventlet
from kombu.entity import TRANSIENT_DELIVERY_MODE
from nameko.dependency_providers import Config
from nameko.exceptions import serialize

from shared.amqp import EventDispatcher
from shared.application import CALLER_CATCHES_UP
from shared.amqp import rpc as amqp_rpc
from shared.errors import StratumError
from shared.rpc import COMMANDS, Services

log = logging.getLogger(__name__)

NEWS_EVENT = "events_recorded"
CALLER_APPLIES = "caller_applies"  # in a ring: the callers of its commands bring the read side up to its position
DOORBELL_EVENTS = 200  # events a ring carries at most (a bulk write rings its position only: followers pull)

# Domain errors are answers, not failures: log them without a traceback.
rpc = amqp_rpc(expected_exceptions=StratumError)


class Peers:
    """What a resource's `gather` hook may ask: other services by RPC, this service's own store and its settings."""

    def __init__(self, app, services, config):
        self.app = app
        self.services = services
        self.config = config

    def call(self, service, method, *args):
        return self.services.call(service, method, *args)


class ResourceService:
    """Subclasses set `name` and `app = EventStore(TheirApplication)`. Each command runs its resource class's
    `gather` (facts from other services) before, and publishes its `follow_ups` (background jobs) after."""

    dispatch = EventDispatcher()
    # doorbells go unconfirmed and transient (no broker round trip, no disk): a lost ring costs a follower its
    # catch-up interval, never an event (see the module's docstring); jobs' messages keep `dispatch`'s guarantees
    ring_doorbell = EventDispatcher(use_confirms=False, delivery_mode=TRANSIENT_DELIVERY_MODE)
    services = Services()
    config = Config()

    @rpc
    def commands(self, commands):
        """Several commands in one message (shared.rpc.CommandBatcher): run side by side, each exactly as if it had
        come alone; the answers in their order, each {"result": …} or {"error": the error as RPC sends it}."""
        def run(command):
            if command["method"] not in COMMANDS:
                return {"error": serialize(ValueError(f"{command['method']} is not a command"))}
            try:
                return {"result": getattr(self, command["method"])(*command["args"])}
            except Exception as error:
                if not isinstance(error, StratumError):
                    log.exception("command %s failed", command["method"])
                return {"error": serialize(error)}

        # the commands usually share one transaction (shared.application.GroupCommit), so their rings are held and
        # rung as one when all have run: one delivery to each follower for the message, not one per command
        self._held_rings = held = []
        try:
            return list(eventlet.GreenPool(len(commands) or 1).imap(run, commands))
        finally:
            self._held_rings = None
            if held:
                earliest, *later = sorted(held, key=lambda r: r["position"])
                self._ring(functools.reduce(_merged, later, earliest))

    @rpc
    def create(self, resource, payload, ctx):
        return self._command("create", resource, None, payload, ctx,
                             lambda c: self.app.create(resource, payload, c))

    @rpc
    def update(self, resource, uuid, payload, ctx):
        return self._command("update", resource, uuid, payload, ctx,
                             lambda c: self.app.update(resource, uuid, payload, c))

    @rpc
    def delete(self, resource, uuid, ctx):
        return self._command("delete", resource, uuid, {}, ctx, lambda c: self.app.delete(resource, uuid, c))

    @rpc
    def act(self, resource, uuid, action, payload, ctx):
        return self._command("act", resource, uuid, payload, ctx,
                             lambda c: self.app.act(resource, uuid, action, payload, c))

    def _command(self, verb, resource, uuid, payload, ctx, run):
        # the caller's promise holds for this command only, never for one a rule sends on to another service
        catches_up = bool(ctx.pop(CALLER_CATCHES_UP, False))
        aggregate_cls = self.app.aggregates.get(resource)
        if aggregate_cls is not None:
            ctx = aggregate_cls.gather(Peers(self.app, self.services, self.config), verb, uuid, payload, ctx)
        # the command's events always come back ("news"): the doorbell carries them; the caller gets them if it asked
        result = self._announce(run(dict(ctx, **{CALLER_CATCHES_UP: True})), hand_over=catches_up)
        for event_type, body in aggregate_cls.follow_ups(verb, result, payload) if aggregate_cls else ():
            try:
                self.dispatch(event_type, body)
            except Exception:  # the commit stands; the sweeper finds the waiting work in the log (shared.sweep)
                log.exception("could not publish %s %s; the sweeper will start it", event_type, body)
        return result

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

    def _announce(self, result, hand_over=False):
        """Ring the doorbell for a commit (`result`: application, position, and the command's `news` if it has it,
        which stays in the result only when `hand_over`)."""
        news = result.get("news") if hand_over else result.pop("news", None)
        ring = {"application": result["application"], "position": result["position"]}
        if hand_over:
            ring[CALLER_APPLIES] = True
        if news and news["last"] == result["position"] and len(news["events"]) <= DOORBELL_EVENTS:
            ring.update(first=news["first"], last=news["last"], events=news["events"])
        held = getattr(self, "_held_rings", None)
        if held is None:
            self._ring(ring)
        else:
            held.append(ring)
        return result

    def _ring(self, ring):
        _doorbell(ring["application"]).ring(lambda payload: self.ring_doorbell(NEWS_EVENT, payload), ring)


class Doorbell:
    """One ring for the writes of a moment: while a ring is being published, later writes only raise the position the
    next ring announces, and the ringing worker publishes that one too before it returns. The rings it merges keep
    their events while they continue each other without a gap (and stay under DOORBELL_EVENTS)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ringing = False
        self._next = None

    def ring(self, publish, news):
        with self._lock:
            if self._ringing:
                self._next = news if self._next is None else _merged(self._next, news)
                return
            self._ringing = True
        try:
            while news is not None:
                try:
                    publish(news)
                except Exception:  # the commit stands; followers' timers will pull what the lost doorbell announced
                    log.exception("could not publish %s for %s", NEWS_EVENT, news)
                with self._lock:
                    news, self._next = self._next, None
                    if news is None:
                        self._ringing = False
        except BaseException:  # the ringing worker killed (a stopping container): the bell must not stay taken
            with self._lock:
                self._ringing = False
            raise


SLICE = ("first", "last", "events")


def _merged(earlier, later):
    """One ring announcing both: the higher position, and the events of both when `later` continues `earlier`."""
    if later["position"] < earlier["position"]:
        earlier, later = later, earlier
    ring = {key: value for key, value in later.items() if key not in SLICE and key != CALLER_APPLIES}
    if earlier.get(CALLER_APPLIES) and later.get(CALLER_APPLIES):  # else the projector's: some caller does not apply
        ring[CALLER_APPLIES] = True
    if ("events" in earlier and "events" in later and earlier["last"] + 1 == later["first"]
            and len(earlier["events"]) + len(later["events"]) <= DOORBELL_EVENTS):
        ring.update(first=earlier["first"], last=later["last"], events=earlier["events"] + later["events"])
    return ring


_doorbells = {}


def _doorbell(application):
    return _doorbells.setdefault(application, Doorbell())

"""ResourceApplication: the command side every service shares (create / update / delete of catalogue resources),
idempotent per command_id, with optimistic-concurrency retries, and the public event feed the read side follows."""
import json
import logging
import random
import threading
import time
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import resolve_topic

from shared import catalogue, uris
from shared.errors import Conflict, InvalidPayload, NotFound, NotImplementedYet
from shared.index import ReferenceIndex
from shared.resource import Resource, UniqueKey
from shared.validation import validate

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 12
MAX_FEED_BATCH = 500
# A command's ctx carries this (true) when its caller makes the command's events visible on the read side itself
# (the gateway, for read-your-writes): the result then carries those events as the feed would give them ("news"),
# and the service rings no doorbell for them (shared.service).
CALLER_CATCHES_UP = "caller_catches_up"


class Unit:
    """One command's unit of work, handed to a resource's hooks: the caller (ctx) and the service's store."""

    def __init__(self, app, ctx):
        self.app = app
        self.ctx = ctx

    @property
    def actor(self):
        return self.ctx.get("user")

    @property
    def bureau(self):
        return self.ctx.get("bureau")

    def get(self, path):
        """The aggregate at a stored path (`/order/<uuid>/`), whoever owns it, or None."""
        try:
            return self.app.repository.get(UUID(uris.parse_uri(path)[1]))
        except (AggregateNotFoundError, ValueError):
            return None

    def load(self, resource_name, uuid):
        """The resource as the caller may see it (NotFound otherwise)."""
        return self.app.load(resource_name, uuid, self.ctx)

    def new(self, resource_name, new_id, fields, bureau=None):
        """A new resource of this service, created without the client-facing checks (the rule creating it made
        its fields)."""
        bureau = self.bureau if bureau is None else bureau
        return self.app.aggregates[resource_name].create(new_id, fields, bureau, self.actor)

    def claim_unique(self, namespace, key, value, message, field):
        return self.app.claim_unique(namespace, key, value, message, field)

    def outcome(self, aggregate, extra=(), result=None):
        return self.app.outcome(aggregate, self, extra, result)


class ResourceApplication(Application):
    """Subclasses set `name` (the store's table prefix and the feed's application name) and `aggregates`
    (catalogue resource name → aggregate class, from shared.registry.resource_classes)."""

    aggregates: dict = {}
    # (resource, field) pairs whose reverse lookup this service needs (see shared.index), e.g. ("print", "line_item")
    indexed_references = ()

    # -- commands ---------------------------------------------------------------------------------------------

    def create(self, resource_name, payload, ctx):
        spec = catalogue.resource(resource_name)
        aggregate_cls = self.aggregates.get(resource_name)
        if aggregate_cls is None:
            raise NotFound(f"The {self.name} service does not own '{resource_name}'.")
        payload = aggregate_cls.prepare(payload, ctx)
        if _is_bureau_reference(spec) and ctx.get("bureau"):
            payload = dict(payload)
            payload.setdefault("bureau", ctx["bureau"])  # a resource belongs to its creator's bureau by default
        fields = _check_tenant(spec, validate(spec, payload, partial=False, internal=_internal(ctx)), ctx)
        new_id = UUID(ctx["uuid"]) if ctx.get("uuid") else uuid4()
        unit = Unit(self, ctx)

        def command():
            complete, extra, result = aggregate_cls.on_create(unit, new_id, dict(fields))
            tenant = self.tenant_of(aggregate_cls, spec, new_id, complete, ctx)
            aggregate = aggregate_cls.create(new_id, complete, tenant, ctx.get("user"))
            return self.outcome(aggregate, unit, extra, result)

        return self._execute(ctx, command)

    def tenant_of(self, aggregate_cls, spec, new_id, fields, ctx):
        """The bureau a new resource belongs to: its class's say, else the one it names (checked against the
        caller's), else the caller's."""
        own = aggregate_cls.tenant_of(new_id, fields, ctx)
        if own is not None:
            return own
        if _is_bureau_reference(spec) and fields.get("bureau"):
            return fields["bureau"]
        return ctx.get("bureau")

    def outcome(self, aggregate, unit, extra=(), result=None):
        """What a command returns to `_execute`: the changed aggregate, anything saved with it (`extra` and the
        change's consequences), and the result naming the resource (a rule may name another, e.g. a bundle)."""
        aggregates = [aggregate, *extra, *aggregate.consequences(unit)]
        aggregates += self._index_entries(aggregates)
        return aggregates, {"uri": uris.resource_path(aggregate.resource, aggregate.id), **(result or {})}

    def _index_entries(self, aggregates):
        """Index aggregates to save with these resources, for the references this service declares."""
        entries = {}
        for each in aggregates:
            if not isinstance(each, Resource):
                continue
            for resource_name, field in self.indexed_references:
                target = each.fields.get(field) if each.resource == resource_name else None
                if not isinstance(target, str) or not target:
                    continue
                index_id = ReferenceIndex.id_for(resource_name, field, target)
                if index_id not in entries:
                    try:
                        entries[index_id] = self.repository.get(index_id)
                    except AggregateNotFoundError:
                        entries[index_id] = ReferenceIndex.start(resource_name, field, target)
                entries[index_id].add(uris.resource_path(resource_name, each.id))
        return [index for index in entries.values() if index.pending_events]

    def referencing(self, resource_name, field, target, ctx):
        """The resources of `resource_name` whose `field` is `target` now, as the caller may see them:
        [{"uri": path, "fields": public fields}]."""
        try:
            index = self.repository.get(ReferenceIndex.id_for(resource_name, field, target))
        except AggregateNotFoundError:
            return []
        found = []
        for path in index.paths:
            try:
                fields = self.read(resource_name, uris.parse_uri(path)[1], ctx)
            except NotFound:
                continue
            if fields.get(field) == target:
                found.append({"uri": path, "fields": fields})
        return found

    def claim_unique(self, namespace, key, value, message, field):
        """A claim of a unique key to save with the new resource; 400 `message` when it is taken already (the
        store's uniqueness check still guards the race between two creators)."""
        try:
            self.repository.get(UniqueKey.id_for(namespace, key))
        except AggregateNotFoundError:
            return UniqueKey.claim(namespace, key, value)
        raise InvalidPayload(message, field=field)

    def update(self, resource_name, uuid, payload, ctx):
        spec = catalogue.resource(resource_name)
        changes = _check_tenant(spec, validate(spec, payload, partial=True, internal=_internal(ctx)), ctx)
        unit = Unit(self, ctx)

        def command():
            aggregate = self.load(resource_name, uuid, ctx)
            aggregate.update(changes, ctx.get("user"))
            return self.outcome(aggregate, unit)

        return self._execute(ctx, command)

    def delete(self, resource_name, uuid, ctx):
        unit = Unit(self, ctx)

        def command():
            aggregate = self.load(resource_name, uuid, ctx)
            aggregate.check_deletable(unit)
            aggregate.delete(ctx.get("user"))
            return self.outcome(aggregate, unit)

        return self._execute(ctx, command)

    def act(self, resource_name, uuid, action, payload, ctx):
        """A per-uuid action (`/order/{uuid}/clone/`): the rule its resource's class marks with @action."""
        rule = self.aggregates[resource_name].actions().get(action) if resource_name in self.aggregates else None
        if rule is None:
            self.load(resource_name, uuid, ctx)  # an unknown or foreign resource is still a 404
            raise NotImplementedYet(f"The '{action}' action of {resource_name} is documented but not built yet.")
        unit = Unit(self, ctx)
        return self._execute(ctx, lambda: rule(self.load(resource_name, uuid, ctx), unit, payload))

    def read(self, resource_name, uuid, ctx):
        """A resource's public fields as the caller may see them (for other services' rules, over RPC)."""
        aggregate = self.load(resource_name, uuid, ctx)
        hidden = self.aggregates[resource_name].private_fields
        return {k: v for k, v in aggregate.fields.items() if k not in hidden and not k.startswith("_")}

    def load(self, resource_name, uuid, ctx):
        """The resource as the caller may see it: other bureaus' and deleted resources are NotFound."""
        spec = catalogue.resource(resource_name)
        try:
            aggregate = self.repository.get(UUID(str(uuid)))
        except (AggregateNotFoundError, ValueError):
            raise NotFound(spec.not_found) from None
        if not isinstance(aggregate, self.aggregates.get(resource_name, ())):
            raise NotFound(spec.not_found)
        aggregate.check_visible_to(None if ctx.get("platform_admin") else ctx.get("bureau"), spec.not_found)
        return aggregate

    def _execute(self, ctx, command):
        """Run `command` (→ aggregates, result) and save their events with a receipt for ctx['command_id'].

        A conflicting concurrent write to the same aggregate is retried on a fresh copy; a command_id seen before
        returns the first result and records nothing.
        """
        command_id = ctx.get("command_id") or str(uuid4())
        alone = False
        for attempt in range(MAX_CONFLICT_RETRIES):
            aggregates, result = command()
            # a generated secret is shown once: it is never stored, not even in the receipt
            receipt = UniqueKey.claim("command", command_id, {k: v for k, v in result.items() if k != "secret"})
            try:
                recordings = self.save(*aggregates, receipt) if alone else self._group_commit.save(
                    [*aggregates, receipt])
            except SharedConflict:
                alone = True  # a write in our group conflicted, maybe not ours: run again, saved on our own
                continue
            except IntegrityError:
                previous = self._receipt(command_id)
                if previous is not None:
                    return dict(previous, position=self.recorder.max_notification_id(), application=self.name)
                # someone else wrote this aggregate first: reload and try again, after a jittered pause so that
                # colliding writers spread out instead of colliding again
                time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 5)))
                continue
            position = max(r.notification.id for r in recordings)
            result = dict(result, position=position, application=self.name)
            if ctx.get(CALLER_CATCHES_UP):
                result["news"] = self.news(recordings)
            return result
        raise Conflict("The resource was changed by someone else too often; please try again.")

    @property
    def _group_commit(self):
        group = self.__dict__.get("_stratum_group_commit")
        if group is None:
            group = self.__dict__.setdefault("_stratum_group_commit", GroupCommit(self))
        return group

    def _receipt(self, command_id):
        try:
            return self.repository.get(UniqueKey.id_for("command", command_id)).value
        except AggregateNotFoundError:
            return None

    # -- the public feed ------------------------------------------------------------------------------------------

    def feed(self, start, limit):
        """Stored events from notification `start` on, as JSON-ready dicts the read side can project without
        knowing this service's domain classes. `last` is the last notification read (receipts included), so a
        follower can advance past notifications that carry no public event."""
        limit = max(1, min(int(limit), MAX_FEED_BATCH))
        notifications = self.recorder.select_notifications(start=int(start), limit=limit)
        events = [e for e in (self._public(n) for n in notifications) if e is not None]
        last = notifications[-1].id if notifications else None
        return {"application": self.name, "events": events, "last": last, "complete": len(notifications) < limit}

    def news(self, recordings):
        """What `feed` gives for the notifications one transaction recorded: `first`..`last`, every notification in
        between included (a transaction's notifications are consecutive: the store's table lock serialises them)."""
        notifications = sorted((r.notification for r in recordings), key=lambda n: n.id)
        events = [e for e in (self._public(n) for n in notifications) if e is not None]
        return {"application": self.name, "events": events, "first": notifications[0].id,
                "last": notifications[-1].id}

    def _public(self, notification):
        # The class first, from the stored topic: a notification that carries no public event (a command receipt, a
        # reference index entry: about half of a log) is not decoded at all.
        event_cls = resolve_topic(notification.topic)
        shapes = self.__dict__.get("_stratum_feed_shapes")
        if shapes is None:
            shapes = self.__dict__.setdefault("_stratum_feed_shapes", {})
        shape = shapes.get(event_cls)
        if shape is None:
            if not issubclass(event_cls, (Resource.Created, Resource.Updated, Resource.Deleted)):
                return None
            shape = shapes[event_cls] = _feed_shape(self.aggregates, event_cls)
        topic, resource_name, aggregate_cls, kind, names, named_fields = shape
        state = self._plain_state(notification, event_cls, kind)
        if state is None:  # anything the plain reading does not vouch for: eventsourcing's own decoding
            event = self.mapper.to_domain_event(notification)
            originator_id, actor, timestamp = event.originator_id, event.actor, event.timestamp.isoformat()
            state = {"fields": event.fields, "bureau": event.bureau} if kind == "created" else {}
            if hasattr(event, "changes"):
                state["changes"] = event.changes
        else:
            originator_id = notification.originator_id
            originator_id = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
            actor, timestamp = state["actor"], state["timestamp"]["_data_"]
        public = {
            "position": notification.id,
            "application": self.name,
            "resource": resource_name,
            "uuid": str(originator_id),
            "version": notification.originator_version,
            "event": topic,
            "user": actor,
            "timestamp": timestamp,
        }
        private = aggregate_cls.private_fields
        if kind == "created":
            public.update(kind="created", bureau=state["bureau"], fields=_without(state["fields"], private))
        elif kind == "updated":
            public.update(kind="updated", fields=_without(state["changes"], private))
        else:
            public.update(kind="deleted", fields={})
        # named from every change, private ones included (their names are public facts, their values are not): a
        # password change stored as a plain Updated by an older release is a UserPasswordChanged all the same
        if named_fields is not None:  # a plain Updated: named from the changes, when one of them has a name
            changes = state.get("changes", {})
            if not named_fields.isdisjoint(changes):
                public["names"] = aggregate_cls.event_names(event_cls, changes)
                return public
        public["names"] = list(names)
        return public

    _PLAIN_KEYS = {"created": ("timestamp", "actor", "fields", "bureau"), "updated": ("timestamp", "actor", "changes"),
                   "deleted": ("timestamp", "actor")}

    def _plain_state(self, notification, event_cls, kind):
        """The stored event's state as plain JSON (json.loads, no transcoding hook per object: a third of decoding a
        feed), when that is exactly what eventsourcing's mapper would give: no cipher, no compressor, no upcast, and
        the only transcoded value the timestamp (`{"_type_": "datetime_iso", "_data_": isoformat()}`: its `_data_`
        is what `timestamp.isoformat()` prints again). None otherwise: the caller decodes it the mapper's way."""
        mapper, state = self.mapper, notification.state
        if (mapper.cipher is not None or mapper.compressor is not None or type(state) is not bytes
                or state.count(b'"_type_"') != 1 or getattr(event_cls, "class_version", 1) != 1):
            return None
        plain = json.loads(state)
        stamp = plain.get("timestamp")
        if (type(stamp) is not dict or stamp.get("_type_") != "datetime_iso" or "class_version" in plain
                or any(key not in plain for key in self._PLAIN_KEYS[kind])):
            return None
        return plain


def _feed_shape(aggregates, event_cls):
    """What `ResourceApplication._public` needs of a public event's class, kept per application and class: (topic,
    resource name, aggregate class, kind, names, named fields). The names of a class are a function of the class
    alone (Resource.event_names), except a plain Updated's: a change of a field some named event class records adds
    that class's names (named fields: those fields, for a plain Updated; None for any other class)."""
    topic = event_cls.TOPIC  # "<service>/<resource>/<Event>": the resource is in the stable topic
    resource_name = topic.rpartition("/")[0].partition("/")[2]
    aggregate_cls = aggregates[resource_name]
    if issubclass(event_cls, Resource.Created):
        kind = "created"
    elif issubclass(event_cls, Resource.Updated):
        kind = "updated"
    else:
        kind = "deleted"
    names = tuple(aggregate_cls.event_names(event_cls, {}))
    named_fields = None
    if event_cls is aggregate_cls.Updated:
        named_fields = frozenset(named.field for named in aggregate_cls._named_classes())
    return topic, resource_name, aggregate_cls, kind, names, named_fields


class SharedConflict(Exception):
    """A group's transaction was refused for a conflict (IntegrityError) that may be any member's."""


class GroupCommit:
    """Commands of one process that are ready to save at the same time are saved in one transaction.

    The store serialises every recording transaction anyway (eventsourcing takes the events table's lock in each),
    so a command that finds another's transaction running waits for it; meanwhile others queue up behind it, and the
    next one to get the turn saves everything queued, in one transaction, in the order the commands got ready.
    Each command gets back its own recordings: its events are consecutive in the log, its position is its own.
    A group holds each aggregate once (a second command on an aggregate waits for the next group, where a stale
    copy conflicts as it would alone). When the group's transaction is refused for a conflict, nobody knows whose
    write conflicted: every member runs its command again and saves it on its own (SharedConflict); any other
    failure is every member's."""

    MAX_GROUP = 64

    def __init__(self, app):
        self.app = app
        self.turn = threading.Lock()  # green under eventlet: one group's transaction at a time
        self.guard = threading.Lock()
        self.queue = []

    def save(self, objs):
        entry = {"objs": objs, "done": False, "recordings": None, "error": None}
        with self.guard:
            self.queue.append(entry)
        while not entry["done"]:
            with self.turn:
                if not entry["done"]:
                    self._save_group()
        if entry["error"] is not None:
            raise entry["error"]
        return entry["recordings"]

    def _save_group(self):
        with self.guard:
            group, held, later = [], set(), []
            for entry in self.queue:
                ids = {obj.id for obj in entry["objs"]}
                if ids & held or len(group) >= self.MAX_GROUP:
                    later.append(entry)
                else:
                    group.append(entry)
                    held |= ids
            self.queue = later
        try:
            recordings = self.app.save(*[obj for entry in group for obj in entry["objs"]])
        except IntegrityError as error:
            for entry in group:
                entry["error"] = error if len(group) == 1 else SharedConflict()
        except Exception as error:
            for entry in group:
                entry["error"] = error
        else:
            owner = {obj.id: entry for entry in group for obj in entry["objs"]}
            for entry in group:
                entry["recordings"] = []
            for recording in recordings:
                owner[recording.domain_event.originator_id]["recordings"].append(recording)
        for entry in group:
            entry["done"] = True


def _internal(ctx):
    """A command from another service (not relayed from an HTTP client, whose ctx the gateway builds and never marks
    internal) may set read-only fields: they are read-only to clients because the system sets them."""
    return bool(ctx.get("internal"))


def _is_bureau_reference(spec):
    field = spec.fields.get("bureau")
    return field is not None and field.type == "uri"  # (a quote's `bureau` is an external bureau's name)


def _check_tenant(spec, fields, ctx):
    """Nobody writes a resource into a bureau other than their own (platform administrators excepted)."""
    if ctx.get("platform_admin"):
        return fields
    if _is_bureau_reference(spec) and ctx.get("bureau") and fields.get("bureau") not in (None, ctx["bureau"]):
        raise InvalidPayload("'bureau' must be your own bureau.", field="bureau")
    return fields


def _without(fields, private):
    return {k: v for k, v in fields.items() if k not in private}

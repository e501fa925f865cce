"""One materials command's working set: every aggregate it reads or changes, loaded once (a batch touched twice by a
blend is one object), checked against the caller's bureau, and handed back to be saved in one transaction."""
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from shared import catalogue
from shared.errors import InvalidPayload, NotFound
from shared.resource import Resource
from shared.uris import normalise, parse_uri, resource_path


def path_of(value, kind, field):
    """A URI in any accepted form → its stored path, which must name a `kind` (400 naming the field otherwise)."""
    try:
        path = normalise(value)
    except (TypeError, ValueError):
        raise InvalidPayload(f"'{field}' must be a {kind} URI, not {value!r}.", field=field) from None
    if parse_uri(path)[0] != kind:
        raise InvalidPayload(f"'{field}' must be a {kind} URI, not {value!r}.", field=field)
    return path


class Work:
    def __init__(self, unit):
        self.unit = unit
        self.loaded = {}  # id → aggregate
        self.created = []
        self.lots_to_total = set()

    @property
    def actor(self):
        return self.unit.actor

    def _get(self, uuid):
        if uuid not in self.loaded:
            try:
                self.loaded[uuid] = self.unit.app.repository.get(uuid)
            except AggregateNotFoundError:
                return None
        return self.loaded[uuid]

    def find(self, path):
        """The aggregate at a stored path, whoever owns it, or None (internal bookkeeping)."""
        if not path:
            return None
        try:
            return self._get(UUID(parse_uri(path)[1]))
        except ValueError:
            return None

    def visible(self, kind, value, field):
        """The `kind` resource a payload names, as the caller may see it: another bureau's, a deleted one or none at
        all is the kind's documented 404."""
        path = path_of(value, kind, field)
        found = self.find(path)
        spec = catalogue.resource(kind)
        if not isinstance(found, Resource) or found.resource != kind:
            raise NotFound(spec.not_found)
        ctx = self.unit.ctx
        found.check_visible_to(None if ctx.get("platform_admin") else ctx.get("bureau"), spec.not_found)
        return found

    def new(self, resource_name, new_id, fields, bureau):
        aggregate = self.unit.app.aggregates[resource_name].create(new_id, fields, bureau, self.actor)
        self.loaded[aggregate.id] = aggregate
        self.created.append(aggregate)
        return aggregate

    def changed(self, exclude=()):
        """Every aggregate of this command with events to save (new ones included), but those in `exclude`."""
        skip = {a.id for a in exclude}
        return [a for a in self.loaded.values() if a.pending_events and a.id not in skip]


def path(aggregate):
    return resource_path(aggregate.resource, aggregate.id)

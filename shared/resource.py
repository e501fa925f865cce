"""The event-sourced resource: one aggregate shape (created / updated / deleted) that every catalogue resource uses.

Services subclass `Resource` to add their domain rules (invariants, state machines, computed fields); the events keep
the same three kinds, so the read side can project any resource without knowing its domain.
"""
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate

from shared.errors import NotFound


class Resource(Aggregate):
    """A catalogue resource as an aggregate. `fields` holds the resource's documented fields."""

    resource = None  # catalogue name, e.g. "order"
    private_fields = ()  # never leave the owning service (e.g. password hashes)
    # Domain event names a change also carries (the maps' §5 catalogues), so consumers such as notifications
    # react to "OrderStatusChanged" rather than diffing fields: field → suffix, and status value → suffix.
    CHANGE_EVENTS = {}
    STATUS_EVENTS = {}

    class Created(Aggregate.Created):
        fields: dict
        bureau: str | None
        actor: str | None

    class Updated(Aggregate.Event):
        changes: dict
        actor: str | None

        def apply(self, aggregate):
            aggregate.fields.update(self.changes)

    class Deleted(Aggregate.Event):
        actor: str | None

        def apply(self, aggregate):
            aggregate.deleted = True

    def __init__(self, fields, bureau, actor):
        self.fields = dict(fields)
        self.bureau = bureau
        self.deleted = False

    @classmethod
    def create(cls, id, fields, bureau, actor):
        """Subclasses override to compute fields or check invariants, then call super()."""
        return cls._create(cls.Created, id=id, fields=fields, bureau=bureau, actor=actor)

    def update(self, changes, actor):
        """Record the fields that really change; an update that changes nothing records nothing."""
        changed = {k: v for k, v in changes.items() if self.fields.get(k) != v}
        if changed:
            self.trigger_event(self.Updated, changes=changed, actor=actor)

    def delete(self, actor):
        self.trigger_event(self.Deleted, actor=actor)

    @classmethod
    def event_names(cls, event_class, changes):
        """Names of one stored event: `<Aggregate><Event>` (OrderCreated, ModelAnalyzed), plus one per documented
        consequence of the change (OrderStatusChanged, LineItemConfirmed). A pure function of the stored event,
        so a rebuilt feed names events exactly as the live one did."""
        names = [cls.__name__ + event_class]
        if event_class != "Created":
            names += [cls.__name__ + suffix for field, suffix in cls.CHANGE_EVENTS.items() if field in changes]
        status = changes.get("status")
        if isinstance(status, str) and status in cls.STATUS_EVENTS:
            names.append(cls.__name__ + cls.STATUS_EVENTS[status])
        return names

    def check_visible_to(self, bureau, not_found_message):
        """Deleted resources and other bureaus' resources do not exist for the caller."""
        if self.deleted or (bureau is not None and self.bureau is not None and self.bureau != bureau):
            raise NotFound(not_found_message)


class UniqueKey(Aggregate):
    """A value stored under a unique (namespace, key). Saved in the same transaction as the events it guards, so a
    second claim of the same key fails the store's uniqueness check. Used for command receipts (a retried
    command_id is answered from its receipt instead of running twice; RPC delivery is at-least-once) and for login
    names (unique, and how login finds its user)."""

    class Claimed(Aggregate.Created):
        value: dict

    def __init__(self, value):
        self.value = value

    @staticmethod
    def id_for(namespace, key):
        return uuid5(NAMESPACE_URL, f"stratum:{namespace}:{key}")

    @classmethod
    def claim(cls, namespace, key, value):
        return cls._create(cls.Claimed, id=cls.id_for(namespace, key), value=value)

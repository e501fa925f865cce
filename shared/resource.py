"""The event-sourced resource: the one aggregate shape every catalogue resource has, with or without rules.

A resource without rules is this class as it is (created / updated / deleted). A resource with rules subclasses it
in its service's `domain` package: each command is a method that checks its rule and emits a named event class
(`LineItem.change_status` → `LineItem.StatusChanged`), and the hooks below are methods of the class. Named events
are `Updated` subclasses carrying their field changes, so the read side projects every resource without knowing
its domain. Stored topics come from shared.registry, never from where a class lives.
"""
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate

from shared.errors import NotFound
from shared.topics import name_aggregate


def action(name):
    """Marks a method as the rule of the per-uuid action `name` (`/order/{uuid}/clone/`): called on the loaded
    resource as `method(unit, payload)`, it returns (aggregates to save, result)."""
    def mark(method):
        method.action_name = name
        return method
    return mark


class Resource(Aggregate):
    """A catalogue resource as an aggregate. `fields` holds the resource's documented fields."""

    resource = None  # catalogue name, e.g. "order"
    private_fields = ()  # never leave the owning service (e.g. password hashes)

    class Created(Aggregate.Created):
        fields: dict
        bureau: str | None
        actor: str | None

    class Updated(Aggregate.Event):
        """Field changes. Subclasses name a fact; `field` (and `value`) say which change a named class records,
        so `update` emits it and a stored plain `Updated` from an older release is named the same way."""
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

    # -- commands every resource has ---------------------------------------------------------------------------

    @classmethod
    def create(cls, id, fields, bureau, actor):
        """Subclasses override to compute fields or check invariants, then call super()."""
        return cls._create(cls.Created, id=id, fields=fields, bureau=bureau, actor=actor)

    def update(self, changes, actor):
        """Record the fields that really change, each named change as its own event class (PriorityChanged), the
        rest as one `Updated`; an update that changes nothing records nothing."""
        changed = {k: v for k, v in changes.items() if self.fields.get(k) != v}
        plain = {}
        for key, value in changed.items():
            named = self.named_change(key, value)
            if named is None:
                plain[key] = value
            else:
                self.trigger_event(named, changes={key: value}, actor=actor)
        if plain:
            self.trigger_event(self.Updated, changes=plain, actor=actor)

    def delete(self, actor):
        self.trigger_event(self.Deleted, actor=actor)

    # -- hooks: rules that need more than this aggregate (a unit of work gives the store and the caller) ---------

    @classmethod
    def prepare(cls, payload, ctx):
        """The client's payload before validation (normalise a shape the catalogue cannot describe)."""
        return payload

    @classmethod
    def tenant_of(cls, new_id, fields, ctx):
        """The bureau a new resource belongs to, when it is not the one it names or the caller's."""
        return None

    @classmethod
    def on_create(cls, unit, new_id, fields):
        """Rules at creation: (fields to store, other aggregates saved with the new one, extra result fields)."""
        return fields, [], {}

    def consequences(self, unit):
        """Other aggregates this change forces in the same transaction, already changed."""
        return []

    def check_deletable(self, unit):
        """Raise the documented error when this resource may not be deleted now."""

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """Facts from other services a command needs (run in the service, over RPC): returns the ctx to use."""
        return ctx

    @classmethod
    def follow_ups(cls, verb, result, payload):
        """Messages to publish once a command has committed: [(event type, payload)] (background jobs)."""
        return []

    @classmethod
    def actions(cls):
        """The per-uuid actions this resource has rules for: name → method (see `action`)."""
        found = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                name = getattr(value, "action_name", None)
                if name:
                    found[name] = value
        return found

    # -- names of stored events (the maps' §5 catalogues) --------------------------------------------------------

    @classmethod
    def named_change(cls, key, value):
        """The named event class recording a change of `key` to `value`, or None for a plain update."""
        best = None
        for event_cls in cls._named_classes():
            if event_cls.field != key:
                continue
            wanted = getattr(event_cls, "value", None)
            if wanted is not None and wanted != value:
                continue
            if best is None or issubclass(event_cls, best):
                best = event_cls
        return best

    @classmethod
    def _named_classes(cls):
        return [value for value in vars(cls).values()
                if isinstance(value, type) and issubclass(value, Resource.Updated) and getattr(value, "field", None)]

    @classmethod
    def event_names(cls, event_cls, changes):
        """Names of one stored event, general first: `<Resource><Kind>` for each class from the kind down
        (OrderUpdated, OrderStatusChanged, OrderConfirmed). A plain `Updated` (as older releases stored every
        change) also carries the names its changes would have today. A pure function of the stored event."""
        names = _chain_names(cls, event_cls)
        if event_cls is cls.Updated:
            for key, value in changes.items():
                named = cls.named_change(key, value)
                if named is not None:
                    names += [n for n in _chain_names(cls, named) if n not in names]
        return names

    def check_visible_to(self, bureau, not_found_message):
        """Deleted resources and other bureaus' resources do not exist for the caller."""
        if self.deleted or (bureau is not None and self.bureau is not None and self.bureau != bureau):
            raise NotFound(not_found_message)


def _chain_names(aggregate_cls, event_cls):
    """`Order.Confirmed` (← StatusChanged ← Updated) → [OrderUpdated, OrderStatusChanged, OrderConfirmed]."""
    prefix = _display_name(aggregate_cls)
    kinds = (Resource.Created, Resource.Updated, Resource.Deleted)
    chain = []
    for klass in event_cls.__mro__:
        if not (isinstance(klass, type) and any(issubclass(klass, kind) for kind in kinds)):
            continue
        name = klass.__name__
        if name not in chain:
            chain.append(name)
        if klass in kinds:
            break
    return [prefix + name for name in reversed(chain)]


def _display_name(aggregate_cls):
    return getattr(aggregate_cls, "display_name", None) or aggregate_cls.__name__


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


name_aggregate(UniqueKey, "shared/unique-key", legacy=["shared.resource:UniqueKey"])

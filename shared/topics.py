"""Stable event topics: a stored event is named by what it means (`production/run/StatusChanged`), never by the
Python module that happens to hold its class, so a resource can get its own class, move or be renamed without a
migration. Topics that earlier releases wrote keep loading through aliases (see LEGACY_TOPICS).

Every aggregate class a service stores goes through `name_aggregate` once, when the service's classes are built
(shared.registry); eventsourcing then writes `TOPIC` into each new event and resolves stored topics from its cache.
"""
import re

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import register_topic

# Topics written before stable topics existed, by aggregate: the module that held the class then. Each class's
# events were stored as `<module>:<Class>.<Event>`. Every catalogue resource started generic (`shared.generic`);
# these got hand-written classes in the modules below before release 0.2. Never remove an entry: stores written by
# those releases hold these topics for ever.
LEGACY_MODULES = {
    ("orders", "order"): "services.orders.domain:Order",
    ("orders", "line-item"): "services.orders.domain:LineItem",
    ("orders", "comment"): "services.orders.domain:Comment",
    ("orders", "comment-action"): "services.orders.domain:CommentAction",
    ("identity", "bureau"): "services.identity.domain:Bureau",
    ("identity", "users"): "services.identity.domain:User",
    ("identity", "api_tokens"): "services.identity.domain:ApiToken",
    ("identity", "role"): "services.identity.domain:Role",
    ("identity", "sessions"): "services.identity.domain:Session",
    ("files", "model"): "services.files.domain:Model",
    ("files", "asset"): "services.files.domain:Asset",
    ("files", "design-file"): "services.files.domain:DesignFile",
    ("files", "build-file"): "services.files.domain:BuildFile",
    ("files", "document"): "services.files.domain:Document",
    ("files", "file"): "services.files.domain:File",
    ("files", "zipfile"): "services.files.domain:Zipfile",
}
LEGACY_GENERIC_MODULE = "shared.generic"


def legacy_class_name(resource_name):
    """The class name release 0.1 gave a generic resource: `line-item` → `LineItem`, `api_tokens` → `ApiTokens`."""
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]+", resource_name) if part)


def legacy_topics(service, resource_name):
    """Every aggregate topic a resource's class was stored under before stable topics."""
    found = [f"{LEGACY_GENERIC_MODULE}:{legacy_class_name(resource_name)}"]
    if (service, resource_name) in LEGACY_MODULES:
        found.append(LEGACY_MODULES[service, resource_name])
    return found


def event_classes(aggregate_cls):
    """The aggregate's own event classes by name (eventsourcing defines a subclass of each inherited one)."""
    return {name: value for name, value in vars(aggregate_cls).items()
            if isinstance(value, type) and issubclass(value, CanMutateAggregate) and name != "Event"}


def name_aggregate(aggregate_cls, topic, legacy=()):
    """Give the class the stable `topic` and each of its events `topic/<Event>`; make `legacy` aggregate topics (and
    their `<legacy>.<Event>` event topics) resolve to the same classes."""
    _name(aggregate_cls, topic)
    for old in legacy:
        _alias(old, aggregate_cls)
    for event_name, event_cls in event_classes(aggregate_cls).items():
        _name(event_cls, f"{topic}/{event_name}")
        _AGGREGATE_OF[event_cls] = aggregate_cls
        for old in legacy:
            _alias(f"{old}.{event_name}", event_cls)
    return aggregate_cls


def registered(topic):
    """The class a stable topic or a registered alias names, or None. Unlike eventsourcing's resolve_topic, this
    never falls back to importing `module:Class`, so a legacy topic loads because it is listed, not by chance."""
    return _REGISTERED.get(topic)


_REGISTERED = {}


def _alias(topic, cls):
    register_topic(topic, cls)
    _REGISTERED[topic] = cls


def aggregate_of(event_cls):
    """The aggregate class a named event class belongs to (None for one never named)."""
    return _AGGREGATE_OF.get(event_cls)


_AGGREGATE_OF = {}


def topic_of(cls):
    return cls.__dict__.get("TOPIC")


def _name(cls, topic):
    if topic_of(cls) not in (None, topic):
        raise ValueError(f"{cls.__qualname__} is named {topic_of(cls)!r} already, not {topic!r}")
    cls.TOPIC = topic
    _alias(topic, cls)

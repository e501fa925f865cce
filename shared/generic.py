"""Generic event-sourced resources: every catalogue resource a service owns without hand-written rules is still a
real aggregate (created / updated / deleted events) of its own class, so its stored topic names the resource."""
import re

from eventsourcing.utils import get_topic, register_topic

from shared import catalogue
from shared.resource import Resource

_cache = {}


def class_name(resource_name):
    """`line-item` → `LineItem`, `guideline/for-process-step` → `GuidelineForProcessStep`."""
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]+", resource_name) if part)


def generic_resource(resource_name):
    """The aggregate class of a resource without domain rules (one class per resource, registered by topic so
    stored events load back into it)."""
    if resource_name not in _cache:
        cls = type(class_name(resource_name), (Resource,), {"resource": resource_name, "__module__": __name__})
        for each in (cls, cls.Created, cls.Updated, cls.Deleted):
            register_topic(get_topic(each), each)
        _cache[resource_name] = cls
    return _cache[resource_name]


def aggregates_for(service, specific=None):
    """Aggregate classes for every resource `service` owns in the catalogue: the hand-written ones given as
    `specific` (resource name → class), generic ones for the rest."""
    specific = specific or {}
    owned = [spec.name for spec in catalogue.catalogue().values() if spec.service == service and not spec.special]
    return {name: specific.get(name) or generic_resource(name) for name in owned} | specific

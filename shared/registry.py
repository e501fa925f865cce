"""The one registry of a service's aggregate classes: a hand-written class for each resource with rules, the plain
`Resource` shape for every other catalogue resource the service owns, and for each class its stable topic
`<service>/<resource>` (events: `<service>/<resource>/<Event>`) with the aliases of the topics older releases wrote.
"""
from shared import catalogue
from shared.resource import Resource
from shared.topics import legacy_class_name, legacy_topics, name_aggregate, topic_of

_generic = {}


def generic_resource(service, resource_name):
    """The aggregate class of a resource without rules: `Resource` as it is, one class per resource."""
    key = (service, resource_name)
    if key not in _generic:
        cls = type(legacy_class_name(resource_name), (Resource,), {"resource": resource_name, "__module__": __name__})
        _generic[key] = _named(service, cls)
    return _generic[key]


def resource_classes(service, specific=()):
    """Aggregate classes for every resource `service` owns in the catalogue, by resource name: the hand-written
    classes given (each with its `resource` set), generic ones for the rest."""
    specific = {cls.resource: _named(service, cls) for cls in specific}
    owned = [spec.name for spec in catalogue.catalogue().values() if spec.service == service and not spec.special]
    return {name: specific.get(name) or generic_resource(service, name) for name in owned} | specific


def _named(service, cls):
    topic = f"{service}/{cls.resource}"
    if topic_of(cls) != topic:
        name_aggregate(cls, topic, legacy_topics(service, cls.resource))
    return cls

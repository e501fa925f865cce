"""Reverse references inside one service: which resources of a kind name a given target in a given field (the line
items printing a model, the prints of a line item). An event store answers "get by id", not "find by field", so
each service keeps, for the references it declares, one small index aggregate per target, saved in the same
transaction as the resource that points at it.

The index only grows; readers check each candidate's current value, so a reference that moved away or a deleted
resource is filtered out when read, never wrongly reported.
"""
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate

from shared.topics import name_aggregate


class ReferenceIndex(Aggregate):
    class Started(Aggregate.Created):
        key: str

    class Added(Aggregate.Event):
        path: str

        def apply(self, aggregate):
            aggregate.paths.append(self.path)

    def __init__(self, key):
        self.key = key
        self.paths = []

    @staticmethod
    def key_for(resource_name, field, target):
        return f"{resource_name}.{field}={target}"

    @classmethod
    def id_for(cls, resource_name, field, target):
        return uuid5(NAMESPACE_URL, "stratum:index:" + cls.key_for(resource_name, field, target))

    @classmethod
    def start(cls, resource_name, field, target):
        return cls._create(cls.Started, id=cls.id_for(resource_name, field, target),
                           key=cls.key_for(resource_name, field, target))

    def add(self, path):
        if path not in self.paths:
            self.trigger_event(self.Added, path=path)


name_aggregate(ReferenceIndex, "shared/reference-index", legacy=["shared.index:ReferenceIndex"])

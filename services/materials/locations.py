"""Locations (materials.md §3.18) and their notification switches (§3.19): POST /location/ makes the location's one
/location-settings/ row with it, every switch off (the resource has no POST of its own: 405), under an id derived
from the location's, so the row is found without a search and can never be made twice. Deleting the location
deletes its settings.

A location stored by a release before this one has no settings. It is treated as all switches off (the state a new
row starts in, and what the notifications service reads when it finds none: services.notifications.facts), and the
row is made with the location's next change (a PUT), after which the manager can find it in /location-settings/
and switch it on.
"""
from uuid import NAMESPACE_URL, uuid5

from shared.resource import Resource
from shared.uris import resource_path

SWITCHES = ("notification_line_items_confirmed", "notification_order_completed", "notification_order_created",
            "notification_order_owner", "notification_order_scheduled", "notification_order_shipped",
            "notification_order_started_printing", "notification_print_error")


def settings_id(location_id):
    return uuid5(NAMESPACE_URL, f"stratum:location-settings:{location_id}")


def initial_settings(location_id):
    """§3.19: every switch defaults to False."""
    return {"location": resource_path("location", location_id), **{name: False for name in SWITCHES}}


class Location(Resource):
    resource = "location"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        return fields, [cls._new_settings(unit, new_id, fields.get("bureau"))], {}

    def consequences(self, unit):
        """A change of a location made before settings existed makes them; a deletion deletes them."""
        if any(isinstance(event, Resource.Created) for event in self.pending_events):
            return []  # being created: on_create made them
        settings = unit.get(resource_path("location-settings", settings_id(self.id)))
        if self.deleted:
            if settings is None or settings.deleted:
                return []
            settings.delete(unit.actor)
            return [settings]
        return [] if settings is not None else [self._new_settings(unit, self.id, self.bureau)]

    @staticmethod
    def _new_settings(unit, location_id, bureau):
        return unit.new("location-settings", settings_id(location_id), initial_settings(location_id),
                        bureau or unit.bureau)

"""What the triggers need to know beyond the event itself, asked of the owning services over RPC (orders for an
order's current fields, identity for users, bureaus and bureau-settings, files for a model), cached for one batch.

A bureau's settings are asked for every order event (E2), so the process keeps them (`SettingsCopy`) across batches:
an entry is what identity answered, and every entry is dropped as soon as this process sees any bureau-settings
event in identity's feed (its doorbell's events, or a pull of the feed). No time-based expiry."""
import threading

from shared.errors import NotFound
from shared.uris import absolute, parse_uri

INTERNAL = {"platform_admin": True, "internal": True}
SETTINGS_RESOURCE = "bureau-settings"


class SettingsCopy:
    """bureau → its bureau-settings fields as identity last answered, for one process. `saw(events)` is told every
    identity feed event this process reads; one about a bureau-settings row (created, changed, deleted: whichever
    bureau) drops every entry, so the next order asks identity again. An answer fetched while such an event was
    seen is not kept (it may predate the change)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rows = {}
        self._generation = 0

    def get(self, bureau, fetch):
        with self._lock:
            if bureau in self._rows:
                return self._rows[bureau]
            generation = self._generation
        fields = fetch()
        with self._lock:
            if generation == self._generation:
                self._rows[bureau] = fields
        return fields

    def saw(self, events):
        if any(event.get("resource") == SETTINGS_RESOURCE for event in events or ()):
            self.forget()

    def forget(self):
        with self._lock:
            self._rows.clear()
            self._generation += 1

    def watching(self, fetch):
        """A feed reader of identity's feed (`fetch(start, limit)`) that shows this copy every batch it reads."""
        def read(start, limit):
            feed = fetch(start, limit)
            self.saw(feed.get("events"))
            return feed

        return read


class Facts:
    def __init__(self, call, base_url, settings=None):
        """`call(service, method, *args)`: an RPC to another service (shared.rpc.ServiceCaller.call); `settings`:
        the process's SettingsCopy (None: asked once per batch)."""
        self.call = call
        self.base_url = base_url
        self.settings_copy = settings
        self._cache = {}

    def get(self, service, resource, uuid):
        """A resource's public fields as its service has them now ({} when it is gone)."""
        key = (service, resource, str(uuid))
        if key not in self._cache:
            try:
                self._cache[key] = self.call(service, "get", resource, str(uuid), INTERNAL)
            except NotFound:
                self._cache[key] = {}
        return self._cache[key]

    def _by_path(self, service, path):
        if not path:
            return {}
        try:
            resource, uuid = parse_uri(path)[:2]
        except (TypeError, ValueError):
            return {}
        return self.get(service, resource, uuid)

    def order(self, path, event):
        """The order an event is about: a creation carries every field; a change is the order now, with the
        event's changes over it (the event's values are the ones this notification is about)."""
        fields = dict(event.get("fields") or {})
        if event["kind"] == "created":
            return dict(fields, bureau=fields.get("bureau") or event.get("bureau"))
        return dict(self._by_path("orders", path), **fields)

    def user(self, path):
        return self._by_path("identity", path)

    def email_of(self, path):
        user = self.user(path)
        return user.get("email") or (user.get("username") if "@" in (user.get("username") or "") else None)

    def referencing(self, service, resource, field, target):
        """[{uri, fields}] of `resource` whose `field` is `target` now (the owning service's reference index)."""
        key = ("referencing", service, resource, field, target)
        if key not in self._cache:
            self._cache[key] = self.call(service, "referencing", resource, field, target, INTERNAL)
        return self._cache[key]

    def location(self, path):
        return self._by_path("materials", path)

    def location_settings(self, location):
        """The location's location-settings row ({} when it has none: every switch off)."""
        found = self.referencing("materials", "location-settings", "location", location) if location else []
        return found[0]["fields"] if found else {}

    def password_reset(self, user_path):
        """The pending password reset of a user ({token, expires}), or None (used, replaced or expired): asked at
        send time, never cached nor stored."""
        try:
            return self.call("identity", "password_reset_token", parse_uri(user_path)[1])
        except (TypeError, ValueError):
            return None

    def bureau(self, path):
        return self._by_path("identity", path)

    def settings(self, bureau):
        """The bureau's bureau-settings row ({} when it has none: every notification off)."""
        if not bureau:
            return {}
        key = ("settings", bureau)
        if key not in self._cache:
            if self.settings_copy is None:
                self._cache[key] = self._ask_settings(bureau)
            else:
                self._cache[key] = self.settings_copy.get(bureau, lambda: self._ask_settings(bureau))
        return self._cache[key]

    def _ask_settings(self, bureau):
        found = self.call("identity", "referencing", SETTINGS_RESOURCE, "bureau", bureau, INTERNAL)
        return found[0]["fields"] if found else {}

    def absolute(self, path):
        return absolute(self.base_url, path) if path else path

    def absolute_fields(self, fields):
        """Stored references are paths; what leaves the system names them by absolute URI."""
        out = {}
        for key, value in fields.items():
            if key.startswith("_"):
                continue
            if isinstance(value, str) and value.startswith("/") and value.endswith("/") and value.count("/") >= 3:
                value = self.absolute(value)
            out[key] = value
        return out

"""Resource URIs. Stored and sent between services as paths (`/order/<uuid>/`); made absolute only at the HTTP edge,
so a deployment can move behind another host name without rewriting stored data."""
import re
from uuid import UUID

_URI = re.compile(r"^(?:[a-z][a-z0-9+.-]*://[^/]+)?(?:/[^?#]*)?/(?P<resource>[a-z0-9_-]+)/(?P<uuid>[0-9a-fA-F-]{32,36})/?$")


def resource_path(resource, uuid):
    return f"/{resource}/{uuid}/"


def parse_uri(value):
    """Return (resource, uuid) from an absolute URI or a path; raise ValueError when it is not a resource URI."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    match = _URI.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a resource URI")
    return match.group("resource"), str(UUID(match.group("uuid")))


def normalise(value):
    """Any accepted form of a resource URI → its canonical path."""
    return resource_path(*parse_uri(value))


def absolute(base_url, path):
    if path is None:
        return None
    return base_url.rstrip("/") + path

"""Resource URIs. Stored and sent between services as paths (`/order/<uuid>/`); made absolute only at the HTTP edge,
so a deployment can move behind another host name without rewriting stored data."""
import re
from uuid import UUID

from shared.catalogue import catalogue

_URI = re.compile(r"^(?:[a-z][a-z0-9+.-]*://[^/]+)?(?P<prefix>/[^?#]*?)/(?P<uuid>[0-9a-fA-F-]{32,36})/?$")


def resource_path(resource, uuid):
    return f"/{resource}/{uuid}/"


def uuid_of(path):
    """The uuid at the end of a stored resource path (`/model/<uuid>/` → `<uuid>`); None for no path."""
    return path.strip("/").rsplit("/", 1)[-1] if path else None


def id_of(path):
    """The uuid at the end of a stored resource path, as a UUID (an aggregate's id)."""
    return UUID(uuid_of(path))


def parse_uri(value):
    """Return (resource, uuid) from an absolute URI or a path; raise ValueError when it is not a resource URI."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    match = _URI.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a resource URI")
    return _resource_name(match.group("prefix")), str(UUID(match.group("uuid")))


def _resource_name(prefix):
    """The longest trailing run of path segments that names a catalogue resource (`guideline/comparator`), so a
    deployment under a path prefix (`https://host/api/order/…`) still parses; else the last segment."""
    segments = [s for s in prefix.split("/") if s]
    if not segments:
        raise ValueError("no resource name before the uuid")
    known = catalogue()
    for start in range(len(segments)):
        name = "/".join(segments[start:])
        if name in known:
            return name
    if not re.fullmatch(r"[a-z0-9_-]+", segments[-1]):
        raise ValueError(f"{segments[-1]!r} is not a resource name")
    return segments[-1]


def normalise(value):
    """Any accepted form of a resource URI → its canonical path."""
    return resource_path(*parse_uri(value))


def absolute(base_url, path):
    if path is None:
        return None
    return base_url.rstrip("/") + path

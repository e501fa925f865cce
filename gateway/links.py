"""Signed, expiring links: where a client PUTs an upload and where it downloads content (files.md §0.2).

A link is a capability: the gateway signs (purpose, resource, uuid, field, expiry) with the deployment's secret,
so whoever holds a fresh link may use it without a session (browsers load snapshots in <img>, upload clients PUT
with no credentials), and nobody can forge or extend one. An expired link is refreshed by GETting the resource.
"""
import hashlib
import hmac
import time
from urllib.parse import urlencode

from shared.settings import secret_key
from shared.errors import Forbidden


def _signature(config, purpose, resource, uuid, field, expires):
    message = f"{purpose}|{resource}|{uuid}|{field}|{expires}".encode()
    return hmac.new(secret_key(config), message, hashlib.sha256).hexdigest()


def _expiry(seconds, bucket):
    """Now + `seconds`, rounded up to a whole `bucket`: GETs close together mint the same link, so a resource's
    representation (and its ETag, caches, comparisons) does not change on every read."""
    return -(-(int(time.time()) + seconds) // bucket) * bucket


def upload_link(config, base, resource, uuid):
    expires = _expiry(int(config["STRATUM_UPLOAD_LINK_SECONDS"]), 3600)
    query = {"expires": expires, "signature": _signature(config, "upload", resource, uuid, "", expires)}
    return f"{base}/upload/{resource}/{uuid}/?{urlencode(query)}"


def content_link(config, base, resource, uuid, field):
    expires = _expiry(int(config["STRATUM_DOWNLOAD_LINK_SECONDS"]), 60)
    query = {"resource": resource, "field": field, "expires": expires,
             "signature": _signature(config, "content", resource, uuid, field, expires)}
    return f"{base}/content/{uuid}/?{urlencode(query)}"


def check(config, purpose, resource, uuid, field, args):
    """Forbidden unless `args` carry a valid, unexpired signature for exactly this purpose and target."""
    try:
        expires = int(args.get("expires", ""))
    except ValueError:
        raise Forbidden("This link is incomplete: it carries no valid 'expires'.") from None
    expected = _signature(config, purpose, resource, uuid, field, expires)
    if not hmac.compare_digest(expected, args.get("signature", "")):
        raise Forbidden("This link's signature is not valid.")
    if expires < time.time():
        raise Forbidden("This link has expired; GET the resource again for a fresh one.")

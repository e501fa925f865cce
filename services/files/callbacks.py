"""Model callbacks (files.md §0.2): `callback: {"url", "method"}` is called when the model's processing ends,
processed or not, so API clients need not poll.

The server makes a request to an address a client chose, which is the classic server-side request forgery
(OWASP API7): the URL must be http(s), and by default it may not resolve to a loopback, private, link-local or
otherwise internal address (STRATUM_CALLBACKS_ALLOW_PRIVATE=1 lifts that for on-premise setups and tests). Delivery
is best effort with a few retries; the model's status stays the source of truth.
"""
import logging
import time
from urllib.parse import urlparse

import requests

from shared.errors import InvalidPayload
from shared.outbound import internal_address

log = logging.getLogger(__name__)
METHODS = ("GET", "POST", "PUT")
ATTEMPTS = 3
TIMEOUT = 5


def check_callback(callback):
    """The shape rule, at POST/PUT: {"url": "http(s)://…", "method": "GET|POST|PUT"} (method defaults to POST)."""
    if callback in (None, {}):
        return callback
    if not isinstance(callback, dict) or not isinstance(callback.get("url"), str):
        raise InvalidPayload("callback must be an object with a 'url' (and a 'method': GET, POST or PUT).",
                             field="callback")
    parsed = urlparse(callback["url"])
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidPayload("callback.url must be an http or https URL.", field="callback")
    method = str(callback.get("method") or "POST").upper()
    if method not in METHODS:
        raise InvalidPayload("callback.method must be GET, POST or PUT.", field="callback")
    return {"url": callback["url"], "method": method}


def _internal_address(host):
    return internal_address(host)  # the one guard (shared.outbound), also used by order webhooks


def deliver(callback, body, allow_private=False, sleep=time.sleep):
    """Call the callback with `body` (JSON for POST/PUT, query parameters for GET); True when it answered 2xx."""
    callback = check_callback(callback)
    if not callback:
        return False
    host = urlparse(callback["url"]).hostname
    internal = None if allow_private else _internal_address(host)
    if internal:
        log.warning("callback to %s refused: %s is an internal address", callback["url"], internal)
        return False
    for attempt in range(ATTEMPTS):
        try:
            if callback["method"] == "GET":
                response = requests.get(callback["url"], params=body, timeout=TIMEOUT, allow_redirects=False)
            else:
                response = requests.request(callback["method"], callback["url"], json=body, timeout=TIMEOUT,
                                            allow_redirects=False)
            if 200 <= response.status_code < 300:
                return True
            log.warning("callback %s answered %s", callback["url"], response.status_code)
        except requests.RequestException as error:
            log.warning("callback %s failed: %s", callback["url"], error)
        sleep(2 ** attempt)
    return False

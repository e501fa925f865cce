"""Order webhooks: a JSON POST of each order event to the order's `callback_url`, signed so the receiver can tell
it came from this deployment and was not changed or replayed.

Signature (documented in the README): the headers

    X-Stratum-Delivery: <delivery uuid>          (the same on every retry: receivers deduplicate by it)
    X-Stratum-Event: OrderConfirmed
    X-Stratum-Timestamp: <unix seconds when this attempt was made>
    X-Stratum-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

where the secret is the order's bureau's own: derived from the deployment's webhook key (STRATUM_WEBHOOK_SECRET,
or without it one derived from the deployment's secret key), the bureau and the bureau's key generation, so no
bureau's receiver can sign for another's. A manager reads it at GET /webhook-secret/ and replaces it with POST
/webhook-secret/ (a new generation: the old secret stops signing at once). A receiver recomputes the HMAC over the
raw body it received and compares in constant time, and refuses timestamps older than a few minutes.

The URL passes the same server-side request forgery guard as model callbacks (shared.outbound) when each attempt is
made; a refused URL is not retried.
"""
import hashlib
import hmac
import json
import time

import requests

from shared.outbound import refusal

TIMEOUT = 10
SIGNATURE_HEADER = "X-Stratum-Signature"


class Refused(Exception):
    """The URL may not be called (not retried)."""


def webhook_secret(config, secret_key):
    if config.get("STRATUM_WEBHOOK_SECRET"):
        return config["STRATUM_WEBHOOK_SECRET"].encode()
    return hmac.new(secret_key, b"stratum:webhooks", hashlib.sha256).hexdigest().encode()


def bureau_secret(deployment_secret, bureau, generation=0):
    """One bureau's signing secret (bytes): never stored, derived when needed; a new generation replaces it."""
    message = f"stratum:webhook-secret:{bureau}:{int(generation)}".encode()
    return ("whsec_" + hmac.new(deployment_secret, message, hashlib.sha256).hexdigest()).encode()


def signature(secret, timestamp, body):
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret, timestamp, body, header):
    """What a receiver does (and the tests): True when `header` signs this body at this timestamp."""
    return hmac.compare_digest(signature(secret, timestamp, body), header or "")


def post(url, payload, secret, delivery_id, event, allow_private="", now=time.time):
    """One attempt: returns the receiver's status code when it answered 2xx; raises Refused for a URL the guard
    refuses, RuntimeError (with the reason) for any other failure."""
    reason = refusal(url, allow_private)
    if reason:
        raise Refused(reason)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(now()))
    headers = {"Content-Type": "application/json", "User-Agent": "Stratum-Webhooks/1",
               "X-Stratum-Delivery": str(delivery_id), "X-Stratum-Event": event,
               "X-Stratum-Timestamp": timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as error:
        raise RuntimeError(f"{type(error).__name__}: {error}") from None
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"the receiver answered {response.status_code}")
    return response.status_code

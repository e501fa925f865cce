"""Readiness (`GET /health/ready`), beside liveness (`GET /about/`, which answers as soon as the HTTP server runs).

Ready means a client can use Stratum now: the identity service answers, it has created the first administrator,
and this gateway's read side holds the identity feed at least that far, so the bootstrap administrator can log in.
Until then the answer is 503 with Retry-After and a JSON body saying what is not ready. The body also lists events the
read side parked and counts the messages in the dead-letter queue (it serves, but those resources are stale until they apply: the projector retries them). The check catches the read
side up itself (as a write does), so it does not depend on the projector being up.

Several gateway processes may share the port (runtime.topology.instances): each answers for itself, but they share
the read store, so one ready means the read side is ready for all; the kernel gives connections only to those
listening already. `gateway` in the body names the one that answered ("gateway", "gateway-2", …: its log lines carry
the same name), for an operator chasing one copy; no process id leaves the machine."""
import logging
import time

from gateway.http import json_response
from gateway.readside import FOLLOWED_SERVICES
from shared.dead_letter import DEAD_LETTER_QUEUE, queue_counts
from shared.errors import StratumError

log = logging.getLogger(__name__)
IDENTITY = "identity"
CHECK_TIMEOUT = 3  # seconds for the identity service to answer a probe (a probe must not wait STRATUM_RPC_TIMEOUT)


def readiness(gateway):
    checks = {}
    waiting_for = None
    try:
        position = gateway.services.call(IDENTITY, "max_position", timeout=CHECK_TIMEOUT) or 0
        checks[IDENTITY] = {"ok": position > 0, "position": position}
        if not position:
            waiting_for = "the identity service to create the first administrator"
    except Exception as error:  # not running, not answering in time, the broker away
        position = None
        reason = error.title if isinstance(error, StratumError) else f"{type(error).__name__}: {error}"[:200]
        checks[IDENTITY] = {"ok": False, "error": reason}
        waiting_for = f"the identity service ({reason})"
    if position:
        try:
            deadline = time.monotonic() + CHECK_TIMEOUT
            reached = gateway.read.catch_up(IDENTITY, gateway.services.fetcher(IDENTITY, deadline), until=position,
                                            wait=CHECK_TIMEOUT)
            if reached is None:
                raise TimeoutError(f"another catch-up held the identity feed for {CHECK_TIMEOUT} s")
            checks["read_side"] = {"ok": reached >= position, "identity_position": reached}
            if reached < position:
                waiting_for = f"the read side to reach identity position {position} (at {reached})"
        except Exception as error:  # its database away, or identity gone between the two calls
            log.warning("readiness: the read side could not catch up with identity: %s", error)
            checks["read_side"] = {"ok": False, "error": str(error)[:200]}
            waiting_for = "the read side to catch up with the identity feed"
    checks["projection"] = _projection(gateway)
    checks["dead_letter_queue"], checks["services"] = _broker_checks(gateway)
    instance = gateway.config.get("STRATUM_INSTANCE") or "gateway"
    if waiting_for:
        return json_response({"status": "not ready", "waiting_for": waiting_for, "gateway": instance,
                              "checks": checks}, 503, headers={"Retry-After": "1"})
    return json_response({"status": "ready", "gateway": instance, "checks": checks})


def _projection(gateway):
    """Events the read side parked (gateway.readstore.apply_feed): Stratum serves, but those resources are stale."""
    try:
        parked = gateway.read.store.parked()
    except Exception as error:
        return {"ok": False, "error": str(error)[:200]}
    return {"ok": not parked, "parked_events": len(parked),
            "parked": [{"application": row.application, "position": row.position, "resource": row.resource,
                        "uuid": row.uuid, "error": row.error[:300]} for row in parked[:20]]}


def _broker_checks(gateway):
    """(dead letters, services listening), from one broker connection (a probe runs every few seconds).

    Dead letters: messages set aside because they stopped their service again and again (shared.dead_letter):
    Stratum serves, but an operator should look at them (and can move them back with the broker's shovel or
    management UI). Listening: whether each service has a consumer on its RPC queue (`rpc-<name>`), informational, as
    a service away costs only its own requests a 503; `runtime.launch` says "up" only once every one listens."""
    rpc_queues = {f"rpc-{name}": name for name in FOLLOWED_SERVICES}
    try:
        counts = queue_counts(gateway.config, [DEAD_LETTER_QUEUE.name, *rpc_queues])
    except Exception as error:  # the broker away: the identity check above says so already
        failed = {"ok": False, "error": f"{type(error).__name__}: {error}"[:200]}
        return failed, dict(failed)
    messages = counts[DEAD_LETTER_QUEUE.name][0]
    listening = {name: counts[queue][1] > 0 for queue, name in rpc_queues.items()}
    return ({"ok": messages == 0, "queue": DEAD_LETTER_QUEUE.name, "messages": messages},
            {"ok": all(listening.values()), "listening": listening})

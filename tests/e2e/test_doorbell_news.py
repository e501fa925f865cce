"""A command's doorbell carries its events (shared.service), so the services following the orders feed (production,
notifications, the projector) apply them without pulling the feed over RPC: writes cost their followers no
`get_notifications` round trip and the orders service no feed decoding per follower. Their timers still pull (a lost
ring costs latency, never an event); this counts only the pulls the doorbell handlers make."""
import collections
import time
import traceback
import uuid

import pytest

from shared import rpc

pytestmark = pytest.mark.e2e

ORDERS = 20


def test_followers_take_a_commands_events_from_its_doorbell(system, admin, monkeypatch):
    pulls = collections.Counter()
    real_call = rpc.ServiceCaller.call

    def counting(self, service, method, *args, **kwargs):
        if service == "orders" and method == "get_notifications":
            pulls[f"{self.worker_ctx.service_name}.{self.worker_ctx.entrypoint.method_name}"] += 1
        return real_call(self, service, method, *args, **kwargs)

    monkeypatch.setattr(rpc.ServiceCaller, "call", counting)
    names = [f"rung-{uuid.uuid4().hex[:8]}" for _ in range(ORDERS)]
    for name in names:
        assert admin.post("/order/", json={"name": name}).status_code == 201
    time.sleep(1)  # the last rings handled

    from_rings = {entrypoint: n for entrypoint, n in pulls.items() if entrypoint.endswith("_news")}
    # a ring after a gap (another write's notifications in between) still pulls; one write, one pull is the old way
    assert sum(from_rings.values()) < ORDERS / 4, (from_rings, dict(pulls))
    # nothing was lost on the way: every order is on the read side
    assert admin.get(f"/order/?filter[name]={','.join(names)}").json()["total_count"] == ORDERS

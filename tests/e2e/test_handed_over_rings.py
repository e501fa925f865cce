"""The gateway applies its own commands' events to the read side (read-your-writes), so the rings of those commands
are marked handed over (shared.service.HANDED_OVER) and the projector acknowledges them without a worker: no handler,
no read-side query. The production and notifications services still follow them, and nothing is lost."""
import collections
import time
import uuid

import pytest

from gateway.projector import ProjectorService

pytestmark = pytest.mark.e2e

ORDERS = 10


def test_the_projector_leaves_the_gateways_own_writes_to_the_gateway(system, admin, monkeypatch):
    handled = collections.Counter()
    real = ProjectorService._handle_news

    def counting(self, application, payload):
        handled[application] += 1
        return real(self, application, payload)

    monkeypatch.setattr(ProjectorService, "_handle_news", counting)
    names = [f"handed-{uuid.uuid4().hex[:8]}" for _ in range(ORDERS)]
    for name in names:
        assert admin.post("/order/", json={"name": name}).status_code == 201
    time.sleep(1)  # the last rings handled

    assert handled["orders"] == 0, dict(handled)
    assert admin.get(f"/order/?filter[name]={','.join(names)}").json()["total_count"] == ORDERS

"""Line-item and order status rules (orders.md §2.1 and §2.3), as pure functions.

Line items move along new → calculating_estimates → pending (⇄ in-preparation) → confirmed → printing →
post-processing → shipping → complete; any state before complete may go to cancelled or error, and error returns
to a working state (retry or re-estimate). The order's status is derived from its line items.
"""
from shared.errors import InvalidPayload

NOT_ALLOWED = "Provided status transformation is not allowed"

# orders.md §2.1 [prop] rank, for "≤" comparisons and aggregation; error and cancelled sit outside it.
RANK = ["new", "calculating_estimates", "pending", "in-preparation", "confirmed", "printing", "post-processing",
        "shipping", "complete"]
TERMINAL = frozenset({"complete", "cancelled"})
_WORKING = frozenset(RANK) - {"new", "complete"}

TRANSITIONS = {
    "new": {"calculating_estimates"},
    "calculating_estimates": {"pending"},
    "pending": {"confirmed", "in-preparation", "calculating_estimates"},
    "in-preparation": {"pending"},
    "confirmed": {"printing"},
    "printing": {"post-processing", "shipping", "complete"},
    "post-processing": {"shipping", "complete"},
    "shipping": {"complete"},
    "error": set(_WORKING),  # retry or re-estimate: back to a working state
    "complete": set(),
    "cancelled": set(),
}
for _status in RANK[:-1]:
    TRANSITIONS[_status] |= {"cancelled", "error"}

# §2.3: the only statuses a client may set on an order directly (they cascade to its line items).
ORDER_MANUAL = frozenset({"confirmed", "cancelled"})


def check_line_item_transition(current, new):
    if new != current and new not in TRANSITIONS.get(current, set()):
        raise InvalidPayload(NOT_ALLOWED, field="status")


def check_order_status_request(current, new):
    if new != current and new not in ORDER_MANUAL:
        raise InvalidPayload(NOT_ALLOWED, field="status")


def order_status(line_item_statuses, cloning=False):
    """The order's status from its line items' (orders.md §2.3 [prop] algorithm, steps 1–9)."""
    if cloning:
        return "cloning"
    items = list(line_item_statuses)
    if not items:
        return "new"
    if all(s == "cancelled" for s in items):
        return "cancelled"
    active = [s for s in items if s != "cancelled"]
    done = [s for s in active if s == "complete"]
    if done and all(s in ("complete", "error") for s in active):
        return "complete"
    if all(s == "error" for s in active):
        return "error"
    if len(set(active)) == 1:
        return active[0]
    ranked = [s for s in active if s != "error"]
    if all(RANK.index(s) >= RANK.index("confirmed") for s in ranked):
        return "processing"
    return min(ranked, key=RANK.index)

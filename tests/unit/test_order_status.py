"""orders.md §2.1 (line-item moves) and §2.3 (order status aggregation table)."""
import pytest

from services.orders.status import (NOT_ALLOWED, check_line_item_transition, check_order_status_request,
                                    order_status)
from shared.errors import InvalidPayload

ALLOWED = [
    ("new", "calculating_estimates"), ("calculating_estimates", "pending"), ("calculating_estimates", "error"),
    ("pending", "confirmed"), ("pending", "in-preparation"), ("in-preparation", "pending"),
    ("pending", "calculating_estimates"), ("confirmed", "printing"), ("printing", "post-processing"),
    ("post-processing", "shipping"), ("shipping", "complete"), ("printing", "complete"),
    ("new", "cancelled"), ("shipping", "cancelled"), ("confirmed", "error"), ("error", "pending"),
    ("error", "calculating_estimates"), ("pending", "pending"),
]
REFUSED = [
    ("new", "confirmed"), ("new", "complete"), ("pending", "printing"), ("confirmed", "pending"),
    ("complete", "cancelled"), ("cancelled", "new"), ("complete", "error"), ("shipping", "printing"),
    ("error", "new"), ("error", "complete"),
]


@pytest.mark.parametrize("current, new", ALLOWED)
def test_allowed_line_item_moves(current, new):
    check_line_item_transition(current, new)


@pytest.mark.parametrize("current, new", REFUSED)
def test_refused_line_item_moves(current, new):
    with pytest.raises(InvalidPayload) as error:
        check_line_item_transition(current, new)
    assert error.value.title == NOT_ALLOWED and error.value.field == "status"


# orders.md §2.3: line-item statuses → the order's status (the e2e suite replays it over HTTP too)
AGGREGATION_TABLE = [
    ([], "new"),
    (["cancelled", "cancelled"], "cancelled"),
    (["complete", "complete", "cancelled"], "complete"),
    (["complete", "error"], "complete"),
    (["error", "error", "cancelled"], "error"),
    (["printing", "printing"], "printing"),
    (["pending", "pending", "cancelled"], "pending"),
    (["in-preparation"], "in-preparation"),
    (["printing", "post-processing", "error"], "processing"),
    (["confirmed", "shipping"], "processing"),
    (["pending", "printing"], "pending"),
    (["new", "calculating_estimates", "confirmed"], "new"),
    (["calculating_estimates", "error", "confirmed"], "calculating_estimates"),
]


@pytest.mark.parametrize("statuses, expected", AGGREGATION_TABLE)
def test_order_status_aggregation_table(statuses, expected):
    assert order_status(statuses) == expected


def test_cloning_wins_and_manual_order_statuses():
    assert order_status(["complete"], cloning=True) == "cloning"
    check_order_status_request("new", "confirmed")
    check_order_status_request("new", "cancelled")
    with pytest.raises(InvalidPayload):
        check_order_status_request("new", "printing")

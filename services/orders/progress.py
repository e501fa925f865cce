"""Flow F3 in orders (production.md §1.4–1.5, orders.md §2.1): the orders service follows production's feed (with
its own tracked position, shared.follower) and moves line items, and through them their orders, as their pieces
progress. Production never writes here; it only records what its pieces do.

Orders keeps, per line item, a `PieceProgress`: its pieces' statuses as the feed told them. From them:
* a piece at or past printing (the first print in progress) → the line item is `printing`;
* every live piece past printing and one in a post-processing step → `post-processing`; the same for `shipping`;
* every live piece complete → `complete` (cancelled, scrapped and remanufactured pieces do not count);
* §1.4 "error if pieces are in error and none are progressing": a piece in `error` while every other live piece is
  `complete` or in `error` too → `error` (with the line item's `error` saying so). When no live piece is in error any
  more (the failed ones remanufactured, scrapped, redone or forced on: production.md §2.3, F5), such a line item
  returns to the status its pieces give (`confirmed` when none has started again).
A line item only moves forward, along its own transition table (confirmed → printing → …; a step it skips is
walked through), and never out of `cancelled`, a status a client set ahead, or an `error` its pieces did not cause.
The order's status follows in the same transaction (Order.derive_status).
"""
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate

from services.orders.domain import LineItem
from services.orders.status import RANK, TRANSITIONS
from shared.resource import Resource
from shared.topics import name_aggregate
from shared.uris import resource_path

STAGE = {"new": 0, "confirmed": 0, "queued-for-printing": 0, "printing": 1, "queued-for-post-processing": 2,
         "post-processing": 2, "queued-for-shipping": 3, "shipping": 3, "complete": 4}
BY_STAGE = {1: "printing", 2: "post-processing", 3: "shipping", 4: "complete"}
NOT_COUNTED = ("cancelled", "incomplete")  # cancelled with the line item, or replaced by a remanufactured piece
MOVABLE = ("confirmed", "printing", "post-processing", "shipping")
PIECES_FAILED = "A piece of this line item failed and none of its other pieces is still in production."


class PieceProgress(Aggregate):
    """The statuses of one line item's pieces, from production's feed."""

    class Started(Aggregate.Created):
        line_item: str

    class Noted(Aggregate.Event):
        piece: str
        status: str | None  # None: the piece is gone

        def apply(self, progress):
            if self.status is None:
                progress.pieces.pop(self.piece, None)
            else:
                progress.pieces[self.piece] = self.status

    def __init__(self, line_item):
        self.line_item = line_item
        self.pieces = {}

    @staticmethod
    def id_for(line_item_path):
        return uuid5(NAMESPACE_URL, f"stratum:orders:piece-progress:{line_item_path}")

    @classmethod
    def start(cls, line_item_path):
        return cls._create(cls.Started, id=cls.id_for(line_item_path), line_item=line_item_path)

    def note(self, piece, status):
        if self.pieces.get(piece, "") != status:
            self.trigger_event(self.Noted, piece=piece, status=status)


class PieceLink(Aggregate):
    """Which line item a piece of production's belongs to (its created event says; its updates name only changes)."""

    class Started(Aggregate.Created):
        piece: str
        line_item: str | None

    def __init__(self, piece, line_item):
        self.piece = piece
        self.line_item = line_item

    @staticmethod
    def id_for(piece_path):
        return uuid5(NAMESPACE_URL, f"stratum:orders:piece-link:{piece_path}")

    @classmethod
    def start(cls, piece_path, line_item_path):
        return cls._create(cls.Started, id=cls.id_for(piece_path), piece=piece_path, line_item=line_item_path)


name_aggregate(PieceProgress, "orders/piece-progress")
name_aggregate(PieceLink, "orders/piece-link")


def line_item_status(piece_statuses):
    """The status the pieces put their line item at, or None when they say nothing (not started, or in error)."""
    live = [s for s in piece_statuses if s not in NOT_COUNTED]
    stages = [STAGE[s] for s in live if s in STAGE]
    if not live or len(stages) != len(live) or max(stages) == 0:
        return None  # nothing started yet, or a piece in error: no move
    return BY_STAGE[max(1, min(stages))]


def pieces_failed(piece_statuses):
    """§1.4: a live piece in error and none progressing (every other live piece complete or in error)."""
    live = [s for s in piece_statuses if s not in NOT_COUNTED]
    return "error" in live and all(s in ("error", "complete") for s in live)


def recovered_status(piece_statuses):
    """The status a line item its pieces had put in error returns to once none of them is in error (None: not yet,
    or no live piece left)."""
    live = [s for s in piece_statuses if s not in NOT_COUNTED]
    if not live or "error" in live or any(s not in STAGE for s in live):
        return None
    return line_item_status(live) or "confirmed"


def steps_to(current, target):
    """The moves from `current` forward to `target` along the line item's transition table ([] when none)."""
    if current not in MOVABLE or target not in RANK or RANK.index(target) <= RANK.index(current):
        return []
    path = []
    while current != target:
        if target in TRANSITIONS[current]:
            current = target
        else:
            current = RANK[RANK.index(current) + 1]
        path.append(current)
    return path


def apply_event(batch, event):
    """One public production event (shared.application feed shape): pieces' statuses move their line items."""
    if event.get("resource") != "piece":
        return
    piece = resource_path("piece", event["uuid"])
    fields = event.get("fields") or {}
    if event["kind"] == "created":
        link = batch.get(PieceLink.id_for(piece)) or batch.add(PieceLink.start(piece, fields.get("line_item")))
    else:
        link = batch.get(PieceLink.id_for(piece))
        if link is None or ("status" not in fields and event["kind"] != "deleted"):
            return
    if not link.line_item:
        return
    progress = batch.get(PieceProgress.id_for(link.line_item)) or batch.add(PieceProgress.start(link.line_item))
    progress.note(piece, None if event["kind"] == "deleted" else fields.get("status", progress.pieces.get(piece)))
    _move_line_item(batch, link.line_item, progress)


def _move_line_item(batch, line_item_path, progress):
    target = line_item_status(progress.pieces.values())
    item = batch.get(line_item_path)
    if not isinstance(item, LineItem) or item.deleted:
        return
    done = sum(status == "complete" for status in progress.pieces.values())
    if (item.fields.get("completed_quantity") or 0) != done:
        Resource.update(item, {"completed_quantity": done}, None)  # orders.md §2.1: the pieces complete
    current = item.fields.get("status")
    if current in MOVABLE and pieces_failed(progress.pieces.values()):
        moves = [("error", PIECES_FAILED)]
    elif current == "error" and item.fields.get("error") == PIECES_FAILED:
        back = recovered_status(progress.pieces.values())
        if back is None:
            return
        # a line item back from its pieces' error takes the status they give; `complete` (the failed pieces scrapped
        # or replaced and the rest done) is the system's move, outside the client's table (error → working states)
        moves = [(back, None)]
    else:
        moves = [(status, False) for status in steps_to(current, target)] if target is not None else []
    if not moves:
        return
    for status, error in moves:
        if error is False:
            item.update({"status": status}, None)
        elif status == "complete":
            Resource.update(item, {"status": status, "error": None}, None)
        else:
            item.update({"status": status, "error": error}, None)
    order = item.order(batch)
    if order is not None:
        order.derive_status(order.line_items(batch, item), None)

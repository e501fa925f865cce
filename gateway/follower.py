"""The gap-free, idempotent follower of a service's notification log.

The store applies a batch and records the new position in one transaction, skipping anything at or below the
position it already holds, so a repeated, reordered or late batch changes nothing. RabbitMQ only says "there is
news"; the follower always pulls from its own position, so a lost message costs latency, never data.

A writer (the gateway, for read-your-writes) may hand over its command's own events ("news": a slice of the feed,
`first`..`last`), saving the pull. Slices wait on a board until the lock is free; whoever holds it applies every
slice that continues the store's position without a gap, in one transaction, and pulls only what is still missing.
The writers whose slices it applied then find their position reached in memory, without a statement of their own.
"""
import threading
import time

BATCH_SIZE = 500


class Follower:
    def __init__(self, store, batch_size=BATCH_SIZE):
        self.store = store
        self.batch_size = batch_size
        self._locks = {}
        self._boards = {}  # application → {first: news slice} handed over and not yet applied
        self._reached = {}  # application → a position the store held when this follower last read or moved it
        self._locks_guard = threading.Lock()

    def _lock(self, application):
        with self._locks_guard:
            return self._locks.setdefault(application, threading.Lock())

    def catch_up(self, application, fetch, until=None, news=None, wait=None):
        """Pull and apply `application`'s feed until it is exhausted (or `until` is reached); return the position,
        or None when another catch-up held this feed for longer than `wait` seconds (None: no limit), in which case
        `news` stays on the board for whoever applies next.

        One catch-up per application at a time in this process: concurrent callers queue on the lock and usually
        find their position already reached when they get it.

        `news`: a slice of the feed the caller already holds (`first`..`last`, every notification between them
        included). Slices that continue the store's position are applied as they are, without a pull: positions
        only grow, so a chain that starts at or before the store's next event when it is read still does when it
        is applied.

        Positions only grow, so a position this follower saw the store reach is still reached: a caller whose
        `until` is at or below it (its slice was applied with another writer's, the usual case under load) returns
        without a statement. (A read side reset for a rebuild from zero goes back to 0; what it replays then
        includes what a caller returned for here, as for any read during a rebuild.)
        """
        reached = self._known(application, until)
        if reached is not None:
            return reached
        if news:
            with self._locks_guard:
                self._boards.setdefault(application, {})[news["first"]] = news
            # The writers one message answered (shared.rpc.CommandBatcher) wake together, in no particular order of
            # their positions: let those ready to run hand over their slices before one of us takes the turn, so it
            # applies them all in one transaction rather than its own alone, or pulls the feed for a gap before its
            # own that is only a slice not handed over yet. A yield (green threads: to the others woken), not a wait.
            time.sleep(0)
        lock = self._lock(application)
        if not lock.acquire(timeout=-1 if wait is None else wait):
            return None
        try:
            return self._pull_holding_lock(application, fetch, until)
        finally:
            lock.release()

    def _pull_holding_lock(self, application, fetch, until):
        reached = self._known(application, until)  # moved by the caller that held the lock before us
        if reached is not None:
            self._drop_news(application, reached)
            return reached
        position = self._saw(application, self.store.position(application))
        if until is None or position < until:
            position = self._apply_news(application, position)
        while until is None or position < until:
            feed = fetch(position + 1, self.batch_size)
            if feed["last"] is None:
                break
            position = self._saw(application, self.store.apply_feed(application, feed["events"], feed["last"]))
            if feed["complete"]:
                break
        self._drop_news(application, position)
        return position

    def _apply_news(self, application, position):
        """Apply, in one transaction, the slices on the board that continue `position` without a gap. When even the
        first slice leaves a gap (another gateway process's commands fell in it), the chain from that slice is tried
        all the same, to be applied only if the store holds the gap by the time this applier has its turn: the other
        process (or the projector) is usually applying it right then, and waiting for its turn in the database costs
        less than pulling the feed over RPC, which is what is left to do otherwise (bench/README.md "Round 7")."""
        with self._locks_guard:
            board = self._boards.get(application) or {}
            slices = sorted(board.values(), key=lambda s: s["first"])
        events, start, last = [], position, position
        for piece in slices:
            if piece["last"] <= last:
                continue
            if piece["first"] > last + 1:
                if last > start:
                    break  # a gap after the chain: notifications nobody handed over (another writer's, rolled back)
                start = last = piece["first"] - 1
            events += [e for e in piece["events"] if e["position"] > last]
            last = piece["last"]
        if last == start:
            return position
        return self._saw(application, self.store.apply_feed(application, events, last,
                                                            after=start if start > position else None))

    def _known(self, application, until):
        """The position known reached when it is at or past `until` (None otherwise, and always without `until`)."""
        with self._locks_guard:
            reached = self._reached.get(application)
        return reached if until is not None and reached is not None and reached >= until else None

    def _saw(self, application, position):
        with self._locks_guard:
            self._reached[application] = max(position, self._reached.get(application, position))
        return position

    def _drop_news(self, application, position):
        with self._locks_guard:
            board = self._boards.get(application) or {}
            for first in [f for f, piece in board.items() if piece["last"] <= position]:
                del board[first]

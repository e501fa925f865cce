"""The gap-free, idempotent follower of a service's notification log.

The store applies a batch and records the new position in one transaction, skipping anything at or below the
position it already holds, so a repeated, reordered or late batch changes nothing. RabbitMQ only says "there is
news"; the follower always pulls from its own position, so a lost message costs latency, never data.
"""
import threading

BATCH_SIZE = 500


class Follower:
    def __init__(self, store, batch_size=BATCH_SIZE):
        self.store = store
        self.batch_size = batch_size
        self._locks = {}
        self._locks_guard = threading.Lock()

    def _lock(self, application):
        with self._locks_guard:
            return self._locks.setdefault(application, threading.Lock())

    def catch_up(self, application, fetch, until=None):
        """Pull and apply `application`'s feed until it is exhausted (or `until` is reached); return the position.

        One catch-up per application at a time in this process: concurrent callers queue on the lock and usually
        find their position already reached when they get it.
        """
        with self._lock(application):
            position = self.store.position(application)
            while until is None or position < until:
                feed = fetch(position + 1, self.batch_size)
                if feed["last"] is None:
                    break
                position = self.store.apply_feed(application, feed["events"], feed["last"])
                if feed["complete"]:
                    break
            return position

"""The notifications service's follower of other services' feeds: gap-free (it always pulls from its own recorded
position, so a lost doorbell costs latency, never a notification) and idempotent (see
Notifications.record_batch; the position is a tracking record, as shared.follower keeps it for production and
orders). One catch-up per feed at a time in a process; across processes the store decides."""
import logging
import threading

log = logging.getLogger(__name__)
BATCH_SIZE = 100
# The feeds whose events are in the trigger matrix (capture-and-platform.md E2): orders (orders, comments), identity
# (users), files (models), production (runs failing, prints joining runs) and materials (stock below its minimum).
SOURCES = ("orders", "identity", "files", "production", "materials")


class Subscriber:
    def __init__(self, app, batch_size=BATCH_SIZE):
        self.app = app
        self.batch_size = batch_size
        self._locks = {source: threading.Lock() for source in SOURCES}

    def catch_up(self, application, fetch, facts, until=None):
        """Pull and record `application`'s feed until it is exhausted (or `until` is reached); the position."""
        with self._locks.setdefault(application, threading.Lock()):
            position = self.app.feed_position(application)
            stalled = 0
            while until is None or position < until:
                feed = fetch(position + 1, self.batch_size)
                if feed["last"] is None:
                    break
                position = self.app.record_batch(application, feed["events"], feed["last"], facts, read_after=position)
                if position < feed["last"]:  # another replica recorded first: go on from where it stands
                    stalled += 1
                    if stalled >= 3:
                        break
                    continue
                stalled = 0
                if feed["complete"]:
                    break
            return position

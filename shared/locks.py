"""One lock per key for the life of the process: one catch-up of a feed, one start of a job or a saga at a time in
this process (green threads: eventlet patches threading). Another process is kept out by the store (expected
versions, receipts, tracking records), never by these."""
import threading

_locks = {}
_guard = threading.Lock()


def keyed_lock(*key):
    """The lock of `key` (a tuple of hashables; name the user first, e.g. ("create-runs", uuid))."""
    with _guard:
        return _locks.setdefault(key, threading.Lock())

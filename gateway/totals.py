"""Totals past the count's bound, kept a few seconds per list (readstore._list_identity: its resource, bureau,
filters with their values, and sort).

A LIST whose matching rows pass readstore.COUNT_BOUND answers an estimate, flagged as one, and finding that out
cost the database the most of a deep page: the capped count (10,001 index entries, ~3 ms on PostgreSQL whatever the
plan) and, on PostgreSQL, the planner's EXPLAIN. The next pages of the same list within ESTIMATE_TTL seconds answer
the same estimate (still flagged) without either, as a keyset cursor already carries it to the pages after it.

Only estimates are kept, never an exact count: a total under the bound is counted anew by every page. What an estimate
kept this way can miss is a list that falls back under the bound within those seconds; it is then answered as an
estimate (flagged) a few seconds longer, never as an exact total that is wrong. The planner's own estimate moves only
with ANALYZE, far less often than that.
"""
import time

ESTIMATE_TTL = 10.0  # seconds a list's estimate is answered again without counting
MAX_KEPT = 1000  # lists whose estimate is kept per process, the oldest forgotten first


class Estimates:
    def __init__(self, ttl=ESTIMATE_TTL, clock=time.monotonic):
        self._ttl, self._clock, self._kept = ttl, clock, {}

    def get(self, key):
        """The estimate kept for `key` if it is younger than the TTL, else None."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        until, estimate = kept
        if self._clock() >= until:
            self._kept.pop(key, None)
            return None
        return estimate

    def keep(self, key, estimate):
        self._kept.pop(key, None)  # a renewed key moves to the end (the newest)
        if len(self._kept) >= MAX_KEPT:
            self._kept.pop(next(iter(self._kept)))
        self._kept[key] = (self._clock() + self._ttl, estimate)


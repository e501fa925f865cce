"""Failed logins per client address, in this gateway process: after MAX_FAILURES within WINDOW the address gets
429 with Retry-After until the oldest failure leaves the window. (Per-account lock-out lives in identity.)"""
import threading
import time
from collections import defaultdict, deque

from shared.errors import TooManyRequests

MAX_FAILURES = 20
WINDOW = 300.0  # seconds


class FailedLogins:
    def __init__(self, max_failures=MAX_FAILURES, window=WINDOW, clock=time.monotonic):
        self.max_failures, self.window, self.clock = max_failures, window, clock
        self._failures = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, address):
        with self._lock:
            recent = self._recent(address)
            if len(recent) >= self.max_failures:
                retry_after = int(recent[0] + self.window - self.clock()) + 1
                raise TooManyRequests("Too many failed logins from your address; try again later.",
                                      retry_after=retry_after)

    def failed(self, address):
        with self._lock:
            self._recent(address).append(self.clock())

    def _recent(self, address):
        recent = self._failures[address]
        while recent and recent[0] <= self.clock() - self.window:
            recent.popleft()
        return recent

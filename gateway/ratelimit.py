"""Failed logins per client address, in this gateway process: after its share of MAX_FAILURES within WINDOW the
address gets 429 with Retry-After until the oldest failure leaves the window. (Per-account lock-out lives in
identity: MAX_FAILED_LOGINS per account, whatever the process; this limit is the per-address guard beside it.)

Several gateway processes (shared.settings.gateway_processes) each keep their own count, so each takes its share,
MAX_FAILURES / processes rounded up: an address gets at most about MAX_FAILURES tries in all, however the kernel
spreads its connections (SO_REUSEPORT: by each connection's addresses and ports), never processes × MAX_FAILURES.
The price: an address whose failures all land on one process (one kept-alive connection) is held back after that
share. Kept in memory, not in the read store: a count costs no statement on the login path, and a restart forgets
at most one process's share."""
import threading
import time
from collections import defaultdict, deque

from nameko.extensions import DependencyProvider

from shared.errors import TooManyRequests
from shared.settings import gateway_processes

MAX_FAILURES = 20  # per address within WINDOW, over all the deployment's gateway processes
WINDOW = 300.0  # seconds


def share(max_failures, processes):
    """One process's share of the limit: never less than one try, and `processes` shares add up to at least it."""
    return max(1, -(-max_failures // processes))


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


class LoginLimit(DependencyProvider):
    """This gateway process's FailedLogins, with its share of the limit (one per container: the tests' in-process
    systems each start afresh)."""

    def setup(self):
        self.limiter = FailedLogins(max_failures=share(MAX_FAILURES, gateway_processes(self.container.config)))

    def get_dependency(self, worker_ctx):
        return self.limiter

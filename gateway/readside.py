"""The read side as a nameko dependency: one ReadStore and one Follower per container."""
from nameko.extensions import DependencyProvider

from gateway.follower import Follower
from gateway.readstore import read_store

# Services whose feeds the read side follows: every service with an event store (runtime.topology.APPLICATIONS;
# tests/unit/test_config.py holds the two equal, so a new service cannot go unprojected).
FOLLOWED_SERVICES = ("identity", "orders", "production", "materials", "files", "capture", "notifications")


class ReadSide(DependencyProvider):
    def setup(self):
        self.store = read_store(self.container.config)
        self.follower = Follower(self.store)

    def get_dependency(self, worker_ctx):
        return self

    def catch_up(self, application, fetch, until=None, news=None, wait=None):
        return self.follower.catch_up(application, fetch, until, news, wait)

    def stop(self):
        self.store.dispose()

    kill = stop

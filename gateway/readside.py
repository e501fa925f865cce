"""The read side as a nameko dependency: one ReadStore and one Follower per container."""
from nameko.extensions import DependencyProvider

from gateway.readstore import ReadStore
from shared.config import read_store_url
from shared.follower import Follower
from shared.topology import FOLLOWED as FOLLOWED_SERVICES  # noqa: F401  (re-exported for the projector)


class ReadSide(DependencyProvider):
    def setup(self):
        self.store = ReadStore(read_store_url(self.container.config))
        self.follower = Follower(self.store)

    def get_dependency(self, worker_ctx):
        return self

    def catch_up(self, application, fetch, until=None):
        return self.follower.catch_up(application, fetch, until)

    def stop(self):
        self.store.dispose()

    kill = stop

"""The whole Stratum system in one test process: the projector runs in its own runner so a test can stop and
restart it while the rest keeps serving."""
from nameko.containers import ServiceContainer
from nameko.runners import ServiceRunner
from nameko.standalone.rpc import ClusterRpcProxy

from runtime.topology import PROCESSES, load

CORE = [name for name in PROCESSES if name != "projector"]


class System:
    def __init__(self, config):
        self.config = config
        self.base_url = f"http://127.0.0.1:{config['STRATUM_PORT']}"
        self.core = ServiceRunner(config)
        for name in CORE:
            self.core.add_service(load(PROCESSES[name]))
        self.projector = None
        self.restarted = {}  # service name → the container that replaced the stopped one

    def stop_service(self, name):
        """Stop one service (its RPC queue stays, unanswered), as a crashed or restarting process would leave it."""
        container = self.restarted.pop(name, None) or self.core.service_map[name]
        container.stop()

    def start_service(self, name):
        container = ServiceContainer(load(PROCESSES[name]), self.config)
        container.start()
        self.restarted[name] = container

    def start(self):
        self.core.start()
        self.start_projector()

    def start_projector(self):
        self.projector = ServiceRunner(self.config)
        self.projector.add_service(load(PROCESSES["projector"]))
        self.projector.start()

    def stop_projector(self):
        if self.projector is not None:
            self.projector.stop()
            self.projector = None

    def stop(self):
        self.stop_projector()
        self.core.stop()

    def kill(self):
        for container in self.restarted.values():
            container.kill()
        if self.projector is not None:
            self.projector.kill()
            self.projector = None
        self.core.kill()

    def dead(self):
        """Names of the services whose container is not running (nameko kills a container on an escaped error)."""
        containers = {c.service_name: c for c in self.core.containers}
        containers.update(self.restarted)
        if self.projector is not None:
            containers.update({c.service_name: c for c in self.projector.containers})
        return sorted(name for name, container in containers.items() if container._died.ready())

    def rpc(self):
        """A standalone RPC client, as another service or a script would call the services."""
        return ClusterRpcProxy(self.config, timeout=20)

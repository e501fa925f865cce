"""RPC to other services by name, with a deadline. nameko 2's in-service RPC waits forever on its own; a caller that
must answer an HTTP client (or keep a follower moving) needs a timeout and a clear 503 instead."""
import eventlet
from nameko.exceptions import UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import ServiceProxy

from shared.amqp import ReplyListener
from shared.errors import ServiceUnavailable


class Services(DependencyProvider):
    rpc_reply_listener = ReplyListener()

    def get_dependency(self, worker_ctx):
        timeout = float(self.container.config.get("STRATUM_RPC_TIMEOUT", 30))
        return ServiceCaller(worker_ctx, self.rpc_reply_listener, timeout)


class ServiceCaller:
    def __init__(self, worker_ctx, reply_listener, timeout):
        self.worker_ctx = worker_ctx
        self.reply_listener = reply_listener
        self.timeout = timeout

    def call(self, service, method, *args, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        proxy = ServiceProxy(self.worker_ctx, service, self.reply_listener)
        try:
            reply = getattr(proxy, method).call_async(*args)
        except UnknownService:
            raise ServiceUnavailable(f"The {service} service is not running.") from None
        try:
            with eventlet.Timeout(timeout):
                return reply.result()
        except eventlet.Timeout:
            raise ServiceUnavailable(f"The {service} service did not answer within {timeout:g} s.") from None

    def fetcher(self, service):
        """A feed reader for `Follower`: (start, limit) → the service's feed batch."""
        return lambda start, limit: self.call(service, "get_notifications", start, limit)

"""RPC to other services by name, with a deadline. nameko 2's in-service RPC waits forever on its own; a caller that
must answer an HTTP client (or keep a follower moving) needs a timeout and a clear 503 instead.

Commands (create, update, delete, act) sent at the same time to one service travel together: one message carries
them all (the service's `commands`), the service runs them side by side as if each had come alone (so their saves
share a transaction, shared.application.GroupCommit), and each caller gets its own answer or its own error.
"""
import threading

import eventlet
from eventlet.event import Event
from nameko.exceptions import UnknownService, deserialize
from nameko.extensions import DependencyProvider
from nameko.rpc import ServiceProxy

from shared.amqp import ReplyListener
from shared.errors import ServiceUnavailable


COMMANDS = ("create", "update", "delete", "act")
MAX_COMMANDS = 32  # in one message
IN_FLIGHT = 2  # messages of commands one process has on their way to one service at a time


class Services(DependencyProvider):
    rpc_reply_listener = ReplyListener()

    def setup(self):
        self.batcher = CommandBatcher()

    def get_dependency(self, worker_ctx):
        timeout = float(self.container.config.get("STRATUM_RPC_TIMEOUT", 30))
        return ServiceCaller(worker_ctx, self.rpc_reply_listener, timeout, self.batcher)


class ServiceCaller:
    def __init__(self, worker_ctx, reply_listener, timeout, batcher=None):
        self.worker_ctx = worker_ctx
        self.reply_listener = reply_listener
        self.timeout = timeout
        self.batcher = batcher

    def command(self, service, method, *args):
        """A command (`create`, `update`, `delete`, `act` with their arguments): its result, or its error raised
        here as if called alone; sent together with the commands other workers of this process send meanwhile."""
        if self.batcher is None:
            return self.call(service, method, *args)
        return self.batcher.command(self, service, method, args)

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


class CommandBatcher:
    """Commands to one service wait here while IN_FLIGHT messages of commands are on their way to it; whoever gets
    a turn sends every command waiting (up to MAX_COMMANDS) in one message and hands each its answer. Under light
    load a command goes alone at once; under load they go together, one message and one transaction for many."""

    def __init__(self):
        self.guard = threading.Lock()
        self.waiting = {}  # service → [entry]
        self.turns = {}  # service → Semaphore(IN_FLIGHT)

    def command(self, caller, service, method, args):
        if method not in COMMANDS:
            raise ValueError(f"{method} is not a command")
        entry = {"command": {"method": method, "args": list(args)}, "done": Event()}
        with self.guard:
            self.waiting.setdefault(service, []).append(entry)
            turn = self.turns.setdefault(service, threading.Semaphore(IN_FLIGHT))
        with turn:
            with self.guard:
                batch = self.waiting[service][:MAX_COMMANDS]
                del self.waiting[service][:len(batch)]
            if batch:  # ours, and whatever else waits (ours may already be in another's message)
                self._send(caller, service, batch)
        try:
            with eventlet.Timeout(caller.timeout + 5):  # the sender gives everyone an answer within its own timeout
                kind, value = entry["done"].wait()
        except eventlet.Timeout:
            raise ServiceUnavailable(f"The {service} service did not answer within {caller.timeout:g} s.") from None
        if kind == "error":
            raise value
        return value

    @staticmethod
    def _send(caller, service, batch):
        try:
            answers = caller.call(service, "commands", [entry["command"] for entry in batch])
        except Exception as error:  # the message's fate is every command's (a 503 when the service is away)
            for entry in batch:
                entry["done"].send(("error", error))
            return
        for entry, answer in zip(batch, answers):
            try:
                answer = ("error", deserialize(answer["error"])) if "error" in answer else ("result", answer["result"])
            except Exception as error:
                answer = ("error", error)
            entry["done"].send(answer)

"""RPC to other services by name, with a deadline. nameko 2's in-service RPC waits forever on its own; a caller that
must answer an HTTP client (or keep a follower moving) needs a timeout and a clear 503 instead.

Commands (create, update, delete, act) sent at the same time to one service travel together: one message carries
them all (the service's `commands`), the service runs them side by side as if each had come alone (so their saves
share a transaction, shared.application.GroupCommit), and each caller gets its own answer or its own error.
"""
import logging
import threading
import time

import eventlet
from eventlet.event import Event
from nameko.exceptions import UnknownService, deserialize
from nameko.extensions import DependencyProvider
from nameko.rpc import ServiceProxy

from shared.amqp import ReplyListener
from shared.errors import ServiceUnavailable

log = logging.getLogger(__name__)


COMMANDS = ("create", "update", "delete", "act")
MAX_COMMANDS = 32  # in one message
IN_FLIGHT = 2  # messages of commands one process has on their way to one service at a time
SENDER_GRACE = 5  # seconds a caller waits past its timeout for a turn and the message that carries its command
MIN_SEND_WINDOW = 1  # seconds: a command with less time left to be answered in is not sent (a 503 at once)


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
        """The answer within `timeout` seconds, sending included, or a ServiceUnavailable (503)."""
        timeout = self.timeout if timeout is None else timeout
        if timeout <= 0:  # a deadline already past: nothing is sent
            raise _unanswered(service, 0)
        proxy = ServiceProxy(self.worker_ctx, service, self.reply_listener)
        # The message is sent by a green thread of its own: while the broker is away a send can wait for kombu's
        # reconnection retries and for a free producer of its process-wide pool, and the caller stops waiting at the
        # deadline without cutting a half-sent message on a shared connection.
        sending = eventlet.spawn(_send_quietly, getattr(proxy, method), args)
        try:
            with eventlet.Timeout(timeout):
                reply, error = sending.wait()
                if error is not None:
                    raise error
                return reply.result()
        except UnknownService:
            raise ServiceUnavailable(f"The {service} service is not running.") from None
        except eventlet.Timeout:
            raise _unanswered(service, timeout) from None

    def fetcher(self, service, deadline=None):
        """A feed reader for `Follower`: (start, limit) → the service's feed batch; with a `deadline`
        (time.monotonic()), each read waits only for what is left until then."""
        return lambda start, limit: self.call(service, "get_notifications", start, limit,
                                              timeout=None if deadline is None else deadline - time.monotonic())


def _send_quietly(method, args):
    """(the reply to wait for, None) or (None, the error sending raised): an error of a send its caller stopped
    waiting for is logged here once, not printed by eventlet as an unhandled one."""
    try:
        return method.call_async(*args), None
    except Exception as error:
        log.debug("sending %s failed: %s", method.method_name, error)
        return None, error


class CommandBatcher:
    """Commands to one service wait here while IN_FLIGHT messages of commands are on their way to it; whoever gets
    a turn sends every command waiting (up to MAX_COMMANDS) in one message and hands each its answer. Under light
    load a command goes alone at once; under load they go together, one message and one transaction for many.

    A caller waits at most its timeout plus SENDER_GRACE in all (its turn, the message, the answer): while a service
    or the broker is away, turns come free only as messages time out, and a caller queued behind them must still
    answer its client in time. A command whose caller stopped waiting before it was sent is withdrawn, not sent."""

    def __init__(self):
        self.guard = threading.Lock()
        self.waiting = {}  # service → [entry]
        self.turns = {}  # service → Semaphore(IN_FLIGHT)

    def command(self, caller, service, method, args):
        if method not in COMMANDS:
            raise ValueError(f"{method} is not a command")
        deadline = time.monotonic() + caller.timeout + SENDER_GRACE
        entry = {"command": {"method": method, "args": list(args)}, "done": Event()}
        with self.guard:
            self.waiting.setdefault(service, []).append(entry)
            turn = self.turns.setdefault(service, threading.Semaphore(IN_FLIGHT))
        while self._waiting(service, entry):  # one turn, usually; more when over MAX_COMMANDS wait ahead of ours
            if not turn.acquire(timeout=max(deadline - time.monotonic(), 0)):
                break
            try:
                window = min(caller.timeout, deadline - time.monotonic())
                if window < MIN_SEND_WINDOW:  # too late to be answered in time: not sent at all
                    break
                with self.guard:
                    batch = self.waiting[service][:MAX_COMMANDS]
                    del self.waiting[service][:len(batch)]
                if batch:  # ours and whatever else waits, or what waits ahead of ours
                    self._send(caller, service, batch, window)
            finally:
                turn.release()
        if self._withdrawn(service, entry):
            raise _unanswered(service, caller.timeout)
        try:  # ours is in a message on its way: its sender answers it within the sender's own deadline
            with eventlet.Timeout(max(deadline - time.monotonic(), MIN_SEND_WINDOW)):
                kind, value = entry["done"].wait()
        except eventlet.Timeout:
            raise _unanswered(service, caller.timeout) from None
        if kind == "error":
            raise value
        return value

    def _waiting(self, service, entry):
        with self.guard:
            return any(waiting is entry for waiting in self.waiting.get(service, ()))

    def _withdrawn(self, service, entry):
        """Take a command out of the queue if nobody has put it in a message yet (True), so it is never sent."""
        with self.guard:
            queue = self.waiting.get(service, [])
            for index, waiting in enumerate(queue):
                if waiting is entry:
                    del queue[index]
                    return True
        return False

    @staticmethod
    def _send(caller, service, batch, timeout):
        try:
            answers = caller.call(service, "commands", [entry["command"] for entry in batch], timeout=timeout)
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


def _unanswered(service, timeout):
    if timeout <= 0:
        return ServiceUnavailable(f"The {service} service could not be asked in time: the request's time was up.")
    return ServiceUnavailable(f"The {service} service did not answer within {round(timeout, 1):g} s.")

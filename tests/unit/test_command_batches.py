"""Commands sent at the same time to one service travel in one message; each caller gets its own answer or error,
within its deadline."""
import time

import eventlet
import pytest

from nameko.exceptions import serialize
from shared.errors import InvalidPayload, ServiceUnavailable
from shared import rpc
from shared.rpc import IN_FLIGHT, CommandBatcher, ServiceCaller


class Caller(ServiceCaller):
    """Answers `commands` messages after a pause, as a busy service would; `uri` "bad" is refused."""

    def __init__(self, batcher, fail=None):
        super().__init__(None, None, timeout=5, batcher=batcher)
        self.messages = []
        self.fail = fail

    def call(self, service, method, *args, timeout=None):
        assert method == "commands"
        self.messages.append([c["args"][1]["name"] for c in args[0]])
        eventlet.sleep(0.02)
        if self.fail:
            raise self.fail
        return [{"error": serialize(InvalidPayload("bad name", field="name"))} if c["args"][1]["name"] == "bad"
                else {"result": {"uri": f"/order/{c['args'][1]['name']}/"}} for c in args[0]]


def _together(calls):
    threads = [eventlet.spawn(call) for call in calls]
    return [thread.wait() for thread in threads]


def test_commands_sent_together_share_messages_and_each_gets_its_own_answer():
    caller = Caller(CommandBatcher())
    results = _together([lambda i=i: caller.command("orders", "create", "order", {"name": str(i)}, {})
                         for i in range(10)])
    assert [r["uri"] for r in results] == [f"/order/{i}/" for i in range(10)]
    assert len(caller.messages) < 10
    assert len(caller.messages[0]) <= 1 + IN_FLIGHT  # the first go at once, the rest wait for a turn together


def test_an_error_is_its_own_commands_alone():
    caller = Caller(CommandBatcher())

    def bad():
        with pytest.raises(InvalidPayload) as raised:
            caller.command("orders", "create", "order", {"name": "bad"}, {})
        return raised.value.field

    outcomes = _together([bad] + [lambda i=i: caller.command("orders", "create", "order", {"name": str(i)}, {})
                                  for i in range(4)])
    assert outcomes[0] == "name" and [o["uri"] for o in outcomes[1:]] == [f"/order/{i}/" for i in range(4)]


def test_a_lost_message_is_every_one_of_its_commands_error():
    caller = Caller(CommandBatcher(), fail=ServiceUnavailable("The orders service did not answer within 5 s."))
    with pytest.raises(ServiceUnavailable):
        caller.command("orders", "create", "order", {"name": "x"}, {})


def test_only_commands_are_batched():
    with pytest.raises(ValueError):
        Caller(CommandBatcher()).command("orders", "get", "order", "x", {})


class StuckCaller(Caller):
    """A service that keeps every message `hold` seconds, whatever the caller's deadline."""

    def __init__(self, batcher, timeout, hold):
        super().__init__(batcher)
        self.timeout, self.hold = timeout, hold

    def call(self, service, method, *args, timeout=None):
        eventlet.sleep(self.hold)
        return super().call(service, method, *args, timeout=timeout)


def test_a_command_that_cannot_leave_by_its_deadline_is_answered_503_and_never_sent(monkeypatch):
    monkeypatch.setattr(rpc, "SENDER_GRACE", 0.3)
    monkeypatch.setattr(rpc, "MIN_SEND_WINDOW", 0.1)
    caller = StuckCaller(CommandBatcher(), timeout=0.5, hold=2)
    ahead = [eventlet.spawn(caller.command, "orders", "create", "order", {"name": str(i)}, {})
             for i in range(IN_FLIGHT)]  # every turn taken by a message the service keeps 2 s
    eventlet.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        caller.command("orders", "create", "order", {"name": "late"}, {})
    assert time.monotonic() - started < 0.5 + 0.3 + 0.2  # its timeout and the grace, not the 2 s the turns took
    assert [r["uri"] for r in (thread.wait() for thread in ahead)] == ["/order/0/", "/order/1/"]
    assert "late" not in sum(caller.messages, [])  # withdrawn: not carried out behind the client's back


class SlowSend:
    """A nameko ServiceProxy whose sends never finish (the broker gone, kombu retrying)."""
    sent = []

    def __init__(self, worker_ctx, service, reply_listener):
        self.service = service

    def __getattr__(self, method):
        proxy = self

        class Method:
            method_name = method

            def call_async(self, *args):
                SlowSend.sent.append((proxy.service, method))
                eventlet.sleep(60)
        return Method()


def test_a_call_is_answered_by_its_deadline_even_while_its_message_cannot_leave(monkeypatch):
    monkeypatch.setattr(rpc, "ServiceProxy", SlowSend)
    caller = ServiceCaller(None, None, timeout=5)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="did not answer within 0.3 s"):
        caller.call("orders", "max_position", timeout=0.3)
    assert time.monotonic() - started < 1
    SlowSend.sent.clear()
    with pytest.raises(ServiceUnavailable, match="time was up"):
        caller.call("orders", "max_position", timeout=0)
    assert SlowSend.sent == []  # a deadline already past sends nothing

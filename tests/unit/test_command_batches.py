"""Commands sent at the same time to one service travel in one message; each caller gets its own answer or error."""
import eventlet
import pytest

from nameko.exceptions import serialize
from shared.errors import InvalidPayload, ServiceUnavailable
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

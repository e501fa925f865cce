"""The doorbell (shared.service.Doorbell): writes at the same moment share a ring that announces the highest position;
every write is announced by a ring published after it, none is left for the followers' timers."""
import eventlet

from shared.follower import from_news
from shared.service import Doorbell


def test_a_lone_write_rings_at_once():
    rung = []
    Doorbell().ring(rung.append, {"application": "orders", "position": 7})
    assert rung == [{"application": "orders", "position": 7}]


def test_writes_during_a_ring_share_the_next_one_with_the_highest_position():
    bell, rung, started = Doorbell(), [], eventlet.event.Event()

    def slow_publish(news):
        if not started.ready():
            started.send()
        eventlet.sleep(0.01)
        rung.append(news["position"])

    first = eventlet.spawn(bell.ring, slow_publish, {"position": 1})
    started.wait()
    for position in (3, 2, 4):  # arrive while the first ring is being published
        bell.ring(slow_publish, {"position": position})
    first.wait()
    assert rung == [1, 4]
    bell.ring(slow_publish, {"position": 5})  # the bell is free again
    assert rung == [1, 4, 5]


def test_a_failed_publish_does_not_keep_the_bell_busy():
    bell, rung = Doorbell(), []

    def failing(news):
        raise OSError("broker away")

    bell.ring(failing, {"position": 1})
    bell.ring(rung.append, {"position": 2})
    assert rung == [{"position": 2}]


def test_a_worker_killed_while_ringing_leaves_the_bell_free():
    bell, rung, started = Doorbell(), [], eventlet.event.Event()

    def hanging(news):
        started.send()
        eventlet.sleep(10)

    ringer = eventlet.spawn(bell.ring, hanging, {"position": 1})
    started.wait()
    ringer.kill()  # GreenletExit, as when a container stops its workers
    bell.ring(rung.append, {"position": 2})
    assert rung == [{"position": 2}]


# -- rings that carry their command's events (shared.service._merged, shared.follower.from_news) ---------------------

def _ring(first, last):
    return {"application": "orders", "position": last, "first": first, "last": last,
            "events": [{"position": p, "uuid": f"u{p}"} for p in range(first, last + 1)]}


def _held_while_ringing(*rings):
    """What a busy bell publishes next after `rings` arrived during a slow first ring."""
    bell, rung, started = Doorbell(), [], eventlet.event.Event()

    def slow_publish(news):
        if not started.ready():
            started.send()
            eventlet.sleep(0.01)
        rung.append(news)

    first = eventlet.spawn(bell.ring, slow_publish, _ring(1, 1))
    started.wait()
    for ring in rings:
        bell.ring(slow_publish, ring)
    first.wait()
    return rung[1]


def test_contiguous_rings_merge_with_all_their_events():
    merged = _held_while_ringing(_ring(2, 3), _ring(4, 6))
    assert (merged["first"], merged["last"], merged["position"]) == (2, 6, 6)
    assert [e["position"] for e in merged["events"]] == [2, 3, 4, 5, 6]


def test_rings_with_a_gap_between_them_merge_into_the_position_only():
    """Notification 4 may be another replica's write: a slice claiming 2..6 would hide it from the followers."""
    merged = _held_while_ringing(_ring(2, 3), _ring(5, 6))
    assert merged == {"application": "orders", "position": 6}


def test_rings_arriving_out_of_order_merge_when_they_still_join():
    merged = _held_while_ringing(_ring(4, 6), _ring(2, 3))
    assert (merged["first"], merged["last"]) == (2, 6)


def test_a_follower_applies_a_ring_that_continues_its_position_without_pulling():
    pulls = []
    read = from_news(lambda start, limit: pulls.append(start) or {"events": [], "last": None}, _ring(5, 7))
    feed = read(6, 200)  # position 5 held already (say, from an earlier ring): the rest of the slice
    assert [e["position"] for e in feed["events"]] == [6, 7] and feed["last"] == 7 and feed["complete"]
    assert pulls == []


def test_a_follower_behind_the_ring_pulls_the_gap():
    pulls = []
    read = from_news(lambda start, limit: pulls.append(start) or {"events": [], "last": None}, _ring(5, 7))
    read(3, 200)  # 3 and 4 are not in the ring: pulled from the feed
    read(8, 200)  # past the ring: pulled too
    assert pulls == [3, 8]
    assert from_news(len, {"application": "orders", "position": 7}) is len  # a ring without events: always pulls


# -- the commands of one message ring once (shared.service.ResourceService.commands) ----------------------------------

class _Store:
    """Each create records one notification, after the previous one (as a group's transaction does)."""
    name = "ringtest"
    aggregates = {}

    def __init__(self):
        self.position = 10

    def create(self, resource, payload, ctx):
        self.position += 1
        event = {"position": self.position, "uuid": payload["uuid"]}
        return {"uri": f"/{resource}/{payload['uuid']}/", "application": self.name, "position": self.position,
                "news": {"events": [event], "first": self.position, "last": self.position}}


def _service():
    from shared.service import ResourceService

    service = ResourceService()
    service.app, rung = _Store(), []
    service.ring_doorbell = lambda event_type, payload: rung.append(payload)
    return service, rung


def test_the_commands_of_one_message_ring_once_with_all_their_events():
    service, rung = _service()
    answers = service.commands([{"method": "create", "args": ["order", {"uuid": f"u{n}"}, {}]} for n in range(3)])
    assert [answer["result"]["position"] for answer in answers] == [11, 12, 13]
    assert len(rung) == 1
    assert (rung[0]["first"], rung[0]["last"], rung[0]["position"]) == (11, 13, 13)
    assert [event["position"] for event in rung[0]["events"]] == [11, 12, 13]


def test_a_command_outside_a_message_of_commands_still_rings_at_once():
    service, rung = _service()
    service.create("order", {"uuid": "u1"}, {})
    service.commands([{"method": "create", "args": ["order", {"uuid": "u2"}, {}]}])
    assert [ring["position"] for ring in rung] == [11, 12]


# -- rings whose commands' callers apply them (shared.service.CALLER_APPLIES; gateway.projector leaves those alone) ----

def test_a_ring_says_so_when_the_callers_of_all_its_commands_apply_its_events():
    from shared.application import CALLER_CATCHES_UP
    from shared.service import CALLER_APPLIES

    service, rung = _service()
    service.commands([{"method": "create", "args": ["order", {"uuid": f"u{n}"}, {CALLER_CATCHES_UP: True}]}
                      for n in range(3)])
    assert rung[-1].get(CALLER_APPLIES) is True
    mixed = [{CALLER_CATCHES_UP: True}, {}]  # a command sent by a service's rule: nobody applies it but the projector
    service.commands([{"method": "create", "args": ["order", {"uuid": f"v{n}"}, ctx]} for n, ctx in enumerate(mixed)])
    assert CALLER_APPLIES not in rung[-1]
    service.create("order", {"uuid": "w"}, {})
    assert CALLER_APPLIES not in rung[-1]


def test_rings_merged_by_a_busy_bell_leave_the_events_to_their_callers_only_when_all_of_them_do():
    from shared.service import CALLER_APPLIES

    applied = dict(_ring(2, 3), **{CALLER_APPLIES: True})
    assert _held_while_ringing(applied, dict(_ring(4, 6), **{CALLER_APPLIES: True})).get(CALLER_APPLIES) is True
    assert CALLER_APPLIES not in _held_while_ringing(applied, _ring(4, 6))
    assert CALLER_APPLIES not in _held_while_ringing(_ring(4, 6), applied)

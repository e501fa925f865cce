"""The doorbell (shared.service.Doorbell): writes at the same moment share a ring that announces the highest position;
every write is announced by a ring published after it, none is left for the followers' timers."""
import eventlet

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

"""The sweeper finds background work a crash left undone, from the event log alone."""
import time

from services.files.domain import Upload
from services.orders.application import Orders
from services.orders.domain import Order
from shared.resource import Resource
from shared.sweep import Sweeper
from tests.kit.apps import IN_MEMORY, command_ctx

BLOB = {"sha256": "a" * 64, "size": 10, "media_type": "application/octet-stream", "name": "x.stl"}


def test_an_upload_whose_job_was_lost_is_resumed_after_the_grace_period(files):
    model_id = files.create("model", {"name": "m.stl", "type": "stl"}, command_ctx())["uri"].split("/")[2]
    files.advance("model", model_id, "receive", {"blob": BLOB}, "upload-1")  # committed; the job message is "lost"
    sweeper, resumed = Sweeper(files, ((None, Upload.FileReceived),), grace_seconds=60), []
    waiting = lambda r: r.fields.get("virus_scan") == "unscanned"
    sweeper.sweep(waiting, resumed.append)
    assert resumed == []  # within its grace period the job may still be running
    sweeper.sweep(waiting, resumed.append, now=time.time() + 61)
    assert [str(r.id) for r in resumed] == [model_id]
    files.advance("model", model_id, "scanned", {"verdict": "passed", "reason": ""}, "scan-1")
    sweeper.sweep(waiting, resumed.append, now=time.time() + 200)
    assert len(resumed) == 1 and sweeper.waiting == {}  # done work is forgotten


def test_a_fresh_sweeper_reads_the_whole_log_once(files):
    ids = [files.create("model", {"name": f"m{i}.stl", "type": "stl"}, command_ctx())["uri"].split("/")[2]
           for i in range(3)]
    for i, model_id in enumerate(ids):
        files.advance("model", model_id, "receive", {"blob": dict(BLOB, sha256=str(i) * 64)}, f"u{i}")
    resumed = []
    Sweeper(files, ((None, Upload.FileReceived),), 0).sweep(lambda r: True, resumed.append, now=time.time() + 1)
    assert sorted(str(r.id) for r in resumed) == sorted(ids)


def test_a_stuck_clone_is_found_by_its_aggregate_and_event_class():
    orders = Orders(env=IN_MEMORY)
    source = orders.create("order", {"name": "src"}, command_ctx())["uri"].split("/")[2]
    clone = orders.act("order", source, "clone", {}, command_ctx())
    resumed = []
    Sweeper(orders, ((Order, Resource.Created),), 0).sweep(lambda o: o.fields.get("status") == "cloning", resumed.append,
                                                 now=time.time() + 1)
    assert [f"/order/{r.id}/" for r in resumed] == [clone["uri"]]
    orders.close()

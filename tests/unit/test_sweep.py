"""The sweeper finds background work a crash left undone, from the event log alone."""
import time

from services.files.domain import Upload
from services.orders.application import Orders
from services.orders.domain import Order
from shared.resource import Resource
from shared.sweep import Checkpoints, Sweeper, sweeper_for
from tests.kit.apps import IN_MEMORY, command_ctx, counting_reads

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


# -- checkpoints: a restarted sweeper reads only what is new ----------------------------------------------------------

def _file_store(tmp_path):
    from services.files.application import Files
    return Files(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "files.sqlite")})


def _model(files, name):
    return files.create("model", {"name": name, "type": "stl"}, command_ctx())["uri"].split("/")[2]


STARTS = ((None, Upload.FileReceived),)


def test_a_restarted_sweeper_reads_only_what_is_new_and_still_resumes_a_job_pending_across_the_restart(tmp_path):
    files = _file_store(tmp_path)
    pending = _model(files, "pending.stl")
    files.advance("model", pending, "receive", {"blob": BLOB}, "upload-pending")  # its job message is "lost"
    for i in range(20):
        _model(files, f"old{i}.stl")
    waiting = lambda r: r.fields.get("virus_scan") == "unscanned"
    first, resumed = sweeper_for(files, "jobs", STARTS, 60), []
    first.sweep(waiting, resumed.append)  # reads the whole log once; the job is still within its grace period
    assert resumed == [] and list(first.waiting) == [pending]
    seen = files.recorder.max_notification_id()
    files.close()  # the process stops

    files = _file_store(tmp_path)  # …and a new one starts on the same store
    new = _model(files, "new.stl")
    read = counting_reads(files)
    sweeper_for(files, "jobs", STARTS, 60).sweep(waiting, resumed.append, now=time.time() + 61)
    assert read and min(read) == seen + 1  # nothing before the checkpoint was read again
    assert len(read) == files.recorder.max_notification_id() - seen
    assert [str(r.id) for r in resumed] == [pending]  # asked for before the restart, found after it
    assert new not in [str(r.id) for r in resumed]
    files.close()


def test_a_job_seen_done_is_forgotten_for_good(tmp_path):
    files = _file_store(tmp_path)
    model = _model(files, "m.stl")
    files.advance("model", model, "receive", {"blob": BLOB}, "upload-1")
    files.advance("model", model, "scanned", {"verdict": "passed", "reason": ""}, "scan-1")
    resumed = []
    sweeper_for(files, "jobs", STARTS, 0).sweep(lambda r: r.fields.get("virus_scan") == "unscanned", resumed.append)
    files.close()
    files = _file_store(tmp_path)
    sweeper = sweeper_for(files, "jobs", STARTS, 0)
    sweeper.sweep(lambda r: True, resumed.append)  # anything still watched would be resumed now
    assert resumed == [] and sweeper.waiting == {}
    files.close()


def test_a_crash_before_the_checkpoint_costs_a_second_read_never_a_job(tmp_path):
    files = _file_store(tmp_path)
    model = _model(files, "m.stl")
    files.advance("model", model, "receive", {"blob": BLOB}, "upload-1")

    def crash(resource):
        raise RuntimeError("the broker went away while re-publishing")

    try:
        sweeper_for(files, "jobs", STARTS, 0).sweep(lambda r: True, crash, now=time.time() + 1)
    except RuntimeError:
        pass
    files.close()
    files = _file_store(tmp_path)
    read, resumed = counting_reads(files), []
    sweeper_for(files, "jobs", STARTS, 0).sweep(lambda r: True, resumed.append, now=time.time() + 1)
    assert min(read) == 1  # no checkpoint was written: the log is read again
    assert [str(r.id) for r in resumed] == [model]
    files.close()


def test_a_checkpoint_never_moves_back(tmp_path):
    """Two processes of one service sweep the same log: the one behind does not undo the one ahead."""
    files = _file_store(tmp_path)
    checkpoints = Checkpoints(files)
    checkpoints.create_table()
    assert checkpoints.save("jobs", 10, {"a": 1.0})
    checkpoints.save("jobs", 7, {"b": 2.0})
    assert checkpoints.load("jobs") == (10, {"a": 1.0})
    checkpoints.save("jobs", 10, {})
    assert checkpoints.load("jobs") == (10, {})
    assert checkpoints.load("other") is None
    files.close()


def test_a_sweeper_on_an_in_memory_store_checkpoints_too(files):
    model_id = _model(files, "m.stl")
    files.advance("model", model_id, "receive", {"blob": BLOB}, "upload-1")
    sweeper_for(files, "jobs", STARTS, 60).sweep(lambda r: True, lambda r: None)
    position, waiting = Checkpoints(files).load("jobs")
    assert position == files.recorder.max_notification_id() and list(waiting) == [model_id]

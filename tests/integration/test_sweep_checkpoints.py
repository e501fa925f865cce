"""Sweeps checkpointed on PostgreSQL: the migrate step makes the table in the service's schema, and a restarted
sweeper reads only what is new yet still resumes a job that was pending across the restart."""
import time

import pytest

from services.files.application import Files
from services.files.domain import Upload
from shared.eventstore import create_store
from shared.settings import event_store_env
from shared.sweep import sweeper_for
from tests.kit.apps import command_ctx, counting_reads

pytestmark = pytest.mark.integration
BLOB = {"sha256": "b" * 64, "size": 10, "media_type": "application/octet-stream", "name": "x.stl"}
STARTS = ((None, Upload.FileReceived),)


@pytest.fixture
def env(postgres_dsn, tmp_path):
    env = event_store_env({"STRATUM_POSTGRES_DSN": postgres_dsn, "STRATUM_DATA_DIR": str(tmp_path)}, "files")
    create_store(env, Files)  # the migrate step; the services then run with CREATE_TABLE off
    return env


def _model(files, name):
    return files.create("model", {"name": name, "type": "stl"}, command_ctx())["uri"].split("/")[2]


def test_a_restarted_sweeper_reads_only_what_is_new_on_postgres(env):
    waiting = lambda r: r.fields.get("virus_scan") == "unscanned"
    files = Files(env=env)
    pending = _model(files, "pending.stl")
    files.advance("model", pending, "receive", {"blob": BLOB}, "upload-pending")
    for i in range(5):
        _model(files, f"old{i}.stl")
    resumed = []
    sweeper_for(files, "jobs", STARTS, 60).sweep(waiting, resumed.append)
    seen = files.recorder.max_notification_id()
    files.close()

    files = Files(env=env)
    _model(files, "new.stl")
    read = counting_reads(files)
    sweeper_for(files, "jobs", STARTS, 60).sweep(waiting, resumed.append, now=time.time() + 61)
    assert read and min(read) > seen
    assert [str(r.id) for r in resumed] == [pending]
    files.close()

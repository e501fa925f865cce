"""The files service's domain on an in-memory store: the upload promise, its named events, zipfile moves."""
import uuid

import pytest

from shared.errors import Conflict, InvalidPayload
from tests.kit.apps import BUREAU, command_ctx

BLOB = {"sha256": "a" * 64, "size": 84, "media_type": "application/octet-stream", "name": "m.stl"}
FIGURES = {"volume_mm": 6000.0, "surface_area_mm": 2200.0, "size": {"x": 10, "y": 20, "z": 30}, "polygons": 12,
           "file_size": 684, "analyses": {"manifold": True}}


def new_model(files):
    result = files.create("model", {"name": "m.stl", "type": "stl"}, command_ctx())
    assert result["upload"] is True
    return result["uri"].split("/")[2]


def test_a_model_walks_the_promise_and_names_each_step(files):
    model = new_model(files)
    files.advance("model", model, "receive", {"blob": BLOB}, "r1")
    files.advance("model", model, "scanned", {"verdict": "passed", "reason": ""}, "s1")
    files.advance("model", model, "analyzed", {"figures": FIGURES}, "a1")
    fields = files.get_upload("model", model).fields
    assert fields["status"] == "processed" and fields["virus_scan"] == "passed" and fields["volume_mm"] == 6000.0
    names = [e["names"][-1] for e in files.feed(1, 100)["events"]]
    assert names == ["ModelCreated", "ModelFileReceived", "ModelVirusScanned", "ModelAnalyzed"]
    # blob references stay out of the public fields the read side renders
    assert "_content" in files.feed(1, 100)["events"][1]["fields"]
    assert all(not k.startswith("_") for k in files.read("model", model, {"platform_admin": True}))


def test_an_outcome_waits_to_be_announced_until_it_is_recorded_as_told(files):
    """The event log is the outbox: a processed model not yet announced to others is found as such."""
    model = new_model(files)
    files.advance("model", model, "receive", {"blob": BLOB}, "r1")
    assert files.get_upload("model", model).outcome_unannounced is False  # still processing: nothing to tell
    files.advance("model", model, "scanned", {"verdict": "passed", "reason": ""}, "s1")
    files.advance("model", model, "analyzed", {"figures": FIGURES}, "a1")
    assert files.get_upload("model", model).outcome_unannounced is True
    files.advance("model", model, "outcome_announced", {"sha256": BLOB["sha256"]}, "o1")
    assert files.get_upload("model", model).outcome_unannounced is False
    assert files.feed(1, 100)["events"][-1]["names"] == ["ModelUpdated", "ModelOutcomeAnnounced"]


def test_the_same_bytes_again_change_nothing_other_bytes_are_refused(files):
    model = new_model(files)
    files.advance("model", model, "receive", {"blob": BLOB}, "r1")
    files.advance("model", model, "receive", {"blob": BLOB}, "r2")
    assert files.get_upload("model", model).version == 2
    with pytest.raises(Conflict):
        files.advance("model", model, "receive", {"blob": dict(BLOB, sha256="b" * 64)}, "r3")


def test_quarantine_ends_processing_with_the_reason(files):
    model = new_model(files)
    files.advance("model", model, "receive", {"blob": BLOB}, "r1")
    files.advance("model", model, "scanned", {"verdict": "quarantined", "reason": "EICAR"}, "s1")
    fields = files.get_upload("model", model).fields
    assert fields["status"] == "error" and "EICAR" in fields["analyses"]["error"]
    files.advance("model", model, "analyzed", {"figures": FIGURES}, "a1")  # a late analysis cannot revive it
    assert files.get_upload("model", model).fields["status"] == "error"


def test_a_zipfile_moves_only_forward(files):
    from services.files.domain import Zipfile

    zipfile_ = Zipfile.create(uuid.uuid4(), {"status": "pending"}, BUREAU, None)
    assert zipfile_.expire() is False  # a pending bundle is not deleted under its job
    assert zipfile_.start() and zipfile_.complete(BLOB)
    assert zipfile_.fields["status"] == "completed" and zipfile_.fields["_content"] == BLOB
    assert zipfile_.start() is False
    assert zipfile_.expire() and zipfile_.fields == dict(zipfile_.fields, status="deleted", _content=None)


def test_a_new_file_unit_measures_the_same_bytes_again(files):
    model = new_model(files)
    files.advance("model", model, "receive", {"blob": BLOB}, "r1")
    with pytest.raises(Conflict):  # not while its analysis runs
        files.update("model", model, {"file_unit": "in"}, command_ctx())
    files.advance("model", model, "scanned", {"verdict": "passed", "reason": ""}, "s1")
    files.advance("model", model, "analyzed", {"figures": FIGURES}, "a1")
    files.advance("model", model, "outcome_announced", {"sha256": BLOB["sha256"]}, "o1")
    files.update("model", model, {"file_unit": "in"}, command_ctx())
    fields = files.get_upload("model", model).fields
    assert (fields["file_unit"], fields["status"], fields["_announced"]) == ("in", "processing", None)
    assert fields["volume_mm"] == 6000.0  # the old figures stay until the new analysis replaces them
    assert files.get_upload("model", model).awaiting_analysis
    assert files.feed(1, 100)["events"][-1]["names"] == ["ModelUpdated", "ModelUnitChanged"]
    files.update("model", model, {"name": "renamed.stl"}, command_ctx())  # other metadata: no re-analysis
    assert files.feed(1, 100)["events"][-1]["names"] == ["ModelUpdated"]


def test_a_quarantined_model_cannot_be_measured_again(files):
    model = new_model(files)
    files.advance("model", model, "receive", {"blob": BLOB}, "r1")
    files.advance("model", model, "scanned", {"verdict": "quarantined", "reason": "EICAR"}, "s1")
    with pytest.raises(InvalidPayload):
        files.update("model", model, {"file_unit": "in"}, command_ctx())

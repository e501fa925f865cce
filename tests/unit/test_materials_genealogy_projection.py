"""The genealogy projection (materials.md §10; services.materials.genealogy_projection): the answer walked over the
process's projection is exactly the answer walked over the aggregates replayed from the store, it is current (an
action committed after one answer is in the next), a second application on the same store (another process) builds
its own from the log, and the projection does not share lists with the answers it gave."""
import pytest

from services.materials.application import Materials
from services.materials.genealogy import Reader, genealogy
from services.materials.genealogy_projection import projection_of
from shared.uris import parse_uri
from tests.unit.materials_kit import Kit

ADMIN = {"platform_admin": True}


@pytest.fixture
def kit(tmp_path):
    kit = Kit(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(tmp_path / "materials.sqlite"))
    kit.store = str(tmp_path / "materials.sqlite")
    yield kit
    kit.close()


def replayed(kit, batch):
    return genealogy(kit.app, parse_uri(batch)[1], ADMIN, reader=Reader(kit.app))


def test_the_projection_answers_what_the_replayed_aggregates_answer_and_stays_current(kit):
    first = kit.initial_batch(kit.lot(containers=2, size=10.0))
    second = kit.initial_batch(kit.lot(containers=1, size=5.0))
    split = kit.act("split_batch", first, 4.0)
    blend = kit.act("blend_batches", split, batches=[second])
    answer = kit.genealogy(first)
    assert answer == replayed(kit, first)
    assert {n["destination_batch"] for n in answer["children_tree"]} == {split}
    position = projection_of(kit.app).position
    later = kit.act("split_batch", blend, 1.0)  # committed after the first answer
    answer = kit.genealogy(first)
    assert projection_of(kit.app).position > position
    assert answer == replayed(kit, first)
    assert later in {n["uri"] for n in answer["batches"]}
    answer["batches"][0]["material_lots"].append("/material-lot/x/")  # the caller's copy, not the projection's
    assert kit.genealogy(first) == replayed(kit, first)

    other = Materials(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": kit.store})
    try:  # another process on the same store: its projection is built from the log at its first answer
        assert other.genealogy(parse_uri(later)[1], ADMIN) == kit.genealogy(later)
    finally:
        other.close()


def test_the_service_keeps_the_projection_current_between_answers(kit):
    from nameko.testing.services import worker_factory

    from services.materials.service import MaterialsService
    batch = kit.initial_batch(kit.lot(containers=1, size=10.0))
    service = worker_factory(MaterialsService, app=kit.app)
    service.keep_genealogy_current()
    assert projection_of(kit.app).position == kit.app.recorder.max_notification_id()
    assert batch in projection_of(kit.app).nodes

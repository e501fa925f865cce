"""The genealogy projection (materials.md §10; services.materials.genealogy_projection): the answer walked over the
stored projection is exactly the answer walked over the aggregates replayed from the store, it is current (an
action committed after one answer is in the next), a second application on the same store (another process) answers
from the same rows without reading the log again, a store of an earlier release (events, no projection) is filled
once, two processes following the same log apply each notification once, and the projection shares no lists with
the answers it gave."""
import pytest

from services.materials.application import Materials
from services.materials.genealogy import Reader, genealogy
from services.materials.genealogy_projection import fill, projection_of
from shared.uris import parse_uri
from tests.kit.apps import counting_reads
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
    position = projection_of(kit.app).position()
    later = kit.act("split_batch", blend, 1.0)  # committed after the first answer
    answer = kit.genealogy(first)
    assert projection_of(kit.app).position() > position
    assert answer == replayed(kit, first)
    assert later in {n["uri"] for n in answer["batches"]}
    answer["batches"][0]["material_lots"].append("/material-lot/x/")  # the caller's copy, not the projection's
    assert kit.genealogy(first) == replayed(kit, first)

    other = Materials(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": kit.store})
    try:  # another process on the same store: the same rows, nothing of the log read again
        read = counting_reads(other)
        assert other.genealogy(parse_uri(later)[1], ADMIN) == kit.genealogy(later)
        assert read == []
    finally:
        other.close()


def test_the_service_keeps_the_projection_current_between_answers(kit):
    from nameko.testing.services import worker_factory

    from services.materials.service import MaterialsService
    batch = kit.initial_batch(kit.lot(containers=1, size=10.0))
    service = worker_factory(MaterialsService, app=kit.app)
    service.keep_genealogy_current()
    assert projection_of(kit.app).position() == kit.app.recorder.max_notification_id()
    assert [path for path, _, _ in projection_of(kit.app).rows([batch])] == [batch]


def test_a_store_of_an_earlier_release_is_filled_once(kit):
    """An earlier release kept no projection: its store holds the events only. The first catch-up (the migrate
    step's `fill`, or the first answer) reads the whole log once; later starts read only what is new."""
    first = kit.initial_batch(kit.lot(containers=2, size=10.0))
    split = kit.act("split_batch", first, 4.0)
    with kit.app.recorder.datastore.transaction(commit=True) as cursor:  # as the earlier release left it
        cursor.execute("DROP TABLE IF EXISTS genealogy_nodes")
        cursor.execute("DROP TABLE IF EXISTS genealogy_position")
    end = kit.app.recorder.max_notification_id()

    upgraded = Materials(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": kit.store})
    try:
        read = counting_reads(upgraded)
        assert fill(upgraded) == end
        assert min(read) == 1 and max(read) == end
        assert upgraded.genealogy(parse_uri(first)[1], ADMIN) == replayed(kit, first)
    finally:
        upgraded.close()
    kit.act("split_batch", split, 1.0)
    restarted = Materials(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": kit.store})
    try:
        read = counting_reads(restarted)
        assert restarted.genealogy(parse_uri(first)[1], ADMIN) == replayed(kit, first)
        assert read and min(read) > end  # only the action since
    finally:
        restarted.close()


def test_two_processes_apply_each_notification_once(kit):
    """Two applications on one store catching up in turns (two materials processes): the position only moves
    forward, and the rows equal those of one follower (a creation applied twice would be ignored, but a change
    applied over a newer row would undo it: the page's position check is what prevents that)."""
    other = Materials(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": kit.store})
    try:
        batch = kit.initial_batch(kit.lot(containers=2, size=10.0))
        ours, theirs = projection_of(kit.app), projection_of(other)
        theirs.catch_up()
        kit.act("split_batch", batch, 4.0)
        stale = theirs.position()
        page = other.recorder.select_notifications(start=stale + 1, limit=100)  # the other process reads a page…
        later = kit.act("split_batch", batch, 1.0)
        ours.catch_up()  # …this one applies it and what came after…
        assert theirs._apply_page(stale, page) == ours.position()  # …so the other's write finds the position moved
        assert theirs.catch_up() == 0
        assert later in {n["destination_batch"] for n in kit.genealogy(batch)["children_tree"]}
        assert kit.genealogy(batch) == replayed(kit, batch)
    finally:
        other.close()



def test_the_rows_a_process_keeps_follow_what_another_process_applied(kit):
    """A process keeps the rows its answers read; a change applied by another process (which moved the position,
    so this one has nothing to catch up) is in this process's next answer all the same."""
    batch = kit.initial_batch(kit.lot(containers=2, size=10.0))
    split = kit.act("split_batch", batch, 4.0)
    assert kit.genealogy(split) == replayed(kit, split)  # the parent batch's row now kept in this process
    other = Materials(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": kit.store})
    try:
        kit.act("sieve", batch)
        assert projection_of(other).catch_up() > 0
        assert projection_of(kit.app).catch_up() == 0
        answer = kit.genealogy(split)
        assert {b["uri"]: b["powder_quality"] for b in answer["batches"]}[batch] == "sieved"
        assert answer == replayed(kit, split)
    finally:
        other.close()


def test_a_catch_up_that_meets_another_process_mid_page_still_reaches_the_end(kit):
    """Another process applied part of the page this one read (its own read was shorter): this one's write finds
    the position moved to the middle of its page, and reads on from there instead of stopping short of the end."""
    other = Materials(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": kit.store})
    try:
        batch = kit.initial_batch(kit.lot(containers=2, size=10.0))
        ours, theirs = projection_of(kit.app), projection_of(other)
        ours.catch_up()
        split = kit.act("split_batch", batch, 4.0)
        start, moved, select = theirs.position(), [], other.recorder.select_notifications

        def interleaved(*args, **kwargs):
            page = select(*args, **kwargs)
            if page and not moved:  # meanwhile the other process applies the first two notifications of it
                moved.append(ours._apply_page(start, page[:2]))
            return page

        other.recorder.select_notifications = interleaved
        theirs.catch_up()
        assert start < moved[0] < kit.app.recorder.max_notification_id()
        assert theirs.position() == kit.app.recorder.max_notification_id()
        assert other.genealogy(parse_uri(split)[1], ADMIN) == replayed(kit, split)
    finally:
        other.close()

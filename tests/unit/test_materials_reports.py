"""Traceability reports (materials.md §3.11, §3.26, §6.6): the job moves a report pending → processing → complete
with a real PDF in the blob store (it opens, names the lots, the purchase order and the batches, and holds the
genealogy picture, itself a real PNG) — or to error with a note saying what failed."""
import io

import pytest
from PIL import Image
from pypdf import PdfReader

from services.materials import report_render
from services.materials.reports import ReportJob
from shared.blobstore import Blob, BlobStore
from shared.errors import InvalidPayload, NotFound
from tests.unit.materials_kit import Kit

KEY = bytes(range(32))


class NoProduction:
    """The other services as seen from a unit test: production knows no run, print or piece; files takes what it
    is sent (noted)."""

    def __init__(self):
        self.sent = []

    def call(self, service, method, *args, **kwargs):
        if service == "files":
            self.sent.append((method, args))
            return {}
        raise NotFound("The requested resource cannot be found.")

    def command(self, service, method, *args):
        return self.call(service, method, *args)


@pytest.fixture
def kit():
    kit = Kit()
    yield kit
    kit.close()


def pdf_text(data):
    reader = PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_the_picture_is_a_png_of_the_graph():
    graph = {"nodes": [("/po/1/", "purchase-order", "PO 77"), ("/lot/1/", "lot", "Ti64 50 kg"),
                       ("/b/1/", "batch", "b1"), ("/b/2/", "target", "b2"), ("/run/1/", "run", "r1"),
                       ("/piece/1/", "piece", "part 1")],
             "edges": [("/po/1/", "/lot/1/", ""), ("/lot/1/", "/b/1/", "50 kg"), ("/b/1/", "/b/2/", "20 kg"),
                       ("/b/2/", "/run/1/", "4 kg"), ("/run/1/", "/piece/1/", "")]}
    png = report_render.picture(graph)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        # six generations left to right: the picture is wider than one box per generation, and not blank
        assert image.size[0] >= 6 * report_render.BOX_W
        assert len(image.convert("RGB").getcolors(1 << 20)) > 3


def test_the_pdf_opens_and_holds_the_tables_and_the_picture():
    facts = {"title": "Material batch traceability report", "subtitle": "test",
             "target": [("Material batch", "/material-batch/1/")],
             "sections": [("Material lots", ["Lot", "Name"], [["/material-lot/1/", "Ti64 delivery"]])],
             "graph": {"nodes": [("/material-lot/1/", "lot", "Ti64 delivery")], "edges": []}}
    data = report_render.pdf(facts, report_render.picture(facts["graph"]))
    assert data.startswith(b"%PDF-")
    reader, text = pdf_text(data)
    assert "Ti64 delivery" in text and "/material-lot/1/" in text
    images = [image for page in reader.pages for image in page.images]
    assert images and Image.open(io.BytesIO(images[0].data)).size[0] > 0


def walk(kit):
    """A PO, two lots; an initial batch of each; a blend of both: the blend's ancestors name both lots."""
    material = kit.material()
    location = kit.location()
    po = kit.create("material-purchase-order", {"external_id": "PO-4711", "material": material,
                                                "planned_full_quantity": 40.0})
    first = kit.lot(material, location, containers=2, size=10.0, name="First lot", material_purchase_order=po)
    second = kit.lot(material, location, containers=1, size=5.0, name="Second lot")
    a, b = kit.initial_batch(first), kit.initial_batch(second)
    blend = kit.act("blend_batches", a, 25.0, batches=[b])
    return {"po": po, "first": first, "second": second, "a": a, "b": b, "blend": blend}


def test_a_batch_report_is_made_in_the_background_and_names_the_lots(kit, tmp_path):
    made = walk(kit)
    report = kit.create("material-batch-traceability-report", {"material_batch": made["blend"]})
    assert kit.get(report)["status"] == "pending" and kit.get(report)["content"] is None
    blobs = BlobStore(tmp_path, KEY)
    peers = NoProduction()
    ReportJob(kit.app, blobs, peers, lambda result: None).run(report)
    aggregate = kit.aggregate(report)
    assert aggregate.fields["status"] == "complete" and aggregate.fields["error"] is None
    names = [e["names"][-1] for e in kit.app.feed(1, 10_000)["events"] if e["uuid"] == str(aggregate.id)]
    assert names == ["MaterialBatchTraceabilityReportCreated", "MaterialBatchTraceabilityReportProcessingStarted",
                     "MaterialBatchTraceabilityReportCompleted"]
    blob = Blob.from_dict(aggregate.fields["_content"])
    assert blob.media_type == "application/pdf" and blob.name.endswith(".pdf")
    # the same blob filed as a document of the batch (files: create, then the bytes' arrival)
    (create, (resource, payload, ctx)), (received, (kind, document_uuid, sent_blob, _)) = peers.sent
    assert (create, resource, received, kind) == ("create", "document", "upload_received", "document")
    assert payload == {"name": blob.name, "related_table_name": "material_batch",
                       "related_uuid": [made["blend"].strip("/").rsplit("/", 1)[1]]}
    assert ctx["uuid"] == document_uuid and sent_blob == blob.as_dict()
    assert aggregate.fields["document"] == f"/document/{document_uuid}/"
    data = b"".join(blobs.verified_chunks(blob))
    reader, text = pdf_text(data)
    squeezed = "".join(text.split())  # a long URI wraps inside its table cell
    for expected in ("First lot", "Second lot", "PO-4711", made["po"], made["first"], made["second"], made["blend"],
                     made["a"], made["b"], "blend_batches", "create_initial_batch"):
        assert "".join(expected.split()) in squeezed, expected
    assert "25kg" in squeezed and "20kg" in squeezed and "5kg" in squeezed  # the blend, and what each batch gave
    assert [image for page in reader.pages for image in page.images]


def test_a_failing_report_ends_in_error_with_a_note(kit, tmp_path):
    made = walk(kit)
    report = kit.create("material-batch-traceability-report", {"material_batch": made["a"]})

    class FullDisk:
        def put_file(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

    ReportJob(kit.app, FullDisk(), NoProduction(), lambda result: None).run(report)
    body = kit.aggregate(report).fields
    assert body["status"] == "error"
    assert body["error"] == "The report could not be made: OSError: [Errno 28] No space left on device"
    ReportJob(kit.app, BlobStore(tmp_path, KEY), NoProduction(), lambda result: None).run(report)
    assert kit.aggregate(report).fields["status"] == "error"  # a repeated message changes a finished report not


def test_a_report_needs_a_batch_the_caller_can_see(kit):
    with pytest.raises(NotFound):
        kit.create("material-batch-traceability-report",
                   {"material_batch": "/material-batch/00000000-0000-0000-0000-000000000000/"})


def test_a_piece_report_refuses_unknown_filters(kit):
    with pytest.raises(InvalidPayload):
        kit.app.create("traceability-report", {"piece": "/piece/00000000-0000-0000-0000-000000000001/",
                                               "filters": ["gossip"]}, kit.ctx(report_piece="/piece/x/"))


def test_a_very_deep_genealogy_still_draws_a_printable_picture():
    chain = [f"/material-batch/{i}/" for i in range(500)]
    graph = {"nodes": [(p, "batch", p) for p in chain],
             "edges": [(a, b, "1 kg") for a, b in zip(chain, chain[1:])]}
    with Image.open(io.BytesIO(report_render.picture(graph))) as image:
        columns = report_render.MAX_COLUMNS + 1
        assert image.size[0] <= 2 * report_render.MARGIN + columns * (report_render.BOX_W + report_render.GAP_X)


def test_the_service_makes_a_report_from_its_message_and_the_sweep_asks_again_for_a_lost_one(kit, tmp_path):
    """The job's message (published after the POST commits) runs it; a report whose message was lost is asked for
    again by the sweep once the grace period has passed, and nothing more once it is complete."""
    from nameko.testing.services import worker_factory

    from services.materials.reports import REPORT_REQUESTED
    from services.materials.service import MaterialsService

    made = walk(kit)
    report = kit.create("material-batch-traceability-report", {"material_batch": made["a"]})
    service = worker_factory(MaterialsService, app=kit.app, blobs=BlobStore(tmp_path, KEY),
                             config={"STRATUM_SWEEP_SECONDS": "0"})
    service.services = NoProduction()
    service.resume_reports()  # pending, asked for long enough ago (grace 0): asked for again
    service.dispatch.assert_called_with(REPORT_REQUESTED, {"report": report})
    service.make_report({"report": report})
    assert kit.aggregate(report).fields["status"] == "complete"
    service.dispatch.reset_mock()
    service.resume_reports()  # done: forgotten
    assert not any(c.args[0] == REPORT_REQUESTED for c in service.dispatch.call_args_list)

"""Traceability reports as background jobs (materials.md §3.11 `/material-batch-traceability-report/`, §3.26
`/traceability-report/`, §6.6): POST stores the report `pending` and asks for its job (`traceability_report_requested`,
published after the commit); the job moves it to `processing`, gathers the facts, renders the PDF (genealogy picture
and tables: services.materials.report_render), stores it in the deployment's blob store (the files service's store,
encrypted at rest) and completes the report with it (`_content`: the gateway renders `content` as a signed download
link, as for a bundle or a layout's picture), the same blob also filed as a files-service `/document/` (`document`)
— or records `error` with a note saying what failed. Each step is
recorded under a command id derived from (report, step), so a redelivered or resumed job changes nothing done; the
sweep in the service restarts reports whose message was lost or whose process died (shared.sweep).

What a report holds (the backward and forward walks of the powder walk, tests/e2e/test_powder_walk.py):
* a batch: its header; backward its ancestors (genealogy parents tree) down to the initial batches, their lots and
  the lots' purchase orders; forward its descendants (children tree), the runs that printed from the batch or any
  descendant with what each consumed (RunConsumption), and those runs' pieces (production: run → prints → piece);
* a piece: its header; backward its prints and their runs, the batches each run printed from (PrintingRun) with what
  it consumed, then each batch's ancestors, lots and purchase orders.
"""
import logging
import os
import tempfile
import time
from uuid import uuid5

from eventlet import tpool
from eventsourcing.application import AggregateNotFoundError

from services.materials import genealogy, report_render
from services.materials.consumption import PrintingRun, RunConsumption
from services.materials.work import Work, path
from shared.application import Unit
from shared.errors import InvalidPayload, NotFound, StratumError
from shared.resource import Resource
from shared.uris import parse_uri, resource_path

log = logging.getLogger(__name__)
REPORT_REQUESTED = "traceability_report_requested"
INTERNAL = {"platform_admin": True, "internal": True}
WAITING = ("pending", "processing")
FILTERS = ("cad_model_changes", "cad_model_replaced", "print_events", "post_process_events",
           "work_checklist_changes", "manual_notes", "other", "work_instruction_report", "preparation_events")


class Report(Resource):
    """What both reports share: the status machine pending → processing → complete | error (§6.6)."""

    class ProcessingStarted(Resource.Updated):
        pass

    class Completed(Resource.Updated):
        pass

    class Failed(Resource.Updated):
        pass

    @classmethod
    def follow_ups(cls, verb, result, payload):
        return [(REPORT_REQUESTED, {"report": result["uri"]})] if verb == "create" else []

    @classmethod
    def initial(cls, unit, fields):
        return dict(fields, status="pending", content=None, error=None, document=None, user=unit.actor,
                    _content=None)

    @property
    def waiting(self):
        return not self.deleted and self.fields.get("status") in WAITING

    def start(self, actor=None):
        if self.fields.get("status") == "pending":
            self.trigger_event(self.ProcessingStarted, changes={"status": "processing"}, actor=actor)

    def complete(self, blob, document=None, actor=None):
        if self.waiting:
            self.trigger_event(self.Completed, changes={"status": "complete", "_content": blob, "document": document,
                                                        "error": None}, actor=actor)

    def fail(self, reason, actor=None):
        if self.waiting:
            self.trigger_event(self.Failed, changes={"status": "error", "error": reason}, actor=actor)


class MaterialBatchTraceabilityReport(Report):
    resource = "material-batch-traceability-report"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        batch = Work(unit).visible("material-batch", fields["material_batch"], "material_batch")
        return cls.initial(unit, dict(fields, material_batch=path(batch))), [], {}


class TraceabilityReport(Report):
    resource = "traceability-report"

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """The piece must be one the caller can see (production owns pieces)."""
        if verb != "create" or not isinstance(payload, dict) or not payload.get("piece"):
            return ctx
        try:
            kind, piece_uuid = parse_uri(payload["piece"])
            if kind != "piece":
                raise ValueError(kind)
            peers.call("production", "get", "piece", piece_uuid, ctx)
        except (ValueError, TypeError, NotFound):
            raise InvalidPayload(f"'piece' must be a piece you can see, not {payload['piece']!r}.",
                                 field="piece") from None
        return dict(ctx, report_piece=resource_path("piece", piece_uuid))

    @classmethod
    def on_create(cls, unit, new_id, fields):
        piece = unit.ctx.get("report_piece")
        if not piece:
            raise InvalidPayload("'piece' must be a piece you can see.", field="piece")
        unknown = [f for f in fields.get("filters") or [] if f not in FILTERS]
        if unknown:
            raise InvalidPayload(f"'filters' may hold only {', '.join(FILTERS)}; not {', '.join(map(str, unknown))}.",
                                 field="filters")
        return cls.initial(unit, dict(fields, piece=piece)), [], {}


REPORT_CLASSES = (MaterialBatchTraceabilityReport, TraceabilityReport)


# -- the job ------------------------------------------------------------------------------------------------------

def step(app, resource, uuid, name, kwargs):
    """One step of a report, once per (report, step)."""
    unit = Unit(app, INTERNAL)

    def command():
        report = app.load(resource, uuid, INTERNAL)
        getattr(report, name)(**kwargs)
        return app.outcome(report, unit)

    return app._execute({"command_id": f"report:{uuid}:{name}"}, command)


class ReportJob:
    def __init__(self, app, blobs, services, announce):
        self.app = app
        self.blobs = blobs
        self.services = services
        self.announce = announce

    def run(self, report_path):
        resource, uuid = parse_uri(report_path)
        report = self.app.load(resource, uuid, INTERNAL)
        if not report.waiting:
            return
        self.announce(step(self.app, resource, uuid, "start", {}))
        try:
            facts = self.facts(report)
            # drawn in a real thread: a large genealogy must not stall the service's green threads (heartbeats)
            png = tpool.execute(report_render.picture, facts["graph"])
            document = tpool.execute(report_render.pdf, facts, png)
            name = f"{'batch' if resource.startswith('material-batch') else 'piece'}-traceability-{uuid[:8]}.pdf"
            blob = _put(self.blobs, document, name)
            document_path = self.as_document(report, name, blob)
        except Exception as error:  # noqa: BLE001 - whatever happens, the report ends in error, not in limbo
            log.exception("traceability report %s failed", report_path)
            note = error.title if isinstance(error, StratumError) else f"{type(error).__name__}: {error}"
            self.announce(step(self.app, resource, uuid, "fail", {"reason": f"The report could not be made: {note}"}))
            return
        self.announce(step(self.app, resource, uuid, "complete", {"blob": blob.as_dict(), "document": document_path}))

    def as_document(self, report, name, blob):
        """The PDF as a /document/ of the files service (the same blob: no byte is copied), related to the batch
        (`material_batch`) or to the piece's line item (`line_item`: the reference's document relations name no
        piece). One id and one command id per report, so a repeated job makes no second document; the files
        service then scans it like any upload."""
        if report.resource == "material-batch-traceability-report":
            related_table, related = "material_batch", report.fields["material_batch"]
        else:
            piece = self.services.call("production", "get", "piece", parse_uri(report.fields["piece"])[1], INTERNAL)
            related_table, related = "line_item", piece.get("line_item") or report.fields["piece"]
        document_uuid = str(uuid5(report.id, "document"))
        ctx = dict(INTERNAL, bureau=report.bureau, user=report.fields.get("user"), uuid=document_uuid,
                   command_id=f"materials:report-document:{report.id}")
        self.services.command("files", "create", "document", {
            "name": name, "related_table_name": related_table, "related_uuid": [parse_uri(related)[1]]}, ctx)
        self.services.call("files", "upload_received", "document", document_uuid, blob.as_dict(), INTERNAL)
        return resource_path("document", document_uuid)

    # -- the facts ---------------------------------------------------------------------------------------------------

    def facts(self, report):
        gathered = Facts(self.app, self.services)
        if report.resource == "material-batch-traceability-report":
            return gathered.of_batch(report)
        return gathered.of_piece(report)


def _put(blobs, data, name):
    """The PDF into the blob store (BlobStore.put_file takes a file the service produced)."""
    fd, temp = tempfile.mkstemp(suffix=".pdf")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return blobs.put_file(temp, "application/pdf", name)
    finally:
        os.unlink(temp)


def _q(value, units):
    return "" if value is None else f"{value:g} {units or ''}".strip()


class Facts:
    """The report's facts, read from this service's store (batches, edges, lots, POs, printing runs, consumptions)
    and production (runs, prints, pieces) at the time the job runs."""

    def __init__(self, app, services):
        self.app = app
        self.services = services
        self.reader = genealogy.Reader(app)
        self.nodes, self.edges = {}, []
        self.lots, self.runs, self.pieces, self.batch_rows, self.edge_rows = {}, {}, {}, {}, []

    # graph
    def node(self, node_id, kind, label):
        if node_id not in self.nodes or kind == "target":
            self.nodes[node_id] = (node_id, kind, label)

    def edge(self, source, target, label=""):
        if (source, target, label) not in self.edges:
            self.edges.append((source, target, label))

    # reading
    def production(self, resource, path_):
        try:
            return self.services.call("production", "get", resource, parse_uri(path_)[1], INTERNAL)
        except (StratumError, ValueError):
            return None

    def batch_label(self, batch_path):
        batch = self.reader.find(batch_path)
        if batch is None:
            return batch_path
        return f"{batch_path.rstrip('/').rsplit('/', 1)[1][:8]} {_q(batch.fields.get('quantity'), batch.units)}"

    def add_batch(self, batch_path, kind="batch"):
        batch = self.reader.find(batch_path)
        self.node(batch_path, kind, self.batch_label(batch_path))
        if batch is not None and batch_path not in self.batch_rows:
            f = batch.fields
            self.batch_rows[batch_path] = [batch_path, _q(f.get("quantity"), batch.units), f.get("status"),
                                           f.get("powder_quality"), f.get("usage_cycles"),
                                           ", ".join(f.get("material_lots") or [])]
        return batch

    def walk_edges(self, tree, nest_key):
        """Every edge of a genealogy tree into the graph and the edge table; root edges name their lots."""
        stack = list(tree)
        while stack:
            node = stack.pop()
            source, destination = node.get("source_batch"), node.get("destination_batch")
            units = None
            if destination:
                found = self.add_batch(destination)
                units = found.units if found is not None else None
            if source:
                self.add_batch(source)
                self.edge(source, destination, _q(node.get("quantity"), units))
            for lot_path in node.get("material_lots") or []:
                self.add_lot(lot_path)
                if destination:
                    self.edge(lot_path, destination, _q(node.get("quantity"), units))
            action = self.reader.find(node.get("action")) if node.get("action") else None
            self.edge_rows.append([action.fields.get("action_type") if action is not None else "",
                                   source or "(lot containers)", destination, _q(node.get("quantity"), units),
                                   ", ".join(node.get("material_lots") or [])])
            stack.extend(node.get(nest_key) or [])

    def add_lot(self, lot_path):
        if lot_path in self.lots:
            return
        lot = self.reader.find(lot_path)
        f = lot.fields if lot is not None else {}
        self.lots[lot_path] = f
        self.node(lot_path, "lot", f"{f.get('name') or ''} {_q(f.get('full_quantity'), f.get('units'))}")
        po = f.get("material_purchase_order")
        if po:
            self.node(po, "purchase-order", f"PO {f.get('material_purchase_order_external_id') or ''}")
            self.edge(po, lot_path)

    def add_run(self, run_path, batch_path):
        consumption = self._recorded(RunConsumption.id_for(run_path, batch_path))
        used = consumption.fields.get("base_material_used") if consumption is not None else None
        units = consumption.fields.get("units") if consumption is not None else None
        run = self.runs.get(run_path)
        if run is None:
            fields = self.production("run", run_path) or {}
            run = self.runs[run_path] = {"fields": fields, "batches": []}
            self.node(run_path, "run", f"{fields.get('name') or run_path.rstrip('/').rsplit('/', 1)[1][:8]} "
                                       f"({fields.get('status') or '?'})")
            for print_path in fields.get("prints") or []:
                printed = self.production("print", print_path) or {}
                piece = printed.get("piece")
                if piece:
                    self.add_piece(piece, run_path)
        run["batches"].append((batch_path, _q(used, units)))
        self.edge(batch_path, run_path, _q(used, units))

    def add_piece(self, piece_path, run_path, kind="piece"):
        if piece_path not in self.pieces:
            fields = self.production("piece", piece_path) or {}
            self.pieces[piece_path] = {"fields": fields, "runs": set()}
        self.pieces[piece_path]["runs"].add(run_path)
        fields = self.pieces[piece_path]["fields"]
        self.node(piece_path, kind, fields.get("name") or piece_path.rstrip("/").rsplit("/", 1)[1][:8])
        self.edge(run_path, piece_path)

    def _recorded(self, aggregate_id):
        """A PrintingRun or RunConsumption, or None when none was recorded."""
        try:
            return self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def backward(self, batch_path):
        batch = self.add_batch(batch_path)
        tree = genealogy.genealogy(self.app, parse_uri(batch_path)[1], INTERNAL, self.reader)
        self.walk_edges(tree["parents_tree"], "parents")
        for lot_path in (batch.fields.get("material_lots") if batch is not None else None) or []:
            self.add_lot(lot_path)
        return tree

    # the two reports
    def of_batch(self, report):
        target = report.fields["material_batch"]
        batch = self.reader.find(target)
        tree = self.backward(target)
        self.node(target, "target", self.batch_label(target))
        self.walk_edges(tree["children_tree"], "children")
        reached = [target] + [n["destination_batch"] for n in genealogy_nodes(tree["children_tree"], "children")]
        for batch_path in dict.fromkeys(reached):
            found = self.reader.find(batch_path)
            for run_path in (found.fields.get("_runs") if found is not None else None) or []:
                self.add_run(run_path, batch_path)
        f = batch.fields
        header = [("Material batch", target), ("Quantity", _q(f.get("quantity"), batch.units)),
                  ("Full quantity", _q(f.get("full_quantity"), batch.units)),
                  ("Status / powder quality", f"{f.get('status')} / {f.get('powder_quality')}"),
                  ("Usage cycles", f.get("usage_cycles")), ("Location", f.get("location_name") or f.get("location")),
                  ("Report", f"{report.resource} {report.id}, asked by {report.fields.get('user') or '?'}")]
        return self.document(f"Material batch traceability report: {target}",
                             "Backward: the batch's ancestors, lots and purchase orders. Forward: its descendants, "
                             "the runs that printed from them and their pieces.", header)

    def of_piece(self, report):
        target = report.fields["piece"]
        piece = self.production("piece", target) or {}
        self.node(target, "target", piece.get("name") or target)
        prints = []
        if piece.get("line_item"):
            try:
                found = self.services.call("production", "referencing", "print", "line_item", piece["line_item"],
                                           INTERNAL)
            except StratumError:
                found = []
            prints = [p for p in found if p["fields"].get("piece") == target]
        runs = sorted({p["fields"]["run"] for p in prints if p["fields"].get("run")})
        self.pieces[target] = {"fields": piece, "runs": set(runs)}
        for run_path in runs:
            fields = self.production("run", run_path) or {}
            self.runs[run_path] = {"fields": fields, "batches": []}
            self.node(run_path, "run", f"{fields.get('name') or run_path.rstrip('/').rsplit('/', 1)[1][:8]} "
                                       f"({fields.get('status') or '?'})")
            self.edge(run_path, target)
            printing = self._recorded(PrintingRun.id_for(run_path))  # which batches the run printed from
            for batch_path in (printing.fields.get("batches") if printing is not None else None) or []:
                self.backward(batch_path)
                consumption = self._recorded(RunConsumption.id_for(run_path, batch_path))
                used = _q(consumption.fields.get("base_material_used"), consumption.fields.get("units")) \
                    if consumption is not None else ""
                self.runs[run_path]["batches"].append((batch_path, used))
                self.edge(batch_path, run_path, used)
        header = [("Piece", target), ("Name", piece.get("name")), ("Status", piece.get("status")),
                  ("Line item", piece.get("line_item")), ("Order", piece.get("order_name") or piece.get("order")),
                  ("Filters", ", ".join(report.fields.get("filters") or []) or "all"),
                  ("Report", f"{report.resource} {report.id}, asked by {report.fields.get('user') or '?'}")]
        return self.document(f"Traceability report: piece {piece.get('name') or target}",
                             "Backward: the piece's prints and runs, the batches they printed from, their "
                             "ancestors, lots and purchase orders.", header)

    def document(self, title, subtitle, header):
        pos = {}
        for lot_path, f in self.lots.items():
            if f.get("material_purchase_order"):
                pos.setdefault(f["material_purchase_order"], (f.get("material_purchase_order_external_id"), []))[
                    1].append(lot_path)
        sections = [
            ("Purchase orders", ["Purchase order", "External id", "Lots"],
             [[po, ext, ", ".join(lots)] for po, (ext, lots) in sorted(pos.items())]),
            ("Material lots", ["Lot", "Name", "Status", "Full quantity", "Quantity", "Purchase order", "Expires"],
             [[p, f.get("name"), f.get("status"), _q(f.get("full_quantity"), f.get("units")),
               _q(f.get("quantity"), f.get("units")), f.get("material_purchase_order_external_id"),
               f.get("expiration_date")] for p, f in sorted(self.lots.items())]),
            ("Material batches", ["Batch", "Quantity", "Status", "Powder quality", "Usage cycles", "Lots"],
             [row for _, row in sorted(self.batch_rows.items())]),
            ("Genealogy edges (batch actions)", ["Action", "Source", "Destination", "Quantity", "Lots"],
             self.edge_rows),
            ("Runs", ["Run", "Name", "Status", "Printer", "Batches (consumed)"],
             [[p, r["fields"].get("name"), r["fields"].get("status"), r["fields"].get("printer"),
               "; ".join(f"{b} ({used or '?'})" for b, used in r["batches"])] for p, r in sorted(self.runs.items())]),
            ("Pieces", ["Piece", "Name", "Status", "Line item", "Runs"],
             [[p, v["fields"].get("name"), v["fields"].get("status"), v["fields"].get("line_item"),
               ", ".join(sorted(v["runs"]))] for p, v in sorted(self.pieces.items())]),
        ]
        return {"title": title, "subtitle": subtitle + f" Made {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.",
                "target": header, "sections": sections,
                "graph": {"nodes": list(self.nodes.values()), "edges": self.edges}}


def genealogy_nodes(tree, key):
    stack = list(tree)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get(key) or [])

"""The create-runs saga (services.production.create_runs), in the production service: pending → processing → plates
packed (each a /packing-process/ with its /layout/) → a printing run per plate → downstream runs created or infilled
by batching strategy → complete, or error with notes. Every step is recorded under a command id derived from (saga,
step), and everything it makes has a derived uuid, so a redelivered message or a saga resumed by the sweep changes
nothing that is done. Runs are made through /run/'s own rules, as a client's POST /run/ would be."""
import logging
import time
from datetime import datetime, timezone

from services.production import batching
from services.production.create_runs import (CREATE_RUNS_REQUESTED, INTERNAL, PACKERS, CreateRuns, PackingProcess,
                                             id_for)
from services.production.domain import Piece, Print
from services.production.packing.job import LayoutJob
from services.production.packing.layout import Layout
from services.production.runs import WAITING, Run
from shared.amqp import event_handler
from shared.application import Unit
from shared.errors import StratumError
from shared.resource import Resource
from shared.service import Peers
from shared.sweep import changed_within, sweep_timer, sweeper_for
from shared.locks import keyed_lock
from shared.uris import id_of, parse_uri, resource_path, uuid_of

log = logging.getLogger(__name__)
RESOURCE = "create-runs"
MAX_PLATES = 50  # split-builds: a bound on the plates of one request, whatever happens
PACKING_SECONDS = 10.0  # the search time of each plate's layout (STRATUM_CREATE_RUNS_PACKING_SECONDS)
STATION_TYPE_FIELD = {"post-processing": "post_processor_type", "shipping": "shipping"}


def now():
    return datetime.now(timezone.utc).isoformat()


class CreateRunsJob:
    def __init__(self, service):
        self.service = service
        self.app = service.app
        self.announce = service._announce
        self.seconds = float(service.config.get("STRATUM_CREATE_RUNS_PACKING_SECONDS") or PACKING_SECONDS)

    # -- bookkeeping ------------------------------------------------------------------------------------------------

    def _step(self, resource, uuid, key, change):
        """One change of the saga's own records, once per (record, key)."""
        unit = Unit(self.app, INTERNAL)

        def command():
            record = self.app.load(resource, uuid, INTERNAL)
            change(record)
            return self.app.outcome(record, unit)

        self.announce(self.app._execute({"command_id": f"{RESOURCE}:{uuid}:{key}"}, command))

    def _once(self, command_id, call):
        """A command of the saga, answered from its receipt when it was done already (by this start or another)."""
        done = self.app._receipt(command_id)
        if done is not None:
            return done
        try:
            result = call(command_id)
        except StratumError:
            done = self.app._receipt(command_id)
            if done is not None:
                return done
            raise
        self.announce(result)
        return result

    def _get(self, path):
        return self.app.repository.get(id_of(path))

    # -- the saga -----------------------------------------------------------------------------------------------------

    def run(self, path):
        uuid = uuid_of(path)
        with keyed_lock("create-runs", uuid):
            saga = self.app.load(RESOURCE, uuid, INTERNAL)
            if saga.waiting:
                self._run(uuid, saga)

    def _run(self, uuid, saga):
        self._step(RESOURCE, uuid, "start", lambda s: s.start())
        ctx = {"bureau": saga.bureau, "user": saga.fields.get("user"), "internal": True}
        notes, self._made = [], []
        try:
            plates, unfitted = self._plates(uuid, saga, ctx, notes)
            if unfitted:
                self._step(RESOURCE, uuid, "unfitted", lambda s: s.unfitted(unfitted))
            primary = [self._primary_run(uuid, saga, ctx, n, plate) for n, plate in enumerate(plates)
                       if plate["pieces"]]
            for plate in plates:  # a plate that took nothing made no run
                if not plate["pieces"]:
                    self._step(PackingProcess.resource, uuid_of(plate["packing_process"]), "done",
                               lambda p: p.complete(None))
            downstream = self._downstream(uuid, saga, ctx, [p for p in primary if p], notes)
        except Exception as error:  # noqa: BLE001 - whatever happens, the saga ends, never in limbo
            log.exception("create-runs %s failed", uuid)
            reason = error.title if isinstance(error, StratumError) else f"{type(error).__name__}: {error}"
            made = list(dict.fromkeys(self._made))  # what was made before the failure stays, and is listed
            self._step(RESOURCE, uuid, "done", lambda s: s.fail(f"The runs could not be created: {reason}", now(),
                                                                made))
            self._end_packing(saga, None, failed=reason)
            return
        runs = [p["run"] for p in primary]
        resulting = runs + [r for r in downstream if r not in runs]
        if unfitted:
            policy = saga.fields.get("on_packing_process_failure") or "ignore"
            notes.append(f"{len(unfitted)} piece(s) did not fit the build plate" + (
                " (not even an empty one)." if policy == "split-builds" else f" (on_packing_process_failure: "
                                                                             f"{policy})."))
        self._step(RESOURCE, uuid, "done", lambda s: s.complete(runs[0] if runs else None, resulting, unfitted,
                                                                " ".join(notes), now()))
        self._end_packing(saga, runs[0] if runs else None)

    def _end_packing(self, saga, run, failed=None):
        """The client's packing process (when the saga is one's) follows the first plate."""
        path = saga.fields.get("_packing_process")
        if not path:
            return
        uuid = uuid_of(path)
        if failed:
            self._step(PackingProcess.resource, uuid, "done", lambda p: p.fail(f"The packing failed: {failed}"))
        else:
            self._step(PackingProcess.resource, uuid, "done", lambda p: p.complete(run))

    # -- 1. packing, plate by plate -----------------------------------------------------------------------------------

    def _plates(self, uuid, saga, ctx, notes):
        """[{"pieces", "prints", "layout", "packing_process"}] per plate, and the pieces left unfitted."""
        fields = saga.fields
        printer = self._get(fields["primary_workstation"])
        printer_type = self._get(printer.fields["printer_type"])
        pieces = list(fields["pieces"])
        current = {p: self._get(p).fields.get("current_print") for p in pieces}
        packer = printer_type.fields.get("build_packer_type") or "pack2d"
        with_models = all(self._get(p).fields.get("model") for p in pieces)
        if not fields.get("do_build_volume_check", True) or packer not in PACKERS or not with_models:
            if fields.get("do_build_volume_check", True) and packer not in ("user_managed",) and with_models:
                notes.append(f"The printer type's packer {packer} is not available: the pieces were not packed.")
            process = self._packing_process(uuid, saga, 0, pieces, printer, None, pieces, [], None)
            return [{"pieces": pieces, "prints": [current[p] for p in pieces], "layout": None,
                     "packing_process": process}], []
        split = fields.get("on_packing_process_failure") == "split-builds"
        plates, left = [], pieces
        for n in range(MAX_PLATES):
            layout = self._layout(uuid, saga, ctx, n, printer_type, packer, [current[p] for p in left])
            placed = {position["index"] for position in layout.fields.get("positions") or []}
            if layout.fields.get("status") != "complete":
                raise RuntimeError(layout.fields.get("error") or "the packing did not complete")
            fitted = [p for i, p in enumerate(left) if i in placed]
            rest = [p for i, p in enumerate(left) if i not in placed]
            layout_path = resource_path("layout", layout.id)
            process = self._packing_process(uuid, saga, n, left, printer, layout_path, fitted, rest,
                                            layout.fields.get("fill_percentage"))
            plates.append({"pieces": fitted, "prints": [current[p] for p in fitted], "layout": layout_path,
                           "packing_process": process})
            left = rest
            if not left or not fitted or not split:
                break
        return plates, left

    def _layout(self, uuid, saga, ctx, n, printer_type, packer, prints):
        """The plate's /layout/ of the pieces' current prints (their line items' models), packed here and now."""
        layout_id = id_for(uuid, f"layout-{n}")
        payload = {"models": prints, "min_packing_distance": printer_type.fields.get("min_packing_distance") or 0,
                   "do_build_volume_check": True,
                   "build": {"printer_type": resource_path("printer-type", printer_type.id), "packer_type": packer,
                             "time_limit_s": self.seconds}}
        make_ctx = dict(ctx, uuid=str(layout_id))
        make_ctx = Layout.gather(Peers(self.app, self.service.services, self.service.config), "create", None,
                                 payload, make_ctx)
        self._once(f"{RESOURCE}:{uuid}:layout-{n}", lambda c: self.app.create("layout", payload,
                                                                                 dict(make_ctx, command_id=c)))
        LayoutJob(self.app, self.service.blobs, self.service.config, self.announce, self.service.services).run(
            f"/layout/{layout_id}/")
        return self.app.repository.get(layout_id)

    def _packing_process(self, uuid, saga, n, pieces, printer, layout, fitted, unfitted, fill):
        """The plate's packing process: the client's own for the first plate of a saga it started, else one made
        here; recorded packed."""
        path = saga.fields.get("_packing_process") if n == 0 else None
        if path is None:
            process_id = id_for(uuid, f"packing-{n}")
            path = resource_path(PackingProcess.resource, process_id)
            fields = {"pieces": list(pieces), "printer": resource_path("printer", printer.id),
                      "do_build_volume_check": saga.fields.get("do_build_volume_check", True),
                      "on_failure": saga.fields.get("on_packing_process_failure") or "ignore",
                      "on_success": saga.fields.get("on_packing_process_success") or "silent", "status": "processing",
                      "create_runs": resource_path(RESOURCE, uuid), "run": None, "layout": None, "fitted_pieces": [],
                      "unfitted_pieces": [], "fill_percentage": None, "notes": None}

            def make(command_id):
                def command():
                    process = PackingProcess.create(process_id, fields, saga.bureau, saga.fields.get("user"))
                    return [process], {"uri": path}
                return self.app._execute({"command_id": command_id}, command)
            self._once(f"{RESOURCE}:{uuid}:packing-{n}", make)
        else:
            self._step(PackingProcess.resource, uuid_of(path), "start", lambda p: p.start())
        self._step(PackingProcess.resource, uuid_of(path), f"packed-{uuid}-{n}",
                   lambda p: p.packed(layout, fitted, unfitted, fill))
        return path

    # -- 2. the printing run of each plate ----------------------------------------------------------------------------

    def _primary_run(self, uuid, saga, ctx, n, plate):
        fields = saga.fields
        name = fields.get("run_name")
        if name and n:
            name = f"{name} ({n + 1})"
        payload = {"prints": plate["prints"], "printer": fields["primary_workstation"],
                   "pieces_locked": bool(fields.get("locked", True)), "priority": fields.get("priority", 65),
                   "name": name, "layout": plate["layout"], "packing_process": plate["packing_process"]}
        payload = {k: v for k, v in payload.items() if v is not None}
        run_id = id_for(uuid, f"run-{n}")
        result = self._once(f"{RESOURCE}:{uuid}:run-{n}", lambda c: self.app.create(
            "run", payload, dict(ctx, uuid=str(run_id), command_id=c)))
        self._made.append(result["uri"])
        self._step(PackingProcess.resource, uuid_of(plate["packing_process"]), "done",
                   lambda p: p.complete(result["uri"]))
        return {"run": result["uri"], "prints": plate["prints"]}

    # -- 3. downstream runs by batching strategy ------------------------------------------------------------------

    def _downstream(self, uuid, saga, ctx, primary, notes):
        """For each later step of the pieces' workflows, in order: the prints go to open runs of the step's type or
        to new runs, by the type's batching strategy. Returns the runs made or infilled."""
        upstream = {}  # piece → the run of its previous step
        later = {}  # (position, workstation type) → [print]
        sizes = {}
        for plate in primary:
            for print_path in plate["prints"]:
                each = self._get(print_path)
                piece = self._get(each.fields["piece"])
                upstream[each.fields["piece"]] = plate["run"]
                sizes[each.fields["piece"]] = self._size(piece)
                position = each.fields.get("process_step_position") or 0
                for other in self._piece_prints(piece):
                    if (other.fields.get("process_step_position") or 0) > position:
                        key = (other.fields.get("process_step_position"), other.fields.get("workstation_type_uri"))
                        later.setdefault(key, []).append(other)
        touched = []
        for (position, type_path), prints in sorted(later.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            workstation_type = self._get(type_path)
            strategy = workstation_type.fields.get("batching_strategy") or "match_previous"
            limit = batching.capacity(strategy, workstation_type.fields)
            waiting = []
            for each in sorted(prints, key=lambda p: (p.fields.get("piece"))):
                if each.fields.get("run"):  # placed by an earlier start of this saga
                    upstream[each.fields["piece"]] = each.fields["run"]
                    touched.append(each.fields["run"])
                    continue
                size = sizes.get(each.fields["piece"]) or {}
                waiting.append({"print": resource_path("print", each.id), "piece": each.fields["piece"],
                                "upstream": upstream.get(each.fields["piece"]), "order": each.fields.get("order"),
                                "size": size.get("volume"), "area": size.get("area")})
            if not waiting:
                continue
            groups = batching.batch(strategy, waiting, self._open_runs(saga, type_path, sizes), limit)
            for group in groups:
                run = self._place(uuid, saga, ctx, position, group)
                touched.append(run)
                for item in waiting:
                    if item["print"] in group["prints"]:
                        upstream[item["piece"]] = run
        seen = []
        for run in touched:
            if run not in seen:
                seen.append(run)
        return seen

    def _place(self, uuid, saga, ctx, position, group):
        if group["run"]:
            self._once(f"{RESOURCE}:{uuid}:infill-{position}-{group['prints'][0]}",
                       lambda c: self._infill(group["run"], group["prints"], dict(ctx, command_id=c)))
            self._made.append(group["run"])
            return group["run"]
        key = f"step-{position}-{group['prints'][0]}"
        payload = {"prints": group["prints"], "pieces_locked": bool(saga.fields.get("locked", True)),
                   "priority": saga.fields.get("priority", 65)}
        made = self._once(f"{RESOURCE}:{uuid}:{key}", lambda c: self.app.create(
            "run", payload, dict(ctx, uuid=str(id_for(uuid, key)), command_id=c)))["uri"]
        self._made.append(made)
        return made

    def _infill(self, run_path, prints, ctx):
        """The prints join the open run as it is when the command runs (retried on a concurrent change, so another
        saga's infill of the same run is never undone), through the run's own rules."""
        unit = Unit(self.app, ctx)

        def command():
            run = self.app.load("run", uuid_of(run_path), ctx)
            current = list(run.fields.get("prints") or [])
            run.update({"prints": current + [p for p in prints if p not in current]}, ctx.get("user"))
            return self.app.outcome(run, unit)

        return self.app._execute(ctx, command)

    def _open_runs(self, saga, type_path, sizes):
        """The runs of this workstation type a new print may join: waiting, unlocked, of the saga's bureau."""
        found = []
        kind = parse_uri(type_path)[0]
        field = "shipping" if kind == "shipping" else "post_processor_type"
        for entry in self.app.referencing("run", field, type_path, INTERNAL):
            run = self._get(entry["uri"])
            if not isinstance(run, Run) or run.deleted or run.bureau != saga.bureau or run.fields.get(
                    "pieces_locked", True) or run.fields.get("status") not in WAITING:
                continue
            prints = [self._get(p) for p in run.fields.get("prints") or []]
            pieces = [p.fields.get("piece") for p in prints if isinstance(p, Print)]
            measured = [sizes.get(p) or self._size(self._get(p)) for p in pieces]
            found.append({"run": entry["uri"], "prints": len(prints),
                          "size": sum(m.get("volume") or 0 for m in measured),
                          "area": sum(m.get("area") or 0 for m in measured),
                          "orders": {p.fields.get("order") for p in prints if isinstance(p, Print)},
                          "upstreams": {self._upstream_of(p) for p in prints if isinstance(p, Print)}})
        return sorted(found, key=lambda r: r["run"])

    def _upstream_of(self, each):
        piece = self._get(each.fields["piece"])
        position = each.fields.get("process_step_position") or 0
        before = [p for p in self._piece_prints(piece) if (p.fields.get("process_step_position") or 0) < position]
        return before[-1].fields.get("run") if before else None

    def _piece_prints(self, piece):
        this = resource_path("piece", piece.id)
        found = [self._get(p["uri"]) for p in self.app.referencing("print", "line_item", piece.fields.get("line_item"),
                                                                   INTERNAL) if p["fields"].get("piece") == this]
        return sorted([p for p in found if isinstance(p, Print) and not p.deleted
                       and p.fields.get("status") != "cancelled" and not p.fields.get("remanufactured_to")],
                      key=lambda p: p.fields.get("process_step_position") or 0)

    def _size(self, piece):
        """The piece's model's bounding box: volume x·y·z (mm³) and footprint x·y (mm²); {} without a model."""
        model = piece.fields.get("model") if isinstance(piece, Piece) else None
        if not model:
            return {}
        cache = self.__dict__.setdefault("_sizes", {})
        if model not in cache:
            try:
                size = self.service.services.call("files", "get", "model", parse_uri(model)[1], INTERNAL).get(
                    "size") or {}
                x, y, z = float(size["x"]), float(size["y"]), float(size["z"])
                cache[model] = {"volume": x * y * z, "area": x * y}
            except (StratumError, KeyError, TypeError, ValueError):
                cache[model] = {}
        return cache[model]


class CreateRunsJobs:
    """What the production service adds for `/create-runs/` and `/packing-process/`: the saga's message handler and
    the sweep that restarts sagas whose message was lost or whose process died."""

    @event_handler("production", CREATE_RUNS_REQUESTED)
    def create_runs(self, payload):
        try:
            CreateRunsJob(self).run(payload["create_runs"])
        except Exception:  # nameko would ack and drop it anyway; the sweep starts it again
            log.exception("create-runs saga %s failed", payload)

    @sweep_timer(interval=30)
    def resume_create_runs(self):
        grace = int(self.config["STRATUM_SWEEP_SECONDS"])
        sweeper = sweeper_for(self.app, "create-runs", ((CreateRuns, CreateRuns.Requested),), grace)

        def resume(saga):
            if changed_within(saga, grace):
                return
            self.dispatch(CREATE_RUNS_REQUESTED, {"create_runs": f"/{RESOURCE}/{saga.id}/"})

        sweeper.sweep(lambda s: isinstance(s, CreateRuns) and s.waiting, resume)

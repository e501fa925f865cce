"""The background job of a layout, in the production service: fetch where each model's mesh is (files), run the
packing child (services.production.packing.worker) on the decrypted meshes, record its progress, then the answer
and the pictures (blobs), or the error. Each step is recorded under a command id derived from (layout, step), so a
redelivered or resumed job changes nothing that is done; the sweep in service.py restarts jobs whose message was
lost or whose process died (shared.sweep)."""
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import eventlet
import eventlet.semaphore

from services.files import callbacks
from shared.application import Unit
from shared.blobstore import Blob
from shared.uris import parse_uri, uuid_of

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[3]
INTERNAL = {"platform_admin": True, "internal": True}
PROGRESS_SECONDS = 2.0  # at most one progress event this often
FOOTPRINT_SECONDS = 300  # allowance on top of the time limit: reading meshes, footprints, pictures
PROCESSED = ("processed", "repaired")
_SLOTS = {}


def slots(size):
    """One semaphore per process: a packing keeps two cores busy, so they queue rather than compete."""
    return _SLOTS.setdefault(size, eventlet.semaphore.Semaphore(size))


def step(app, uuid, name, kwargs, key):
    """Run one step of the layout (a Layout method), once per (layout, step, key)."""
    unit = Unit(app, INTERNAL)

    def command():
        layout = app.load("layout", uuid, INTERNAL)
        getattr(layout, name)(**kwargs)
        return app.outcome(layout, unit)

    return app._execute({"command_id": f"layout:{uuid}:{name}:{key}"}, command)


class LayoutJob:
    def __init__(self, app, blobs, config, announce, services):
        self.app = app
        self.blobs = blobs
        self.config = config
        self.announce = announce
        self.services = services
        self.slots = slots(int(config.get("STRATUM_PACKING_CONCURRENCY") or 1))
        self.allow_private_callbacks = config.get("STRATUM_CALLBACKS_ALLOW_PRIVATE") in ("1", "true", "yes")
        self.base_url = (config.get("STRATUM_BASE_URL") or "").rstrip("/")

    def _step(self, uuid, name, kwargs, key):
        self.announce(step(self.app, uuid, name, kwargs, key))

    def run(self, layout_path):
        uuid = uuid_of(layout_path)
        layout = self.app.load("layout", uuid, INTERNAL)
        if not layout.waiting:
            return
        with self.slots:
            layout = self.app.load("layout", uuid, INTERNAL)
            if not layout.waiting:
                return
            self._step(uuid, "start", {}, "start")
            try:
                outcome = self._pack(uuid, layout)
            except Exception as error:  # noqa: BLE001 - whatever happens, the layout ends in error, not in limbo
                log.exception("layout %s failed", uuid)
                outcome = {"ok": False, "reason": f"Failed to create layout: {type(error).__name__}: {error}"}
        if outcome.get("ok"):
            self._step(uuid, "complete", {"result": outcome["result"], "png": outcome.get("png"),
                                          "svg": outcome.get("svg")}, "done")
        else:
            self._step(uuid, "fail", {"reason": outcome.get("reason") or "Failed to create layout"}, "done")
        self._call_back(uuid)

    def _pack(self, uuid, layout):
        fields = layout.fields
        entries = fields.get("_models") or {}
        meshes, problems = {}, {}
        for uri in fields["models"]:
            model_path = entries[uri]["model"]
            if model_path in meshes or model_path in problems:
                continue
            found = self.services.call("files", "model_mesh", parse_uri(model_path)[1], INTERNAL)
            if found.get("status") not in PROCESSED or not found.get("blob"):
                problems[model_path] = f"The model is '{found.get('status')}'; only processed models are packed."
            else:
                meshes[model_path] = found
        copies = [entries[uri]["model"] for uri in fields["models"]]
        with tempfile.TemporaryDirectory(prefix="layout-") as work, contextlib.ExitStack() as stack:
            models = []
            for model_path, found in meshes.items():
                path = stack.enter_context(self.blobs.plaintext_path(Blob.from_dict(found["blob"])))
                models.append({"key": model_path, "path": path, "unit": found.get("unit"),
                               "name": found.get("name") or ""})
            for model_path, why in problems.items():
                models.append({"key": model_path, "path": None, "error": why})
            job = {"packer": fields.get("_packer") or "pack2d", "plate": fields["_plate"], "spacing": fields["_spacing"], "rotations": fields["_rotations"],
                   "time_limit": fields["_time_limit"], "check_height": fields.get("do_build_volume_check", True),
                   "models": models, "copies": copies, "png": os.path.join(work, "layout.png"),
                   "svg": os.path.join(work, "layout.svg"), "seed": int(uuid.replace("-", "")[:8], 16)}
            job_path = os.path.join(work, "job.json")
            with open(job_path, "w", encoding="utf-8") as handle:
                json.dump(job, handle)
            outcome = self._run_child(uuid, job_path, fields["_time_limit"] + FOOTPRINT_SECONDS)
            if outcome.get("ok"):
                outcome["result"]["positions"] = [dict(p, model=_entry_uri(fields["models"], p)) for p in
                                                  outcome["result"]["positions"]]
                outcome["result"]["unfitted"] = [dict(u, model=_entry_uri(fields["models"], u)) for u in
                                                 outcome["result"]["unfitted"]]
                outcome["png"] = self.blobs.put_file(job["png"], "image/png", "layout.png").as_dict()
                outcome["svg"] = self.blobs.put_file(job["svg"], "image/svg+xml", "layout.svg").as_dict()
            return outcome

    def _run_child(self, uuid, job_path, timeout):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "services.production.packing.worker", job_path]
        last, progress_count, reply = 0.0, 0, None
        # stderr to a file, not a pipe: a chatty child must never block on a full pipe nobody reads
        with tempfile.TemporaryFile() as errors:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env, cwd=ROOT)
            killer = eventlet.spawn_after(timeout, _kill, child)
            try:
                for raw in child.stdout:
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        continue
                    if "progress" in message:
                        now = time.monotonic()
                        if now - last >= PROGRESS_SECONDS:
                            last = now
                            progress_count += 1
                            self._step(uuid, "progressed", {"progress": message["progress"]}, f"p{progress_count}")
                    elif "ok" in message:
                        reply = message
                code = child.wait()
            finally:
                killer.cancel()
            errors.seek(0)
            stderr = errors.read()[-2000:].decode("utf-8", "replace")
        if reply is not None:
            return reply
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return {"ok": False, "reason": f"Failed to create layout: the packer was stopped ({name}; time limit "
                                           f"{timeout:g} s)."}
        last_line = stderr.strip().splitlines()[-1][:200] if stderr.strip() else ""
        return {"ok": False, "reason": f"Failed to create layout: the packer exited with code {code} {last_line}"}

    def _call_back(self, uuid):
        layout = self.app.load("layout", uuid, INTERNAL)
        callback = layout.fields.get("callback")
        if callback:
            body = {"uri": f"{self.base_url}/layout/{uuid}/", "status": layout.fields.get("status"),
                    "fill_percentage": layout.fields.get("fill_percentage"), "error": layout.fields.get("error")}
            callbacks.deliver(callback, body, self.allow_private_callbacks)


def _entry_uri(models, item):
    """The request's own entry for a copy (a model or print URI, as asked)."""
    return models[item["index"]]


def _kill(child):
    with contextlib.suppress(OSError):
        child.kill()

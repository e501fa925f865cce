"""The background work after a capture's upload (F6 step 3): read the raw file, parse it by its capture_type_name,
keep the parsed content as a blob, and record the outcome (services.capture.application.Capture.ingest).

Each job reloads the capture and does only what its state still asks for, under a command id derived from (capture,
bytes), so a redelivered or repeated job changes nothing. Whatever the content does to a parser (bad JSON, a
truncated file, a parser bug), the capture ends `failed` with the reason: the service itself never falls over.
"""
import io
import json
import logging
from uuid import UUID

from services.capture import parsers
from shared.blobstore import Blob, CorruptBlob

log = logging.getLogger(__name__)
CAPTURE_RECEIVED = "capture_received"


class Pipeline:
    def __init__(self, app, blobs, announce, find_run=None):
        self.app = app
        self.blobs = blobs
        self.announce = announce
        self.find_run = find_run or (lambda run_uuid, bureau: None)  # (uuid, bureau) → the run's path, or None

    def process(self, uuid, sha256):
        capture = self.app.get_capture(uuid)
        if not capture.awaits_parsing(sha256):
            return  # parsed already, or not these bytes
        name = capture.fields.get("capture_type_name")
        try:
            data = self._read(capture.content)
            modeler = self.app.modeler_of(capture)
            outcome = parsers.parse(name, data, modeler.device if modeler is not None else {})
            document = json.dumps(outcome.as_content(), sort_keys=True, allow_nan=False).encode()
        except (parsers.ParseError, CorruptBlob) as error:
            self._fail(uuid, sha256, str(error))
            return
        except Exception as error:  # a parser bug on hostile content fails this capture, not the service
            log.exception("parsing capture %s (%s) failed", uuid, name)
            self._fail(uuid, sha256, f"The '{name}' parser could not read this content ({type(error).__name__}: "
                                     f"{str(error)[:300]}).")
            return
        blob = self.blobs.receive(io.BytesIO(document).read, float("inf"), "application/json",
                                  f"capture-{uuid}-parsed.json")
        runs = self._runs(outcome, capture.bureau)
        self.announce(self.app.ingest(uuid, sha256, blob.as_dict(), outcome, f"parse:{uuid}:{sha256}", runs))

    def _runs(self, outcome, bureau):
        """A4: a build whose name is the uuid of a run of the capture's bureau is that run's (build.run); asked of
        production here, before the transaction. Not found (or production not answering) links nothing: the next
        report of the same job links it."""
        runs = {}
        for job in outcome.jobs:
            try:
                run_uuid = str(UUID(job.name.strip()))
            except (AttributeError, ValueError):
                continue
            try:
                path = self.find_run(run_uuid, bureau)
            except Exception:
                log.warning("could not ask for run %s; build %s stays unlinked for now", run_uuid, job.key,
                            exc_info=True)
                continue
            if path:
                runs[job.key] = path
        return runs

    def _read(self, content):
        blob = Blob.from_dict(content)
        if blob.size > parsers.MAX_BYTES:
            raise parsers.ParseError(f"The content is {blob.size:,} bytes; captures are parsed up to "
                                     f"{parsers.MAX_BYTES:,} bytes.")
        return b"".join(self.blobs.verified_chunks(blob))

    def _fail(self, uuid, sha256, reason):
        self.announce(self.app.fail(uuid, sha256, reason, f"parse-failed:{uuid}:{sha256}"))

"""The capture application: its resources' classes (services.capture.domain), the platform's machine catalogue, and
the steps of a capture's life that the capture service and its background parser run."""
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.capture import machines
from services.capture.commands import ModelerCommand
from services.capture.readings import ReadingStore
from services.capture.sensors import Sensor
from services.capture.domain import Build, Capture as CaptureRecord, CaptureType, Modeler, ModelerType
from shared import uris
from shared.application import ResourceApplication, Unit
from shared.registry import resource_classes

INTERNAL = {"platform_admin": True}


class Capture(ResourceApplication):
    name = "capture"
    aggregates = resource_classes("capture", [ModelerType, CaptureType, Modeler, CaptureRecord, Build,
                                              ModelerCommand, Sensor])
    indexed_references = (("sensor", "sub_location"),)  # a sub-location's sensors (batch sensor data)

    # -- platform data ---------------------------------------------------------------------------------------------

    def seed_platform(self):
        """Write the machine catalogue (services.capture.machines) as bureau-less modeler types and capture types:
        new entries are created, changed ones updated, the rest left alone. Returns how many aggregates changed.
        Safe to run on every start and from several processes at once (ids are derived from the entries)."""
        changed = []
        for machine in machines.MACHINES:
            changed.append(self._platform(ModelerType, machine.id, machine.fields()))
            for kind in machine.capture_types:
                changed.append(self._platform(CaptureType, machine.capture_type_id(kind),
                                              machine.capture_type_fields(kind)))
        changed = [each for each in changed if each is not None]
        if changed:
            try:
                self.save(*changed)
            except IntegrityError:  # another process seeded the same entries at the same moment
                return 0
        return len(changed)

    def _platform(self, cls, id, fields):
        try:
            existing = self.repository.get(id)
        except AggregateNotFoundError:
            return cls.create(id, fields, None, None)
        existing.update({k: v for k, v in fields.items() if existing.fields.get(k) != v}, None)
        return existing if existing.pending_events else None

    # -- a capture's life ------------------------------------------------------------------------------------------

    def get_capture(self, uuid):
        return self.load("capture", uuid, INTERNAL)

    def modeler_of(self, capture):
        """The capture's modeler; None once it is deleted (its captures still parse, but tell nobody)."""
        try:
            modeler = self.repository.get(UUID(uris.parse_uri(capture.fields["modeler"])[1]))
        except (AggregateNotFoundError, KeyError, TypeError, ValueError):
            return None
        return modeler if isinstance(modeler, Modeler) and not modeler.deleted else None

    def receive(self, uuid, blob, command_id):
        """The raw file landed (F6 step 2): the capture starts parsing and its modeler's latest_upload moves."""
        unit = Unit(self, INTERNAL)

        def command():
            capture = self.get_capture(uuid)
            extra = []
            if capture.receive(blob, None):
                modeler = self.modeler_of(capture)
                if modeler is not None:
                    modeler.capture_received(capture.taken_at, None)
                    extra.append(modeler)
            return self.outcome(capture, unit, extra)

        return self._execute({"command_id": command_id}, command)

    def refuse_upload(self, uuid, reason, size, command_id):
        unit = Unit(self, INTERNAL)

        def command():
            capture = self.get_capture(uuid)
            capture.refuse_upload(reason, size, None)
            return self.outcome(capture, unit)

        return self._execute({"command_id": command_id}, command)

    def fail(self, uuid, sha256, reason, command_id):
        unit = Unit(self, INTERNAL)

        def command():
            capture = self.get_capture(uuid)
            if capture.awaits_parsing(sha256):
                capture.failed(reason, None)
            return self.outcome(capture, unit)

        return self._execute({"command_id": command_id}, command)

    def ingest(self, uuid, sha256, parsed_blob, outcome, command_id, runs=None):
        """A capture parsed (F6 steps 3-4), in one transaction: the capture completes with its parsed content; its
        modeler takes the reported state, error and current build, and its watermark; each job the machine listed is
        created or updated as a build of that modeler. Run once per command_id; a job already known is updated
        (unchanged: nothing is recorded), so the same history uploaded twice creates nothing. `runs` (job key → run
        path) links builds to the runs their names are the uuids of; a link is never undone."""
        runs = runs or {}
        unit = Unit(self, INTERNAL)

        def command():
            capture = self.get_capture(uuid)
            if not capture.awaits_parsing(sha256):
                return self.outcome(capture, unit)
            modeler = self.modeler_of(capture)
            builds = []
            if modeler is not None:
                modeler_path = uris.resource_path("modeler", modeler.id)
                paths = {}
                for job in outcome.jobs:
                    build = self._build(modeler_path, job, capture.bureau, runs.get(job.key), capture.taken_at)
                    if build is not None:
                        builds.append(build)
                        paths[job.key] = uris.resource_path("build", build.id)
                if outcome.reports_state:
                    modeler.report(outcome.state, outcome.error, paths.get(outcome.current_job), capture.taken_at,
                                   None)
                modeler.advance_watermark(outcome.watermark, None)
            capture.parsed(parsed_blob, None)
            return self.outcome(capture, unit, [m for m in (modeler,) if m is not None] + builds)

        return self._execute({"command_id": command_id}, command)

    def _build(self, modeler_path, job, bureau, run=None, at=None):
        """The job's build, created or brought up to date by a report taken at `at` (the capture's time). A report
        older than the last one that changed the build (captures parse in any order) changes nothing but the link."""
        build_id = Build.id_for(modeler_path, job.key)
        fields = job.build_fields()
        try:
            build = self.repository.get(build_id)
        except AggregateNotFoundError:
            return Build.create(build_id, dict(fields, modeler=modeler_path, run=run, carbon_footprint_estimate=None,
                                               _reported_at=at), bureau, None)
        if not isinstance(build, Build) or build.deleted:
            return None  # someone deleted this job's build: a later report does not bring it back
        if not at or at >= (build.fields.get("_reported_at") or ""):
            # a job's figures only grow more complete: what this report does not know keeps its earlier value. Its
            # times and layers are recorded before its status, so a follower of the feed (production, F6 step 5)
            # knows when the machine started or ended the job by the time it hears that it did
            known = {k: v for k, v in fields.items() if v is not None and v != []}
            figures = {k: v for k, v in known.items() if k != "status"}
            if at and any(build.fields.get(k) != v for k, v in known.items()):
                figures["_reported_at"] = at
            build.update(figures, None)
            build.update({k: v for k, v in known.items() if k == "status"}, None)
        if run and not build.fields.get("run"):
            build.update({"run": run}, None)  # BuildLinkedToRun
        return build

    # -- sensors' readings (services.capture.readings, services.capture.ingest) --------------------------------------

    @property
    def readings(self):
        store = self.__dict__.get("_stratum_readings")
        if store is None:
            store = ReadingStore(self)
            if not store.postgres or self.factory.env_create_table():
                store.create_tables()  # SQLite and tests make their own tables; PostgreSQL has the migrate step
            store = self.__dict__.setdefault("_stratum_readings", store)
        return store

    def create_extra_tables(self):
        """Migrate step (shared.eventstore.create_store): the readings tables."""
        ReadingStore(self).create_tables()

    def sensor_exists(self, sensor):
        """Whether readings of this sensor uuid are taken: a registered sensor not deleted. Remembered per process
        once true (a deleted sensor's later readings are still stored: they are invisible with it)."""
        known = self.__dict__.setdefault("_stratum_sensors", set())
        if sensor in known:
            return True
        try:
            found = self.repository.get(UUID(sensor))
        except (AggregateNotFoundError, ValueError):
            return False
        if isinstance(found, Sensor) and not found.deleted:
            known.add(sensor)
            return True
        return False

    def sensor_state(self, sensor, error=None):
        """The sensor's state after a batch: idle (readings stored) or error (`error` reported). None when nothing
        changed, else the command's result (to announce)."""
        idle = self.__dict__.setdefault("_stratum_idle_sensors", set())
        if error is None and sensor in idle:
            return None
        unit = Unit(self, INTERNAL)
        changed = []

        def command():
            found = self.repository.get(UUID(sensor))
            changed[:] = [found.failed(error) if error is not None else found.readings_arrived()]
            return self.outcome(found, unit)

        result = self._execute({"command_id": f"sensor-state:{sensor}:{uuid4()}"}, command)
        if error is None:
            idle.add(sensor)
        else:
            idle.discard(sensor)
        return result if changed and changed[0] else None

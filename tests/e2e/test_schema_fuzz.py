"""Schemathesis against the running system's own /openapi.json: nothing a client sends takes Stratum down, and every
answer is the one the document describes (status code documented, content type documented, body valid against the
documented schema).

Every operation of the document is fuzzed, in a fixed order and with a fixed budget, so the run is the same every
time (Hypothesis seeded by each operation's name, no example database, no shrinking, no time cut-off):
- first a realistic data set: one resource of every kind that can be made (tests.kit.payloads), so that positive
  cases reach real resources: their `{uuid}` becomes one of these (or of those the fuzzing POSTs made), and their
  reference fields point at resources that exist;
- then per operation, creations first, deletions last: POSITIVE_EXAMPLES schema-valid and NEGATIVE_EXAMPLES invalid
  cases from Hypothesis (seeded by the operation's name), one case of each of schemathesis' coverage scenarios
  (boundary values, missing and wrongly typed fields, unsupported content types, undocumented methods, …), and the
  first case again as an ordinary user of another bureau and as nobody.
Each answer goes through schemathesis' not_a_server_error, status_code_conformance, content_type_conformance,
response_schema_conformance and response_headers_conformance checks; every failure is collected and reported
together, grouped, with a curl line.

Not fuzzed, because random input cannot exercise them: PUT /upload/{resource}/{uuid}/ (a signed link only a POST
mints; anything else is its 403, and the bytes' handling is tested in test_files_http), and DELETE /sessions/ (the
fuzzer's own session would end, leaving every later case a 401). The only 5xx allowed is the plain 501 of the few
documented operations whose rules are not built yet (NOT_BUILT; the test fails when one of them starts answering, so
the list cannot outlive them).
"""
import http.cookiejar
import time
import uuid
import zlib
from collections import Counter, defaultdict

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup, ServerError
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from gateway.computed import READS as COMPUTED_READS
from shared import catalogue, uris
from tests.kit.payloads import PayloadFactory, Unreachable
from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e

POSITIVE_EXAMPLES = 4
NEGATIVE_EXAMPLES = 3
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
# /event-stream/ is a live stream that lasts until the client leaves (tests/e2e/test_notifications_stream.py)
EXCLUDED = [("PUT", "/upload/{resource}/{uuid}/"), ("DELETE", "/sessions/"), ("GET", "/event-stream/")]
# Documented operations whose rules are not built yet: they answer 501 "not-implemented", on purpose.
NOT_BUILT = {"GET /fusion-model/{uuid}/versions/", "POST /material/{uuid}/clone/",
             "POST /prep-workflow/{uuid}/replace/", "POST /printer-type/{uuid}/clone/",
             "GET /fusion-settings/hubs/{hub_id}/projects/"}
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Reads computed on request from another resource (gateway.computed): nothing of their own is stored, their GET takes
# the other resource's uuid (a batch's genealogy: /material-genealogy/<the batch's uuid>/)
COMPUTED = {"material-genealogy": "material-batch"}
_ORDER = {("post", "collection"): 0, ("put", "item"): 2, ("post", "action"): 2, ("delete", "item"): 3}  # reads: 1


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """SQLite only: the document and the gateway are the same on both stores, and the budget is spent once."""
    return {"STRATUM_DATA_DIR": str(tmp_path_factory.mktemp("data"))}


def test_no_request_takes_stratum_down_and_every_answer_matches_the_document(system, admin, record_property):
    outsider = make_tenant(admin, login, "fuzz").standard
    fuzzer = Fuzzer(system, admin, outsider)
    summary = fuzzer.run()  # its failed logins count in this module's system only (tests.kit.plugin)
    for key, value in summary.items():
        record_property(key, value)
    print("\nschema fuzz: " + ", ".join(f"{key} {value}" for key, value in summary.items()))
    assert not fuzzer.failures, fuzzer.report(summary)


class Fuzzer:
    def __init__(self, system, admin, outsider):
        self.base_url = system.base_url
        self.system = system
        self.admin = admin
        self.headers = {"Authorization": f"Bearer {admin.cookies['session']}"}
        self.outsider = {"Authorization": f"Bearer {outsider.cookies['session']}"}
        schema = schemathesis.openapi.from_url(self.base_url + "/openapi.json", config=schemathesis.Config())
        for method, path in EXCLUDED:
            schema = schema.exclude(method=method, path=path)
        self.schema = schema
        self.session = requests.Session()
        self.session.cookies.set_policy(_NoCookies())  # each case carries its own credentials, or none
        self.fields = _fields_by_operation()
        self.uris = defaultdict(list)  # resource name → URIs of existing resources (for reference fields)
        self.uuids = defaultdict(list)  # collection path → uuids of existing resources (for `{uuid}`)
        self.statuses = Counter()
        self.failures = defaultdict(list)  # (operation, what failed, status) → [(case, response)]
        self.not_built = 0
        self.unanswered = 0
        self.built = set()
        self.cases = 0

    def run(self):
        started = time.monotonic()
        self.seed()
        operations = sorted((result.ok() for result in self.schema.get_all_operations()), key=_order)
        for operation in operations:
            first = self.fuzz(operation, POSITIVE, POSITIVE_EXAMPLES)
            self.fuzz(operation, NEGATIVE, NEGATIVE_EXAMPLES)
            self.cover(operation)
            if first is not None:  # the same request from someone who may not, and from nobody
                self.send(operation, first, POSITIVE, headers=self.outsider, adapt=False)
                self.send(operation, first, POSITIVE, headers={}, adapt=False)
        for label in sorted(self.built):
            self.failures[label, "NOT_BUILT", "2xx: it is built now, take it off the list"].append(None)
        failed = [title for (_, title, _), found in self.failures.items() for _ in found]
        return {"operations": len(operations), "requests": self.cases,
                "5xx": sum(n for status, n in self.statuses.items() if status >= 500) - self.not_built,
                "no answer": self.unanswered, "not built (501)": self.not_built,
                "schema violations": sum(title not in ("Server error", "NOT_BUILT") and not title.startswith(
                    "No answer") for title in failed),
                "seconds": round(time.monotonic() - started)}

    # -- the data the positive cases work on ---------------------------------------------------------------------------

    def seed(self):
        me = self.admin.get("/sessions/").json()
        ctx = {"user": uris.normalise(me["user"]), "bureau": uris.normalise(me["bureau"])}

        def create_internally(spec, payload):  # what a service's own rule makes (a print, a piece)
            with self.system.rpc() as rpc:
                result = getattr(rpc, spec.service).create(spec.name, payload, dict(ctx, command_id=str(uuid.uuid4())))
            location = self.base_url + result["uri"]
            if "GET" in spec.verbs:  # in the read side before any case reads it, on every run alike
                eventually(lambda: self.admin.get(location).status_code == 200)
            return location

        factory = PayloadFactory(self.admin, me["bureau"], me["user"], create_internally)
        for spec in catalogue.catalogue().values():
            # a computed read stores nothing of its own to seed (/sensor-data/ points come from the readings table)
            if not spec.special and spec.service != "gateway" and spec.name not in COMPUTED_READS:
                try:
                    factory.reference(spec.name, "the schema fuzz")
                except Unreachable:
                    pass  # its prerequisites cannot be made: the fuzzing POSTs try anyway
        self.remember("bureau", me["bureau"], target=False)
        self.remember("users", me["user"], target=False)
        for name, uri in factory.created.items():
            self.remember(name, uri)
        for name, source in COMPUTED.items():
            if source in factory.created:
                self.remember(name, factory.created[source])

    def remember(self, name, uri, target=True):
        """A resource cases may refer to, and (`target`) act on: not the administrator's own user and bureau."""
        self.uris[name].append(uri)
        spec = catalogue.catalogue().get(name)
        if target and spec is not None:
            self.uuids[spec.path].append(uris.uuid_of(uri))

    # -- generating cases ----------------------------------------------------------------------------------------------

    def fuzz(self, operation, mode, examples):
        """`examples` Hypothesis cases, seeded by the operation: the same ones on every run. Returns the first."""
        cases = []

        @hypothesis.settings(max_examples=examples, database=None, deadline=None, derandomize=False,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                             verbosity=hypothesis.Verbosity.quiet)
        @hypothesis.seed(_seed(operation.label, mode.value))
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            cases.append(case)
            self.send(operation, case, mode, index=len(cases))

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            pass  # nothing in the operation can be invalid (no parameters, no body)
        return cases[0] if cases else None

    def cover(self, operation):
        """One case of each coverage scenario (positive and negative), picked the same way on every run."""
        generator = CoverageGenerator(
            operation=operation, generation_modes=[POSITIVE, NEGATIVE],
            generation_config=self.schema.config.generation_for(operation=operation, phase="coverage"),
            auth_storage=None, override=Override(), feedback=FeedbackSources(), hooks=None)
        scenarios = {}
        for case in generator:
            scenarios.setdefault((case.meta.generation.mode, case.meta.phase.data.scenario), []).append(case)
        pick = _seed(operation.label)
        for index, ((mode, _), cases) in enumerate(scenarios.items()):
            self.send(operation, cases[pick % len(cases)], mode, index=index)

    # -- sending and checking ------------------------------------------------------------------------------------------

    def send(self, operation, case, mode, index=0, headers=None, adapt=True):
        if adapt and mode == POSITIVE:
            self.adapt(operation, case, index)
        headers = self.headers if headers is None else headers
        self.cases += 1
        try:
            response = case.call(session=self.session, headers=headers, timeout=60)
        except requests.RequestException as exc:  # the connection closed without an answer: worse than a 500
            self.unanswered += 1
            self.failures[operation.label, f"No answer: {type(exc).__name__}", None].append((case, None))
            return
        self.statuses[response.status_code] += 1
        not_built = operation.label in NOT_BUILT and response.status_code == 501 and \
            _error_code(response) == "not-implemented"
        self.not_built += not_built
        if response.status_code == 201 and operation.method == "post" and "{" not in operation.path:
            name = self.fields.get(("resource", operation.path))
            if name and response.headers.get("location"):
                self.remember(name, response.headers["location"][0])
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                if not (not_built and isinstance(failure, ServerError)):  # its documented 501 is no crash
                    self.failures[operation.label, failure.title, response.status_code].append((case, response))
        if operation.label in NOT_BUILT and 200 <= response.status_code < 300:
            self.built.add(operation.label)

    def adapt(self, operation, case, index):
        """A positive case about resources that exist: its `{uuid}` one of them, its references to them."""
        known = self.uuids.get(operation.path.split("{uuid}")[0])
        if known and "uuid" in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, "uuid": known[index % len(known)]}
        fields = self.fields.get((operation.method, operation.path))
        if fields and isinstance(case.body, dict):
            body = dict(case.body)
            for name in body:
                field = fields.get(name)
                pool = self.uris.get(field.ref) if field is not None and field.ref else None
                if pool and field.type == "uri":
                    body[name] = pool[index % len(pool)]
                elif pool and field.type == "array" and field.items == "uri":
                    body[name] = [pool[index % len(pool)]]
            case.body = body

    def report(self, summary):
        lines = [f"{len(self.failures)} kinds of failure ({summary}):"]
        for (label, title, status), found in sorted(self.failures.items(), key=lambda item: str(item[0])):
            lines.append(f"\n{label}: {title}" + (f" (answered {status})" if status else "") + f" ×{len(found)}")
            example = found[0]
            if example is not None:
                case, response = example
                lines.append("  " + case.as_curl_command(headers=self.headers)[:1500])
                if response is not None:
                    lines.append(f"  → {response.status_code} {response.text[:400]}")
        return "\n".join(lines)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):
        return False


def _fields_by_operation():
    """(method, path) → the catalogue fields of the operation's body; ("resource", collection path) → its name."""
    fields = {}
    for spec in catalogue.catalogue().values():
        fields["post", spec.path] = spec.fields
        fields["resource", spec.path] = spec.name
        if spec.item_path:
            fields["put", spec.item_path] = spec.fields
        for action in spec.actions:
            fields["post", action.path] = action.fields
    return fields


def _order(operation):
    """Creations first (later cases then find what they made), deletions last, in path order within each."""
    shape = "collection" if "{" not in operation.path else "item" if operation.path.endswith("{uuid}/") else "action"
    return _ORDER.get((operation.method, shape), 1), operation.path, operation.method


def _seed(*parts):
    return zlib.crc32("|".join(parts).encode())


def _error_code(response):
    try:
        return response.json()["errors"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None

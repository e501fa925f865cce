"""The HTTP gateway: authenticate, validate against the catalogue, send commands to the owning service by RPC,
and answer reads from the read side. Writes answer only once the read side holds them (read-your-writes)."""
import hashlib
import logging
import time
from datetime import datetime, timezone
from urllib.parse import quote
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Response

from gateway import apidocs, computed, files, health, listing, special, stream, task_views, tolerant
from gateway.auth import SESSION_COOKIE, authenticate, caller_for_key, csrf_token, csrf_valid
from gateway.bodies import read_payload
from gateway.http import ANY_METHOD, http, is_outage, json_response
from gateway.ratelimit import LoginLimit
from gateway.readside import ReadSide
from gateway.readstore import Scope
from gateway.references import check_references, check_related
from gateway.rendering import render, render_audit
from gateway.routing import match, url_map
from shared import access, catalogue, uris
from shared.application import CALLER_CATCHES_UP
from shared.blobstore import Blobs
from shared.errors import (Forbidden, IdempotencyKeyReused, InvalidPayload, MethodNotAllowed, NotFound,
                           Unauthorized)
from shared.rpc import Services
from shared.validation import validate

VERSION = "0.1.0"
IGNORED_FIELDS = "Stratum-Ignored-Fields"
DEPLOYED = datetime.now(timezone.utc).date().isoformat()
log = logging.getLogger(__name__)
_VERB_OF = {("collection", "GET"): "LIST", ("collection", "POST"): "POST",
            ("item", "GET"): "GET", ("item", "PUT"): "PUT", ("item", "DELETE"): "DELETE"}


class Routes(DependencyProvider):
    """Builds the catalogue's URL map (gateway.routing) as the service starts: werkzeug compiles each of its few
    hundred rules, about 0.2 s of CPU, which the first catalogue request after every start otherwise waited for."""

    def setup(self):
        url_map()


class GatewayService:
    name = "gateway"
    services = Services()
    read = ReadSide()
    config = Config()
    blobs = Blobs()
    routes = Routes()
    failed_logins = LoginLimit()  # per gateway process, its share of the limit: gateway.ratelimit

    # -- public ---------------------------------------------------------------------------------------------

    @http("GET", "/about/")
    def about(self, request):
        return json_response({"name": "Stratum", "version": VERSION, "deployment_date": DEPLOYED})

    @http("GET", "/health/ready")
    def ready(self, request):
        """Readiness, for `make run`, compose and Kubernetes probes (/about/ is liveness): gateway/health.py."""
        return health.readiness(self)

    @http("GET", "/openapi.json")
    def openapi(self, request):
        return json_response(apidocs.openapi_document(VERSION, self._base(request)))

    @http("GET", "/docs")
    def docs(self, request):
        return apidocs.docs_page()

    @http("GET", "/event-stream/")
    def event_stream(self, request):
        """The caller's bureau's events, live (NDJSON or Server-Sent Events), resumable: gateway/stream.py."""
        caller = authenticate(request, self.read.store, self.config)
        return stream.stream_response(request, self.read.store, caller, self._base(request))

    # -- file bytes (signed links; no session needed) ------------------------------------------------------------

    @http("PUT", "/upload/<resource>/<uuid>/")
    def upload(self, request, resource, uuid):
        return files.receive_upload(self, request, resource, uuid)

    @http("GET", "/content/<uuid>/")
    def content(self, request, uuid):
        return files.download(self, request, uuid)

    # -- sessions -------------------------------------------------------------------------------------------

    @http(ANY_METHOD, "/sessions/")
    def sessions(self, request):
        if request.method == "POST":
            return self._login(request)
        caller = authenticate(request, self.read.store, self.config)
        if request.method == "GET":
            return json_response(self._session_body(request, caller))
        if request.method == "DELETE":
            self._write("identity", "delete", "sessions", caller.session, caller, request)
            response = json_response(None, 204)
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        raise MethodNotAllowed("Allowed methods on /sessions/: GET, POST, DELETE.", allow=("GET", "POST", "DELETE"))

    @http(ANY_METHOD, "/csrf-token/")
    def csrf(self, request):
        if request.method != "GET":
            raise MethodNotAllowed("Allowed methods on /csrf-token/: GET.", allow=("GET",))
        try:
            caller = authenticate(request, self.read.store, self.config)
        except Unauthorized:  # the reference documents 403 with this text here
            raise Forbidden("You are not authorized to complete the request.") from None
        return json_response({"token": csrf_token(self.config, caller)})

    # -- the bureau's webhook signing secret (a Stratum extension: services/notifications/webhooks.py) --------------

    @http(ANY_METHOD, "/webhook-secret/")
    def webhook_secret(self, request):
        """GET: the caller's bureau's secret for X-Stratum-Signature; POST: replace it (the old one stops signing).
        Managers only (platform administrators too)."""
        if request.method not in ("GET", "POST"):
            raise MethodNotAllowed("Allowed methods on /webhook-secret/: GET, POST.", allow=("GET", "POST"))
        caller = authenticate(request, self.read.store, self.config)
        if not caller.platform_admin and self._role(caller) != "manager":
            raise Forbidden("Only a manager of the bureau can read or replace its webhook secret.")
        if not caller.bureau:
            raise InvalidPayload("The session has no bureau.")
        method = "webhook_secret" if request.method == "GET" else "rotate_webhook_secret"
        body = self.services.call("notifications", method, caller.bureau)
        body = dict(body, bureau=self._base(request) + body["bureau"], header="X-Stratum-Signature",
                    scheme="sha256=HMAC-SHA256(secret, X-Stratum-Timestamp + '.' + raw body), hex")
        response = json_response(body, 200)
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- password reset (capture-and-platform.md C4 `users.password_reset`; a Stratum extension: no session) ---------

    @http(ANY_METHOD, "/password-reset/")
    def password_reset(self, request):
        """Ask for a reset mail with {"username": …} (or {"email": …}). The answer is the same 202 whether or not
        such an account exists, so it tells nobody which accounts exist; the account's e-mail gets the token."""
        if request.method != "POST":
            raise MethodNotAllowed("Allowed methods on /password-reset/: POST.", allow=("POST",))
        payload = read_payload(request, max_bytes=self._max_body())
        name = payload.get("username") or payload.get("email")
        if not isinstance(name, str) or not name.strip():
            raise InvalidPayload("The field 'username' (or 'email') is required.", field="username")
        # an address locked out of logins asks nothing either
        self.failed_logins.check(request.remote_addr or "unknown")
        self.services.call("identity", "request_password_reset", name)
        return json_response({"detail": "If an account with this name exists, an e-mail with a password reset token "
                                        "is on its way to it. The token works once, within the hour."}, 202)

    @http(ANY_METHOD, "/password-reset/confirm/")
    def password_reset_confirm(self, request):
        """Set a new password with the mailed token: {"token": …, "password": …} → 204; a wrong, used or expired
        token → 400 (and counts as a failed login of the address)."""
        if request.method != "POST":
            raise MethodNotAllowed("Allowed methods on /password-reset/confirm/: POST.", allow=("POST",))
        payload = read_payload(request, max_bytes=self._max_body())
        for name in ("token", "password"):
            if not isinstance(payload.get(name), str) or not payload[name]:
                raise InvalidPayload(f"The field '{name}' is required.", field=name)
        address = request.remote_addr or "unknown"
        self.failed_logins.check(address)
        try:
            result = self.services.call("identity", "reset_password", payload["token"], payload["password"])
        except InvalidPayload as refused:
            if refused.field == "token":
                self.failed_logins.failed(address)
            raise
        self._catch_up(result)
        return json_response(None, 204)

    def _login(self, request):
        payload = read_payload(request, max_bytes=self._max_body())
        username, password = payload.get("username"), payload.get("password")
        for name, value in (("username", username), ("password", password)):
            if not isinstance(value, str) or not value:
                raise InvalidPayload(f"The field '{name}' is required.", field=name)
        address = request.remote_addr or "unknown"
        self.failed_logins.check(address)
        try:
            result = self.services.call("identity", "login", username, password)
        except Unauthorized:
            self.failed_logins.failed(address)
            raise
        self._catch_up(result)
        caller = caller_for_key(self.read.store, result["session_key"], self.config)
        body = dict(self._session_body(request, caller), session_key=result["session_key"])
        response = json_response(body, 201, headers={"Location": self._base(request) + result["uri"]})
        response.set_cookie(SESSION_COOKIE, result["session_key"], httponly=True, samesite="Lax", path="/")
        return response

    def _session_body(self, request, caller):
        base = self._base(request)
        user = self.read.store.document(caller.user, None) or {}
        return {
            "uri": f"{base}/sessions/{caller.session}/",
            "user": base + caller.user,
            "username": user.get("username"),
            "name": user.get("name"),
            "emails": user.get("emails") or [],
            "bureau": base + caller.bureau if caller.bureau else None,
        }

    # -- every catalogue resource -----------------------------------------------------------------------------

    @http(ANY_METHOD, "/<path:path>")
    def resource(self, request, path):
        route, values = match("/" + path)
        uuid = values.get("uuid")
        spec = catalogue.resource(route.resource)
        caller = authenticate(request, self.read.store, self.config)
        if spec.special:  # parameterised or protocol endpoints (oauth, content download, …)
            self._verb(spec, route.shape, request.method)
            return special.HANDLERS[spec.name](self.read, caller, dict(values, base=self._base(request)))
        if route.shape == "action":
            return self._action(request, spec, route.action, _valid_uuid(uuid, spec), caller)
        verb = self._verb(spec, route.shape, request.method)
        if spec.name in computed.READS:  # computed by the owning service when asked (a batch's genealogy)
            return computed.READS[spec.name](self, request, spec, verb, uuid and _valid_uuid(uuid, spec), caller)
        if verb == "LIST":
            return self._list(request, spec, caller)
        if verb == "POST":
            # Shape check here (types, choices, references) rejects bad input before any RPC; required fields,
            # defaults and the bureau rule belong to the owning service, which validates the complete resource.
            fields, ignored = self._checked(request, spec, caller)
            self._authorize(spec, verb, caller, fields, request)
            result = self._write(spec.service, "create", spec.name, fields, caller, request)
            if spec.item_path is None and "LIST" not in spec.verbs and str(result.get("uri") or "").startswith(
                    spec.path):
                # nothing to read back at all (/contact-us/): the reference answers 204. A listed one (/sentry/) or a
                # request that made another resource (/zipfile-request/ → its /zipfile/) points at it: 201, Location
                return _reporting(json_response(None, 204), ignored)
            location = self._base(request) + result["uri"]
            if "secret" in result:  # a generated secret (API token) is shown once, here
                body = {"uri": location, "uuid": result["uuid"], "secret": result["secret"], **fields}
                return _reporting(json_response(body, 201, headers={"Location": location}), ignored)
            return _reporting(json_response(None, 201, headers=self._created_headers(request, result)), ignored)
        uuid = _valid_uuid(uuid, spec)
        if verb == "GET":
            return json_response(self._get(request, spec, uuid, caller))
        current = self._require_visible(spec, uuid, caller)
        ignored = []
        if verb == "PUT":
            fields, ignored = self._checked(request, spec, caller, current)
            self._authorize(spec, verb, caller, fields, request)
            self._write(spec.service, "update", spec.name, uuid, fields, caller, request)
        else:
            self._authorize(spec, verb, caller, {}, request)
            self._write(spec.service, "delete", spec.name, uuid, caller, request)
        return _reporting(json_response(None, 204), ignored)

    # -- helpers ----------------------------------------------------------------------------------------------

    def _verb(self, spec, shape, method):
        verb = _VERB_OF.get((shape, "GET" if method == "HEAD" else method))
        if verb is None or verb not in spec.verbs:
            allowed = sorted({m for (s, m), v in _VERB_OF.items() if s == shape and v in spec.verbs})
            raise MethodNotAllowed(f"{method} is not allowed on {spec.path}; allowed: {', '.join(allowed) or 'none'}.",
                                   allow=allowed)
        return verb

    def _checked(self, request, spec, caller, current=None):
        """(the payload's fields, checked; the names of the fields the tolerant reader ignored)."""
        payload, ignored = tolerant.read(spec, read_payload(request, spec, self._max_body()),
                                         strict=tolerant.wants_strict(request, self.config), current=current)
        if ignored:
            log.info("%s %s: ignored fields not in the catalogue: %s", request.method, request.path, ignored)
        fields = validate(spec, payload, partial=True)
        check_references(spec, fields, _scope(caller), self.read.store)
        check_related(spec, fields, _scope(caller), self.read.store, current)
        return fields, ignored

    def _max_body(self):
        return int(float(self.config.get("STRATUM_MAX_BODY_KB") or 1024) * 1024)

    def _action(self, request, spec, name, uuid, caller):
        action = spec.action(name)
        if request.method not in action.verbs:
            raise MethodNotAllowed(f"{request.method} is not allowed on {action.path}; allowed: "
                                   f"{', '.join(action.verbs)}.", allow=action.verbs)
        if request.method == "GET" and (spec.name, name) in files.VIEWS:  # a read: a model's or document's snapshot
            path = uris.resource_path(spec.name, uuid)
            doc = self.read.store.document(path, _scope(caller))
            if doc is None:
                raise NotFound(spec.not_found)
            view = files.VIEWS[spec.name, name](self, name, path, doc, self._base(request), request)
            return view if isinstance(view, Response) else json_response(view)
        self._require_visible(spec, uuid, caller)
        payload, ignored = self._checked(request, action, caller) if action.fields else ({}, [])
        self._authorize(spec, "PUT", caller, payload, request)  # an action changes its resource: same role rules
        result = self._write(spec.service, "act", spec.name, uuid, name, payload, caller, request)
        if result.get("upload"):  # the action made a resource whose bytes follow (a document's replacement)
            return _reporting(json_response(None, 201, headers=self._created_headers(request, result)), ignored)
        return _reporting(json_response(None, 202 if result.get("accepted") else 204,
                                        headers={"Location": self._base(request) + result["uri"]}), ignored)

    def _created_headers(self, request, result):
        base = self._base(request)
        headers = {"Location": base + result["uri"]}
        if result.get("upload"):  # files.md §0.2: where the client PUTs the bytes
            resource, uuid = uris.parse_uri(result["uri"])
            headers["X-Upload-Location"] = files.links.upload_link(self.config, base, resource, uuid)
        if result.get("model"):  # files.md §1.3: a design file's model
            headers["Model-Location"] = base + result["model"]
        return headers

    def _require_visible(self, spec, uuid, caller):
        """The resource's current document; 404 when the caller cannot see it."""
        doc = self.read.store.document(uris.resource_path(spec.name, uuid), _scope(caller))
        if doc is None:
            raise NotFound(spec.not_found)
        return doc

    def _role(self, caller):
        """The caller's highest role in its bureau. A write's caller comes with its roles (gateway.auth); a read
        that needs them looks them up, once per request (nameko makes a service instance per worker)."""
        if caller.roles is not None:
            return access.highest(caller.roles)
        if getattr(self, "_role_memo", None) is None:
            self._role_memo = access.highest(self.read.store.roles_of(caller.user, caller.bureau))
        return self._role_memo

    def _authorize(self, spec, verb, caller, fields, request):
        """The access rules of shared.access (403 with the reason); role changes also need the session's
        CSRF token (capture-and-platform.md C3), as `csrf_token` in the payload or an X-CSRF-Token header."""
        refusal = access.write_refusal(spec.name, verb, self._role(caller), caller.platform_admin)
        if refusal:
            raise Forbidden(refusal)
        token = fields.get("csrf_token") or request.headers.get("X-CSRF-Token")
        if spec.name == "role" and not csrf_valid(self.config, caller, token):
            raise Forbidden("A valid csrf_token (from /csrf-token/) is required to change roles.", field="csrf_token")

    def _list(self, request, spec, caller):
        query = listing.parse(spec, request.query_string.decode())
        base = self._base(request)
        if spec.name == "access-info-for-resource":
            return json_response({"resources": [self._access_info(query, caller, base)], "total_count": 1,
                                  "meta": {"total_count_is_estimate": False, "next": None}})
        if spec.name == "event":
            page = self.read.store.audit(spec, _scope(caller), query)
            resources = [render_audit(row, base) for row in page.rows]
        else:
            page = self.read.store.documents(spec, _scope(caller), query)
            resources = [self._render(spec, row.path, row.doc, base) for row in page.rows]
        # meta (an extension): whether total_count is an estimate (past readstore.COUNT_BOUND matching rows), and
        # the page[after] cursor of the next page (None when this page is not full)
        return json_response({"resources": resources, "total_count": page.total,
                              "meta": {"total_count_is_estimate": page.estimate, "next": page.next}})

    def _get(self, request, spec, uuid, caller):
        base = self._base(request)
        if spec.name == "event":
            row = self.read.store.audit_row(uuid, _scope(caller))
            if row is None:
                raise NotFound(spec.not_found)
            return render_audit(row, base)
        path = uris.resource_path(spec.name, uuid)
        doc = self.read.store.document(path, _scope(caller))
        if doc is None:
            raise NotFound(spec.not_found)
        return self._render(spec, path, doc, base)

    def _render(self, spec, path, doc, base):
        """A stored document as the API shows it: catalogue fields, fresh signed links, and figures that depend
        on the time of reading (a task's durations)."""
        body = files.Links(self.config, base).decorate(spec, path, doc, render(spec, path, doc, base))
        if spec.name == task_views.VIEW:
            body.update(task_views.durations(doc))
        return body

    def _access_info(self, query, caller, base):
        """Which actions the caller may take on the resource at filter[target_uri] (404 when it cannot see it)."""
        target = next(f.values[0] for f in query.filters if f.field == "target_uri")
        resource_name, _ = uris.parse_uri(target)
        spec = catalogue.resource(resource_name)
        if self.read.store.document(target, _scope(caller)) is None:
            raise NotFound(spec.not_found)
        actions = access.allowed_actions(spec.name, self._role(caller), caller.platform_admin, spec.verbs)
        return {"target_uri": base + target, "actions": actions}

    def _write(self, service, method, *args):
        """Send a command with the caller's identity and an idempotency key; return once the read side has it."""
        *command_args, caller, request = args
        ctx = {
            "user": caller.user,
            "bureau": caller.bureau,
            "platform_admin": caller.platform_admin,
            "role": self._role(caller),
            "command_id": self._command_id(request, caller),
            CALLER_CATCHES_UP: True,  # the events come back with the result (on SQLite the projector leaves them to us)
        }
        deadline = time.monotonic() + self.services.timeout  # the read side catches up in what is left of it
        result = self.services.command(service, method, *command_args, ctx)  # maybe with others' (shared.rpc)
        self._catch_up(result, deadline)
        return result

    def _command_id(self, request, caller):
        """The command's idempotency key. A client's Idempotency-Key belongs to that caller and that request (method,
        path, body): another caller's same key is another command, and the same key on another request is a 422."""
        key = request.headers.get("Idempotency-Key")
        if not key:
            return str(uuid4())
        if len(key) > 255:
            raise InvalidPayload("Idempotency-Key is longer than 255 characters.", field="Idempotency-Key")
        fingerprint = hashlib.sha256(b"\n".join([request.method.encode(), request.path.encode(),
                                                 request.get_data(cache=True)])).hexdigest()
        first = self.read.store.claim_idempotency_key(caller.user, key, fingerprint,
                                                      datetime.now(timezone.utc).isoformat())
        if first != fingerprint:
            raise IdempotencyKeyReused("Idempotency-Key reused with a different request (another method, path or "
                                       "body); use a new key for a new request.", field="Idempotency-Key")
        return str(uuid5(NAMESPACE_URL, f"stratum:idempotency:{caller.user}:{key}"))

    def _catch_up(self, result, deadline=None):
        """Read-your-writes: the read side holds the command's events before its answer leaves, if it can by
        `deadline` (time.monotonic(); by default the RPC timeout from now). The command is done whatever happens
        here, so an outage now (the feed's service, the broker or the read database away, another catch-up holding
        the feed too long, the time up) is logged, not answered as a 503 that would have the client send it again:
        the projector brings the read side up to date."""
        application = result["application"]
        if deadline is None:
            deadline = time.monotonic() + self.services.timeout
        news, wait = result.pop("news", None), deadline - time.monotonic()
        why = f"its {self.services.timeout:g} s were up"
        try:
            if wait > 0 and self.read.catch_up(application, self.services.fetcher(application, deadline),
                                               until=result["position"], news=news, wait=wait) is not None:
                return
        except Exception as error:
            if not is_outage(error):
                raise
            why = str(error)
        log.warning("answering a %s command before the read side holds its events: %s", application, why)

    def _base(self, request):
        return (self.config.get("STRATUM_BASE_URL") or request.host_url).rstrip("/")


def _reporting(response, ignored):
    """Name the fields the tolerant reader ignored, so integrators see them (gateway.tolerant)."""
    if ignored:
        names = [_header_safe(name) for name in ignored[:MAX_IGNORED_NAMED]]
        response.headers[IGNORED_FIELDS] = ", ".join(names + (["..."] if len(ignored) > MAX_IGNORED_NAMED else []))
    return response


MAX_IGNORED_NAMED = 50  # a body may hold thousands of unknown keys; the header names the first ones (all are logged)
_HEADER_SAFE = "!#$&'()*+-./:;<=>?@[]^_`{|}~"  # printable ASCII but for the list's separators, quotes and `%`


def _header_safe(name):
    """A field name as a header can carry it: a name sent with line breaks, control or non-ASCII characters would
    make the whole answer unsendable (HTTP headers are Latin-1 without CR/LF), so those are percent-encoded (UTF-8)."""
    return quote(name.encode("utf-8", "backslashreplace"), safe=_HEADER_SAFE)


def _scope(caller):
    """Whose data the caller sees: its bureau's (less other users' own, shared.access.OWNED_BY_USER); a platform
    administrator sees every bureau."""
    return None if caller.platform_admin else Scope(caller.bureau, caller.user)


def _valid_uuid(value, spec):
    try:
        return str(UUID(value))
    except (TypeError, ValueError):
        raise NotFound(spec.not_found) from None

"""The HTTP gateway: authenticate, validate against the catalogue, send commands to the owning service by RPC,
and answer reads from the read side. Writes answer only once the read side holds them (read-your-writes)."""
from datetime import datetime, timezone
from uuid import UUID, uuid4

from nameko.dependency_providers import Config

from gateway.auth import SESSION_COOKIE, authenticate, caller_for_key
from gateway.http import ANY_METHOD, http, json_response, read_payload
from gateway.readside import ReadSide
from gateway.rendering import render, render_audit
from shared import catalogue, listing, uris
from shared.errors import InvalidPayload, MethodNotAllowed, NotFound
from shared.rpc import Services
from shared.validation import validate

VERSION = "0.1.0"
DEPLOYED = datetime.now(timezone.utc).date().isoformat()
_VERB_OF = {("collection", "GET"): "LIST", ("collection", "POST"): "POST",
            ("item", "GET"): "GET", ("item", "PUT"): "PUT", ("item", "DELETE"): "DELETE"}


class GatewayService:
    name = "gateway"
    services = Services()
    read = ReadSide()
    config = Config()

    # -- public ---------------------------------------------------------------------------------------------

    @http("GET", "/about/")
    def about(self, request):
        return json_response({"name": "Stratum", "version": VERSION, "deployment_date": DEPLOYED})

    # -- sessions -------------------------------------------------------------------------------------------

    @http(ANY_METHOD, "/sessions/")
    def sessions(self, request):
        if request.method == "POST":
            return self._login(request)
        caller = authenticate(request, self.read.store)
        if request.method == "GET":
            return json_response(self._session_body(request, caller))
        if request.method == "DELETE":
            self._write("identity", "delete", "sessions", caller.session, {}, caller, request)
            response = json_response(None, 204)
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        raise MethodNotAllowed("Allowed methods on /sessions/: GET, POST, DELETE.")

    def _login(self, request):
        payload = read_payload(request)
        username, password = payload.get("username"), payload.get("password")
        for name, value in (("username", username), ("password", password)):
            if not isinstance(value, str) or not value:
                raise InvalidPayload(f"The field '{name}' is required.", field=name)
        result = self.services.call("identity", "login", username, password)
        self._catch_up(result)
        caller = caller_for_key(self.read.store, result["session_key"])
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

    @http(ANY_METHOD, "/<resource>/")
    def collection(self, request, resource):
        spec = catalogue.resource(resource)
        caller = authenticate(request, self.read.store)
        verb = self._verb(spec, "collection", request.method)
        if verb == "LIST":
            return self._list(request, spec, caller)
        # Shape check here (types, choices) rejects bad input before any RPC; required fields, defaults and the
        # bureau default belong to the owning service, which validates the complete resource.
        fields = validate(spec, read_payload(request, spec), partial=True)
        result = self._write(spec.service, "create", spec.name, fields, caller, request)
        return json_response(None, 201, headers={"Location": self._base(request) + result["uri"]})

    @http(ANY_METHOD, "/<resource>/<uuid>/")
    def item(self, request, resource, uuid):
        spec = catalogue.resource(resource)
        caller = authenticate(request, self.read.store)
        verb = self._verb(spec, "item", request.method)
        uuid = _valid_uuid(uuid, spec)
        if verb == "GET":
            return json_response(self._get(request, spec, uuid, caller))
        if self.read.store.document(uris.resource_path(spec.name, uuid), caller.bureau) is None:
            raise NotFound(spec.not_found)
        if verb == "PUT":
            fields = validate(spec, read_payload(request, spec), partial=True)
            self._write(spec.service, "update", spec.name, uuid, fields, caller, request)
        else:
            self._write(spec.service, "delete", spec.name, uuid, caller, request)
        return json_response(None, 204)

    @http(ANY_METHOD, "/<path:anything>")
    def unknown(self, request, anything):
        raise NotFound(f"There is no resource at /{anything}.")

    # -- helpers ----------------------------------------------------------------------------------------------

    def _verb(self, spec, shape, method):
        verb = _VERB_OF.get((shape, "GET" if method == "HEAD" else method))
        if verb is None or verb not in spec.verbs:
            allowed = sorted({m for (s, m), v in _VERB_OF.items() if s == shape and v in spec.verbs})
            raise MethodNotAllowed(
                f"{method} is not allowed here; allowed: {', '.join(allowed) or 'none'}.", code="method-not-allowed")
        return verb

    def _list(self, request, spec, caller):
        query = listing.parse(spec, request.query_string.decode())
        base = self._base(request)
        if spec.service == "gateway":
            rows, total = self.read.store.audit(spec, caller.bureau, query)
            resources = [render_audit(row, base) for row in rows]
        else:
            rows, total = self.read.store.documents(spec, caller.bureau, query)
            resources = [render(spec, path, doc, base) for path, doc in rows]
        return json_response({"resources": resources, "total_count": total})

    def _get(self, request, spec, uuid, caller):
        base = self._base(request)
        if spec.service == "gateway":
            row = self.read.store.audit_row(uuid, caller.bureau)
            if row is None:
                raise NotFound(spec.not_found)
            return render_audit(row, base)
        path = uris.resource_path(spec.name, uuid)
        doc = self.read.store.document(path, caller.bureau)
        if doc is None:
            raise NotFound(spec.not_found)
        return render(spec, path, doc, base)

    def _write(self, service, method, *args):
        """Send a command with the caller's identity and an idempotency key; return once the read side has it."""
        *command_args, caller, request = args
        ctx = {
            "user": caller.user,
            "bureau": caller.bureau,
            "command_id": request.headers.get("Idempotency-Key") or str(uuid4()),
        }
        result = self.services.call(service, method, *command_args, ctx)
        self._catch_up(result)
        return result

    def _catch_up(self, result):
        application = result["application"]
        self.read.catch_up(application, self.services.fetcher(application), until=result["position"])

    def _base(self, request):
        return (self.config.get("STRATUM_BASE_URL") or request.host_url).rstrip("/")


def _valid_uuid(value, spec):
    try:
        return str(UUID(value))
    except ValueError:
        raise NotFound(spec.not_found) from None


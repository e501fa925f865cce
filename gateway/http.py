"""HTTP plumbing of the gateway: JSON responses and the error table (request bodies: gateway.bodies)."""
import functools
import json
import logging
import socket

from kombu.exceptions import OperationalError as BrokerError
from nameko.exceptions import RemoteError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from sqlalchemy.exc import DisconnectionError, InterfaceError
from sqlalchemy.exc import OperationalError as DatabaseError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as NoSuchMethod
from werkzeug.wrappers import Request, Response

from gateway import cors
from shared.errors import MethodNotAllowed, NotFound, ServiceUnavailable, StratumError

log = logging.getLogger(__name__)

ANY_METHOD = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"


def json_response(body, status=200, headers=None):
    text = "" if body is None else json.dumps(body, separators=(",", ":"))
    return Response(text, status=status, headers=headers,
                    mimetype="application/json" if body is not None else None)


class _JsonWsgiApp(WsgiApp):
    """nameko's WSGI app, but a request no handler is routed for (a path with a line break in it, which no route
    matches; a method no handler takes) is answered with a JSON error like every other, not werkzeug's HTML page."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)  # as nameko's: nobody reads the body before a handler does
        try:
            provider, values = self.url_map.bind_to_environ(environ).match()
        except HTTPException as exc:
            return _unrouted(exc, request)(environ, start_response)
        request.path_values = values
        return provider.handle_request(request)(environ, start_response)


def _unrouted(exc, request):
    if isinstance(exc, NoSuchMethod):
        allowed = sorted(exc.valid_methods or ())
        return error_response(MethodNotAllowed(f"{request.method} is not allowed here; allowed: {', '.join(allowed)}.",
                                               allow=allowed))
    if exc.code == 404:
        return error_response(NotFound(f"There is no resource at {request.path!r}."))
    return exc  # a redirect (a path without its final slash), answered as werkzeug words it


class _NoDelayProtocol(HttpOnlyProtocol):
    """Answers leave at once. With Nagle's algorithm on, a response larger than one write (a page of 50 orders,
    ~60 KB) held its last segment until the client's delayed ACK, 40 ms later, on every kept-alive connection."""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket (a test's UNIX socket)
            pass


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return _JsonWsgiApp(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=_NoDelayProtocol, debug=False):
        return super().get_wsgi_server(sock, wsgi_app, protocol=protocol, debug=debug)


class JsonHttpEntrypoint(HttpRequestHandler):
    """Every failure becomes a JSON error body with its status; an outage is a 503 with Retry-After, anything else
    unexpected a logged 500. CORS preflights are answered here, before any handler authenticates."""

    server = JsonWebServer()

    def handle_request(self, request):
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            # eventlet's server de-chunks the body and ends it itself; werkzeug reads a body without Content-Length
            # only when told so (otherwise every chunked body, JSON or file, would arrive empty). Size limits still
            # apply as it streams.
            request.environ["wsgi.input_terminated"] = True
        origins = cors.allowed_origins(self.container.config)
        if cors.is_preflight(request):
            return cors.preflight(request, origins)
        return cors.grant(request, super().handle_request(request), origins)

    def response_from_exception(self, exc):
        return error_response(exc)


# What an outage looks like from the gateway: its read database, the broker, or a service's database (the service's
# error arrives as a RemoteError naming the driver's exception class).
_OUTAGES = (DatabaseError, InterfaceError, DisconnectionError, PoolTimeout, BrokerError, ConnectionError, TimeoutError)
_REMOTE_OUTAGES = {"OperationalError", "InterfaceError", "PoolTimeout", "ConnectionTimeout", "ConnectionError",
                   "ConnectionResetError", "ConnectionRefusedError"}


def error_response(exc):
    if isinstance(exc, StratumError):
        return json_response(exc.as_json(), status=exc.status, headers=exc.headers())
    if isinstance(exc, _OUTAGES) or (isinstance(exc, RemoteError) and exc.exc_type in _REMOTE_OUTAGES):
        log.warning("answering 503: %s: %s", type(exc).__name__, exc)
        return error_response(ServiceUnavailable("Stratum cannot reach one of its services or databases right "
                                                 "now; please retry shortly."))
    log.error("unhandled error in gateway", exc_info=exc)
    return json_response({"errors": [{"code": "internal-error", "title": "Internal server error."}]}, 500)


def http(method, url, **kwargs):
    """`@http` whose domain errors become their JSON answer inside the worker, so a client's mistake is answered,
    not logged as a failure with a traceback."""
    def decorate(handler):
        @functools.wraps(handler)
        def answer_errors(*args, **kw):
            try:
                return handler(*args, **kw)
            except (StratumError, RemoteError, *_OUTAGES) as error:
                return error_response(error)
        return JsonHttpEntrypoint.decorator(method, url, **kwargs)(answer_errors)
    return decorate

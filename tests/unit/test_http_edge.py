"""The gateway's HTTP edge sends an answer at once: Nagle's algorithm off on every accepted connection (and checks a
handler's signature once per shape of call).

With it on, a page of 50 orders (~60 KB, several writes through eventlet's buffered file) waited for the
client's delayed ACK, 40 ms, on every kept-alive connection: most of a LIST's time in bench.scale."""
import logging
import socket
from types import SimpleNamespace

import pytest
from nameko import extensions
from nameko.exceptions import IncorrectSignature
from nameko.web.server import WebServer

from gateway.http import JsonHttpEntrypoint, JsonWebServer, _NoDelayProtocol


def _accepted_pair():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server_side, _ = listener.accept()
    listener.close()
    return client, server_side


def test_accepted_connections_have_nagle_off():
    client, server_side = _accepted_pair()
    try:
        assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # the kernel's default
        protocol = _NoDelayProtocol.__new__(_NoDelayProtocol)  # setup() alone, without serving a request
        protocol.request = server_side
        protocol.setup()
        assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.close()
        server_side.close()


def test_the_gateway_server_uses_that_protocol():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        server = JsonWebServer.__new__(JsonWebServer).get_wsgi_server(listener, wsgi_app=None)
        assert server.protocol is _NoDelayProtocol
    finally:
        listener.close()


def test_access_log_lines_are_made_only_where_they_are_logged():
    """eventlet formats an access-log line per request for nameko's web logger: only when it logs INFO."""
    web_log = logging.getLogger(WebServer.__module__)
    level = web_log.level
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        made = {}
        for setting in (logging.WARNING, logging.INFO):
            web_log.setLevel(setting)
            made[setting] = JsonWebServer.__new__(JsonWebServer).get_wsgi_server(listener, wsgi_app=None).log_output
        assert made == {logging.WARNING: False, logging.INFO: True}
    finally:
        web_log.setLevel(level)
        listener.close()


def test_a_handlers_signature_is_checked_once_per_shape_of_call_and_a_misfit_every_time(monkeypatch):
    """nameko checks every call against the handler with inspect.getcallargs; whether it fits depends only on the
    number of positional arguments and the names of the others, so a fitting shape is not checked again."""
    class Service:
        def item(self, request, uuid):
            pass

    checks = []
    real = extensions.inspect.getcallargs
    monkeypatch.setattr(extensions.inspect, "getcallargs", lambda *a, **kw: checks.append(kw) or real(*a, **kw))
    entrypoint = JsonHttpEntrypoint("GET", "/item/<uuid>/")
    entrypoint.container, entrypoint.method_name = SimpleNamespace(service_cls=Service), "item"
    for uuid in ("a", "b", "c"):
        entrypoint.check_signature(("request",), {"uuid": uuid})
    assert checks == [{"uuid": "a"}]
    for _ in range(2):
        with pytest.raises(IncorrectSignature):
            entrypoint.check_signature(("request",), {"name": "x"})
    assert len(checks) == 3

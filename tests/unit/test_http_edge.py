"""The gateway's HTTP edge sends an answer at once: Nagle's algorithm off on every accepted connection.

With it on, a page of 50 orders (~60 KB, several writes through eventlet's buffered file) waited for the
client's delayed ACK, 40 ms, on every kept-alive connection: most of a LIST's time in bench.scale."""
import logging
import socket

from nameko.web.server import WebServer

from gateway.http import JsonWebServer, _NoDelayProtocol


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

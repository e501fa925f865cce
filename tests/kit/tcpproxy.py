"""A TCP proxy that a test can take down and bring back, to cut a service off from RabbitMQ (or PostgreSQL) the way
`rabbitmqctl stop_app; start_app` does, without touching the shared server: while down, open connections are reset
and new ones are refused; once up, connections pass through again.

It runs in a child process of its own (plain threads, no eventlet), driven over stdin:
    python -m tests.kit.tcpproxy TARGET_HOST TARGET_PORT      → prints the port it listens on
    "down\n" / "up\n"                                         → prints "ok" once done
"""
import socket
import struct
import subprocess
import sys
import threading


class Proxy:
    def __init__(self, target):
        self.target = target
        self.port = None
        self.listener = None
        self.connections = set()
        self.lock = threading.Lock()

    def up(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self):
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        with self.lock:
            connections, self.connections = self.connections, set()
        for sock in connections:
            _reset(sock)

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self.lock:
                if self.listener is not listener:  # went down meanwhile
                    _reset(client)
                    _reset(server)
                    continue
                self.connections |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            self.connections -= {source, sink}


def _reset(sock):
    """Close with RST (as a stopped broker's host does), not a polite FIN. close() alone leaves the connection open
    while a pipe thread is blocked reading it (Linux keeps the socket until that read returns), so only a connection
    that happened to carry data would notice the outage; shutting its reading side first wakes that thread."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class ProxyProcess:
    """The test's handle on a proxy child process."""

    def __init__(self, host, port):
        self.process = subprocess.Popen([sys.executable, "-m", "tests.kit.tcpproxy", host, str(port)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.port = int(self.process.stdout.readline())

    def _command(self, word):
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def down(self):
        self._command("down")

    def up(self):
        self._command("up")

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


def main(host, port):
    proxy = Proxy((host, int(port)))
    proxy.up()
    print(proxy.port, flush=True)
    for line in sys.stdin:
        getattr(proxy, line.strip())()
        print("ok", flush=True)
    proxy.down()


if __name__ == "__main__":
    main(*sys.argv[1:])

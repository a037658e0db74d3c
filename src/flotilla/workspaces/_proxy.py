"""The allowed-hosts proxy: the sandbox's only way out when ``allow_hosts`` is set.

Inside, the network is unshared (loopback only), so nothing can reach the
outside by itself, whatever it ignores of ``HTTPS_PROXY``. flotilla runs this
proxy outside, on a Unix socket bound into the sandbox; a small bridge inside
(``BRIDGE``, run by the system Python) listens on ``127.0.0.1:3128`` and
forwards each connection to that socket, tagged with the call it belongs to.
The proxy answers ``CONNECT host:port`` (HTTPS) and absolute-URI requests
(plain HTTP) for the allowed hosts only, and refuses the rest with a message
the agent can read; each refusal is kept for the call, so the Bash tool can
report it and the run can record it.
"""

from __future__ import annotations

import atexit
import fnmatch
import inspect
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

PORT = 3128
"""Where the bridge listens inside the sandbox (its network namespace is its own, so any port is free)."""
MAX_HEAD = 65536


def allowed(host: str, patterns: Sequence[str]) -> bool:
    """``host`` matches a name in ``allow_hosts`` exactly, or a ``*.example.com`` pattern."""
    host = host.lower().strip("[]")
    return any(fnmatch.fnmatchcase(host, p.lower()) for p in patterns)


class HostProxy:
    """A threaded CONNECT/HTTP proxy on a Unix socket, letting through ``allow_hosts`` only."""

    def __init__(self, allow_hosts: Sequence[str]) -> None:
        self.allow_hosts = list(allow_hosts)
        self.folder = Path(tempfile.mkdtemp(prefix="flotilla-proxy-"))
        self.socket_path = self.folder / "proxy.sock"
        self._denials: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request, self.rfile)

        self._server = socketserver.ThreadingUnixStreamServer(str(self.socket_path), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="flotilla-proxy", daemon=True).start()
        atexit.register(self.close)

    def denials(self, call: str) -> list[str]:
        """The refusals of one call, each once."""
        with self._lock:
            return self._denials.pop(call, [])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _handle(self, client: socket.socket, rfile: object) -> None:
        tag = rfile.readline(MAX_HEAD)  # type: ignore[attr-defined]
        call = tag.split(b" ", 1)[1].strip().decode() if tag.startswith(b"FLOTILLA-CALL ") else ""
        head = b""
        while not head.endswith(b"\r\n\r\n") and len(head) < MAX_HEAD:
            line = rfile.readline(MAX_HEAD)  # type: ignore[attr-defined]
            if not line:
                return
            head += line
        request_line, _, rest = head.partition(b"\r\n")
        try:
            method, target, version = request_line.decode("latin-1").split(" ", 2)
        except ValueError:
            return _reply(client, 400, "flotilla sandbox proxy: not an HTTP request")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            origin = None
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                return _reply(client, 400, f"flotilla sandbox proxy: cannot proxy {target!r} (use http:// or CONNECT)")
            host, port = url.hostname, str(url.port or 80)
            origin = f"{method} {url.path or '/'}{'?' + url.query if url.query else ''} {version}".encode()
        if not allowed(host, self.allow_hosts):
            message = (f"network access to {host} refused by the sandbox: it is not in [sandbox] allow_hosts "
                       f"({', '.join(self.allow_hosts)})")
            with self._lock:
                self._denials.setdefault(call, []).append(message)
            return _reply(client, 403, message)
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
        except (OSError, ValueError) as exc:
            return _reply(client, 502, f"flotilla sandbox proxy: cannot reach {host}:{port} ({exc})")
        with upstream:
            upstream.settimeout(None)
            if origin is None:
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                headers = [h for h in rest.split(b"\r\n") if h and not h.lower().startswith(b"proxy-")]
                upstream.sendall(b"\r\n".join([origin, *headers]) + b"\r\n\r\n")
            back = threading.Thread(target=_pump, args=(upstream.recv, client), daemon=True)
            back.start()
            _pump(rfile.read1, upstream)  # type: ignore[attr-defined]
            back.join()


def _pump(read, dst):  # type: ignore[no-untyped-def] - its source also runs in the bridge, as it is
    """Copies what ``read(n)`` gives to the socket ``dst`` until end of file, then half-closes ``dst``."""
    try:
        while True:
            data = read(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


BRIDGE = "import os, socket, sys, threading\n" + inspect.getsource(_pump) + r"""
path, call, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", %d))
server.listen(64)
def serve(client):
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect(path)
        upstream.sendall(("FLOTILLA-CALL " + call + "\n").encode())
        back = threading.Thread(target=_pump, args=(upstream.recv, client), daemon=True)
        back.start()
        _pump(client.recv, upstream)
        back.join()
    finally:
        client.close()
        upstream.close()
def accept():
    while True:
        client, _ = server.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
code = os.waitstatus_to_exitcode(os.waitpid(os.posix_spawnp(argv[0], argv, os.environ), 0)[1])
sys.exit(code if code >= 0 else 128 - code)
""" % PORT
"""The program the sandbox runs around a command when ``allow_hosts`` is set: a listener on
``127.0.0.1:PORT`` forwarding to the proxy's socket, then the command; it exits with the command's code.
It runs on the system Python with ``-I -S``, where flotilla itself may not be importable."""


def _reply(client: socket.socket, status: int, message: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = (message + "\n").encode()
    client.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                   f"Connection: close\r\n\r\n".encode() + body)


_proxies: dict[tuple[str, ...], HostProxy] = {}
_proxies_lock = threading.Lock()


def proxy_for(allow_hosts: Sequence[str]) -> HostProxy:
    """The one proxy of this process for these hosts, started on first use."""
    key = tuple(sorted(allow_hosts))
    with _proxies_lock:
        if key not in _proxies:
            _proxies[key] = HostProxy(key)
        return _proxies[key]

"""A read deadline for slow clients, in both HTTP servers the service runs under.

Why: a client that sends its request a byte at a time (slowloris) holds a
server thread for as long as it likes; a few hundred of them stop every
delivery. Each request must be read within a deadline, counted from when a
thread takes the connection, not per ``recv`` (a byte every few seconds would
reset a per-read timeout forever).

* ``minbump serve``: :func:`make_server` (werkzeug's threaded server) with
  ``MINBUMP_READ_TIMEOUT`` seconds per request.
* The Procfile's gunicorn: ``--worker-class bot.service.serving.ThreadWorker``,
  gunicorn's gthread worker whose connections read under ``--timeout`` seconds
  per request (plain HTTP: TLS ends at the proxy in front).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker as GThreadWorker
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.serving import make_server as _werkzeug_server


class DeadlineSocket(socket.socket):
    """A socket whose reads fail with TimeoutError once ``read_timeout`` seconds have passed since
    :meth:`start` (called per request); writes are untouched."""

    read_timeout: float = 30.0
    _deadline: float | None = None
    _own_timeout: float | None = None

    @classmethod
    def adopt(cls, sock: socket.socket, read_timeout: float) -> DeadlineSocket:
        """Take over ``sock``'s file descriptor (``sock`` is detached, the new object owns it)."""
        timeout = sock.gettimeout()
        new = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        new.read_timeout = read_timeout
        new.settimeout(timeout)
        return new

    def start(self) -> None:
        self._deadline = time.monotonic() + self.read_timeout

    def stop(self) -> None:
        self._deadline = None

    def settimeout(self, value: float | None) -> None:
        self._own_timeout = value
        super().settimeout(value)

    def setblocking(self, flag: bool) -> None:
        self._own_timeout = None if flag else 0.0
        super().setblocking(flag)

    def _bound(self) -> None:
        if self._deadline is None or self._own_timeout == 0.0:
            return
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"request not read within {self.read_timeout:g} s")
        own = self._own_timeout
        super().settimeout(remaining if own is None else min(own, remaining))

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._bound()
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._bound()
        return super().recv_into(buffer, nbytes, flags)


class _DeadlineHandler(WSGIRequestHandler):
    """werkzeug's request handler reading each request under the socket's deadline."""

    read_timeout = 30.0

    def setup(self) -> None:
        self.request = self.connection = DeadlineSocket.adopt(self.request, self.read_timeout)
        super().setup()

    def handle_one_request(self) -> None:
        self.connection.start()  # idle keep-alive time counts too: a silent connection is closed
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True
        finally:
            self.connection.stop()

    def finish(self) -> None:
        super().finish()
        # The server shuts down and closes the socket it accepted, which this handler detached.
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.connection.close()


def make_server(host: str, port: int, app: Any, read_timeout: float) -> BaseWSGIServer:
    """werkzeug's threaded server for ``app`` whose requests must arrive within ``read_timeout`` s."""
    handler = type("DeadlineRequestHandler", (_DeadlineHandler,), {"read_timeout": read_timeout})
    return _werkzeug_server(host, port, app, threaded=True, request_handler=handler)


class _GunicornSocket(DeadlineSocket):
    """gthread hands a connection to a thread with ``setblocking(True)`` and gives it back to its
    poller with ``setblocking(False)``: the deadline follows those turns."""

    def setblocking(self, flag: bool) -> None:
        super().setblocking(flag)
        if flag:
            self.start()
        else:
            self.stop()


class ThreadWorker(GThreadWorker):
    """gunicorn's gthread worker; each request is read within ``--timeout`` seconds."""

    def enqueue_req(self, conn: Any) -> None:
        if not isinstance(conn.sock, _GunicornSocket):
            conn.sock = _GunicornSocket.adopt(conn.sock, float(self.cfg.timeout))
        super().enqueue_req(conn)

"""The HTTP/TLS server: a thread per connection, keep-alive, bodies read, faults and latency applied.

``Server`` accepts connections (a TLS handshake runs in the connection's own thread); ``Handler``
reads each request, records it in ``Traffic``, asks ``Faults`` whether to answer normally, gets
the answer from ``Routes``, waits the latency (holding no lock) and writes it. A fault scripted
with ``after_acting`` lets ``Routes`` handle the request first, then fails, delays or drops the
answer.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from airflow_provider_cronofy.testing.emulator.answers import Response, error, internal_error
from airflow_provider_cronofy.testing.emulator.faults import Faults
from airflow_provider_cronofy.testing.emulator.records import Record
from airflow_provider_cronofy.testing.emulator.request_log import carried_ids
from airflow_provider_cronofy.testing.emulator.routes import Routes
from airflow_provider_cronofy.testing.emulator.traffic import Traffic

# Bodies are test payloads of a few hundred bytes; the cap only stops a runaway client.
MAX_BODY_BYTES = 1 << 20
# Seconds a new TLS connection gets to finish its handshake (in its own thread).
HANDSHAKE_TIMEOUT = 10.0


@dataclass
class Backend:
    """What the handler threads use: the emulator's parts, as they are while it runs."""

    traffic: Traffic
    faults: Faults
    routes: Routes
    draw_latency: Callable[[], float]
    stopping: threading.Event
    verbose: Callable[[], bool]


class BodyError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class Server(ThreadingHTTPServer):
    """The emulator's HTTP (or, with ``tls_context``, HTTPS) server: a thread per connection."""

    daemon_threads = True
    # A burst of clients connecting at once (a concurrent engine's pool) must not overflow the
    # listen backlog (socketserver's default is 5); the kernel caps it at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], backend: Backend, tls_context: ssl.SSLContext | None
    ) -> None:
        self.backend = backend
        self.tls_context = tls_context
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up (a timeout, a dropped read of a huge body) resets its connection
        # while the answer is being written: expected under fault injection, not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall without network.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread (ThreadingMixIn), so the TLS handshake happens there
        # and a slow or failing one never holds up the accept loop.
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT)
        # wrap_socket takes over the file descriptor: from here on close the TLS socket, not
        # `request` (which the caller still shuts down, harmlessly).
        tls = self.tls_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            self.backend.traffic.handshake_started(tls)
            try:
                tls.do_handshake()
            except (OSError, ValueError) as exc:  # ssl.SSLError, a reset, a timeout, or stop()
                self.backend.traffic.handshake_failed()
                if self.backend.verbose():
                    print(f"TLS handshake failed: {exc!r}", file=sys.stderr)
                return
            super().finish_request(tls, client_address)
        finally:
            self.backend.traffic.connection_closed(tls)
            self.shutdown_request(tls)


class Handler(BaseHTTPRequestHandler):
    """One connection: reads requests, applies faults and latency, writes the routes' answers."""

    # HTTP/1.1 so that clients can keep connections alive; every answer carries Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "CronofyEmulator/0.1"
    # Headers and body leave in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    backend: Backend
    connection_id: int
    _carried = ""  # what --verbose adds to the access-log line of the request being answered

    def setup(self) -> None:
        super().setup()
        self.backend = cast(Server, self.server).backend
        self.connection_id = self.backend.traffic.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.backend.traffic.connection_closed(self.connection)

    def version_string(self) -> str:
        # The default appends the Python version, which a Cronofy stand-in has no reason to show.
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.backend.verbose():
            super().log_message(format, *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The access-log line, plus the scheduling key or event ids the request carried.
        if isinstance(code, HTTPStatus):
            code = code.value
        self.log_message('"%s" %s %s%s', self.requestline, str(code), str(size), self._carried)
        self._carried = ""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        self._carried = ""
        traffic = self.backend.traffic
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = self._read_body()
        except BodyError as exc:
            # The rest of the stream cannot be trusted to start a new request.
            self.close_connection = True
            record = traffic.begin(self.command, self.path, headers, b"", self.connection_id)
            try:
                self._respond(record, error(exc.status, "body", "errors.invalid", exc.description))
            finally:
                traffic.request_done(record)
            return
        record = traffic.begin(self.command, self.path, headers, body, self.connection_id)
        try:
            self._serve(record, headers, body)
        finally:
            traffic.request_done(record)

    def _serve(self, record: Record, headers: dict[str, str], body: bytes) -> None:
        backend = self.backend
        decision = backend.faults.decide(self.command, self.path)
        if not decision.after_acting:
            if decision.kind == "drop":
                self._wait_latency()
                self.close_connection = True
                return
            if decision.kind == "fail" and decision.response is not None:
                self._respond(record, decision.response)
                return
            if decision.kind == "delay" and backend.stopping.wait(decision.seconds):
                self.close_connection = True
                return
        try:
            response = backend.routes.answer(self.command, self.path, headers, body)
        except Exception:
            # A bug here must not look like a dropped connection to the client under test.
            traceback.print_exc(file=sys.stderr)
            response = internal_error()
        backend.traffic.handled(record, response)
        if decision.after_acting:
            # Cronofy has acted; the fault decides what, if anything, the client learns of it.
            if decision.kind == "drop":
                self._wait_latency()
                self.close_connection = True
                return
            if decision.kind == "fail" and decision.response is not None:
                response = decision.response
            elif decision.kind == "delay" and backend.stopping.wait(decision.seconds):
                self.close_connection = True
                return
        self._respond(record, response)

    def _wait_latency(self) -> bool:
        """Sleep the emulator's latency (no lock held); False when a draw failed or stop() cut it short."""
        try:
            seconds = self.backend.draw_latency()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return False
        if seconds and self.backend.stopping.wait(seconds):
            self.close_connection = True
            return False
        return True

    def _respond(self, record: Record, response: Response) -> None:
        if not self._wait_latency():
            if self.backend.stopping.is_set():  # no answer at all
                return
            response = internal_error()
        # Record the status before the client can see the answer and inspect the emulator.
        self.backend.traffic.finish(record, response)
        self._carried = carried_ids(record.json) if self.backend.verbose() else ""
        self._send(response)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise BodyError(400, "invalid Content-Length") from None
        if length < 0:
            raise BodyError(400, "invalid Content-Length")
        if length > MAX_BODY_BYTES:
            raise BodyError(413, "body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BodyError(400, "invalid chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are ignored
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise BodyError(413, "body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        if response.body and response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

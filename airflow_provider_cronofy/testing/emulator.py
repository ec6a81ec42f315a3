"""A local emulator of the Cronofy API endpoints this provider talks to.

This is Cronofy's side of the contract, written independently of the client: it imports only the
standard library so that a bug shared by client and server cannot make a test pass.

Choices where Cronofy's behaviour is unconfirmed (see the provider README):

* ``DELETE /v1/meeting_agents`` for a key never scheduled or already cancelled answers
  ``unknown_scheduling_key_status``: 202 (default, empty body) or 404 with
  ``{"errors": {"scheduling_key": [{"key": "errors.not_found", ...}]}}``.
* An upsert of an existing event accepts a partial body (``event_id`` plus the fields to change).
* A 429 from the rate limiter carries no ``Retry-After``.
* A non-empty request body whose ``Content-Type`` is not ``application/json`` gets 415.
* ``POST /v1/batch`` (see :meth:`CronofyEmulator._batch`): an entry that is not an event upsert or
  delete answers 422 on ``relative_url``; an entry's injected 429/5xx is ``{"status": 429, "data":
  {"errors": ...}}`` like any other entry; ``batch_rate_cost`` decides whether a batch counts as
  one request or one per entry against the rate limits.
* ``latency`` is added after Cronofy has handled the request (state and rate limiter see it on
  arrival) and before the answer leaves.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hmac
import http
import json
import math
import random
import secrets
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

Latency = float | Callable[[], float]
"""Seconds added to every answer: a fixed number, or a zero-argument callable drawing one per request."""

BATCH_MAX_ENTRIES = 50
"""Most requests one ``POST /v1/batch`` may carry, as Cronofy documents."""

BATCH_RATE_COSTS = ("request", "entries")

DEFAULT_SCOPES: tuple[str, ...] = ("read_events", "create_event", "delete_event")
"""Scopes given to access and refresh tokens registered without explicit scopes."""

DEFAULT_ACCOUNT_ID = "acc_emulator"
"""Account that owns tokens registered without an explicit account."""

_JSON = "application/json; charset=utf-8"
# Bodies are test payloads of a few hundred bytes; the cap only stops a runaway client.
_MAX_BODY_BYTES = 1 << 20
_REQUIRED = [{"key": "errors.required", "description": "required"}]
# Seconds a new TLS connection gets to finish its handshake (in its own thread).
_HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class RecordedBatchEntry:
    """One entry of a ``POST /v1/batch`` as the emulator handled it.

    ``method`` and ``relative_url`` as sent, ``data`` the entry's body (``None`` when absent),
    ``status`` the entry's answer in the 207 (an injected entry fault included).
    """

    method: str
    relative_url: str
    data: object | None
    status: int


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the emulator received, as received.

    ``path`` is the raw request target (percent-encoding and query string kept), ``headers`` has
    lower-cased names, ``json`` is the parsed body or ``None`` when the body is empty or not JSON.
    ``status`` is the status answered, or ``None`` when the connection was dropped (or the request
    is still being answered). ``connection_id`` numbers the accepted TCP connections from 1, so two
    requests with the same id travelled on one keep-alive connection. ``time`` is
    ``time.monotonic()`` at arrival. ``batch_entries`` holds, for a ``POST /v1/batch`` answered
    207, every entry as handled, in order (empty for any other request).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: object | None
    status: int | None
    connection_id: int
    time: float
    batch_entries: tuple[RecordedBatchEntry, ...] = ()


@dataclass
class _Record:
    # Mutable twin of RecordedRequest: the slot is taken at arrival (to keep arrival order) and the
    # status filled in once the answer is known.
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: object | None
    connection_id: int
    time: float
    status: int | None = None
    batch_entries: tuple[RecordedBatchEntry, ...] = ()

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            method=self.method,
            path=self.path,
            headers=dict(self.headers),
            body=self.body,
            json=self.json,
            status=self.status,
            connection_id=self.connection_id,
            time=self.time,
            batch_entries=self.batch_entries,
        )


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    batch_entries: tuple[RecordedBatchEntry, ...] = ()


@dataclass
class _AccessToken:
    scopes: tuple[str, ...]
    account_id: str
    expires_at: float | None = None
    expired: bool = False

    def is_valid(self, now: float) -> bool:
        return not self.expired and (self.expires_at is None or now < self.expires_at)


@dataclass
class _RefreshToken:
    scopes: tuple[str, ...]
    account_id: str


@dataclass
class _ScriptedFault:
    kind: str  # "fail", "delay" or "drop"
    remaining: int
    method: str | None
    path: str | None
    status: int = 503
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = _JSON
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or _path_matches(self.path, path)


@dataclass
class _RandomFaults:
    rng: random.Random
    p_503: float
    p_429: float
    p_429_retry_after: float
    retry_after_seconds: int
    p_drop: float
    p_delay: float
    delay_seconds: float
    paths: tuple[str, ...] | None
    # Batch entries draw from a stream of their own, so that turning entry faults on does not
    # change which requests the request-level faults hit.
    entry_rng: random.Random
    p_entry_503: float
    p_entry_429: float


@dataclass
class _Decision:
    kind: str | None = None  # None (answer normally), "fail", "delay" or "drop"
    response: _Response | None = None
    seconds: float = 0.0


class _Reject(Exception):
    """Raised inside a route to answer with ``response`` straight away."""

    def __init__(self, response: _Response) -> None:
        super().__init__(response.status)
        self.response = response


def _path_matches(pattern: str, path: str) -> bool:
    # Filters name the path without its query string; glob patterns let one filter cover
    # every calendar ("/v1/calendars/*/events").
    bare = path.partition("?")[0]
    return fnmatch.fnmatchcase(bare, pattern) or fnmatch.fnmatchcase(urllib.parse.unquote(bare), pattern)


def _json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode(), _JSON, dict(headers or {}))


def _errors(status: int, errors: dict[str, list[dict[str, str]]]) -> _Response:
    return _json_response(status, {"errors": errors})


def _error(status: int, field_name: str, key: str, description: str) -> _Response:
    return _errors(status, {field_name: [{"key": key, "description": description}]})


def _invalid(description: str) -> list[dict[str, str]]:
    return [{"key": "errors.invalid", "description": description}]


def _internal_error() -> _Response:
    return _error(500, "base", "errors.internal", "emulator error")


def _default_error_body(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    key = "errors." + phrase.lower().replace(" ", "_").replace("-", "_")
    return json.dumps({"errors": {"base": [{"key": key, "description": phrase}]}}).encode()


def _parse_json_lenient(body: bytes) -> object | None:
    if not body.strip():
        return None
    try:
        return cast(object, json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return None


def _is_iso8601_time(value: str) -> bool:
    # Python 3.10's fromisoformat does not know "Z".
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return "T" in text.upper() and parsed.tzinfo is not None


def _require_string(data: dict[str, Any], name: str, errors: dict[str, list[dict[str, str]]]) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        errors[name] = _REQUIRED
        return None
    if not isinstance(value, str):
        errors[name] = _invalid("must be a string")
        return None
    return value


class CronofyEmulator:
    """A Cronofy API server on the loopback interface, for tests and local demos.

    It answers the calls the provider makes (cancel / schedule a Meeting Agent, upsert / delete an
    event, alone or in a ``POST /v1/batch``, userinfo, refresh an access token), checks credentials and scopes like Cronofy does,
    rate-limits like Cronofy's default application limits, and can be scripted to fail, stall or
    drop connections. Every request is recorded for inspection.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with CronofyEmulator() as cronofy:
            cronofy.schedule_agent("key-1")
            ...  # point the client at cronofy.url with cronofy.api_key
            assert cronofy.scheduled_agents["key-1"]["status"] == "cancelled"

    State set-up and inspection methods are thread-safe and never go through HTTP.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "emulator-api-key",
        client_id: str = "emulator-client-id",
        rate_limit_per_second: int | None = 50,
        rate_limit_per_minute: int | None = 500,
        unknown_scheduling_key_status: int = 202,
        access_token_lifetime: int = 3600,
        verbose: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        latency: Latency = 0.0,
        batch_rate_cost: str = "request",
    ) -> None:
        """Configure the emulator; nothing listens until :meth:`start`.

        ``api_key`` is the application's client secret (the Bearer credential of application
        endpoints and the ``client_secret`` of the token endpoint). A rate limit of ``None`` or 0
        is off. ``unknown_scheduling_key_status`` (202 or 404) is what cancelling an unknown or
        already-cancelled scheduling key answers. ``access_token_lifetime`` is the ``expires_in``
        of issued tokens, and they do stop working after it.

        ``ssl_context``, a server-side context with a certificate loaded (e.g.
        ``ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)`` then ``load_cert_chain``), makes the emulator
        serve HTTPS: :attr:`url` starts with ``https://``. Each connection's handshake runs in that
        connection's own thread; a connection counts in :attr:`connections_opened` once its
        handshake is done, and a failed one in :attr:`tls_handshake_failures` instead.

        ``latency`` (see :attr:`latency`) is added to every answer. ``batch_rate_cost`` is how a
        ``POST /v1/batch`` counts against the rate limits: ``"request"`` (one, the default) or
        ``"entries"`` (one per entry; a batch that does not fit answers 429 as a whole).
        """
        if unknown_scheduling_key_status not in (202, 404):
            raise ValueError("unknown_scheduling_key_status must be 202 or 404")
        for name, limit in (("per_second", rate_limit_per_second), ("per_minute", rate_limit_per_minute)):
            if limit is not None and limit < 0:
                raise ValueError(f"rate_limit_{name} must be >= 0 or None")
        if access_token_lifetime < 0:
            raise ValueError("access_token_lifetime must be >= 0")
        _check_batch_rate_cost(batch_rate_cost)
        _check_latency(latency)
        if ssl_context is not None:
            if not isinstance(ssl_context, ssl.SSLContext):
                raise TypeError("ssl_context must be an ssl.SSLContext")
            if ssl_context.protocol == ssl.PROTOCOL_TLS_CLIENT or ssl_context.check_hostname:
                raise ValueError(
                    "ssl_context must be a server-side context, e.g. ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
                )
        self.host = host
        self.port = port
        self.api_key = api_key
        self.client_id = client_id
        self.rate_limit_per_second = rate_limit_per_second
        self.rate_limit_per_minute = rate_limit_per_minute
        self.unknown_scheduling_key_status = unknown_scheduling_key_status
        self.access_token_lifetime = access_token_lifetime
        self.verbose = verbose
        self.ssl_context = ssl_context
        self.rotate_refresh_tokens = False
        """When True, every refresh grant returns a new refresh token and invalidates the old one."""
        self._latency: Latency = latency
        self._batch_rate_cost = batch_rate_cost

        # One lock around all state: handler threads and the test thread both touch it.
        self._lock = threading.Lock()
        self._lifecycle_lock = threading.Lock()
        self._agents: dict[str, dict[str, Any]] = {}
        self._calendars: dict[str, str] = {}  # calendar id -> token whose account owns it
        self._events: dict[tuple[str, str], dict[str, Any]] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._dead_refresh_tokens: set[str] = set()
        self._records: list[_Record] = []
        self._connections = 0
        self._handshake_failures = 0
        self._open_sockets: set[socket.socket] = set()
        self._scripted: list[_ScriptedFault] = []
        self._random: _RandomFaults | None = None
        self._fault_counts: dict[str, int] = dict.fromkeys(("503", "429", "drop", "delay", "rate_limited"), 0)
        self._scripted_entries: list[_ScriptedFault] = []
        self._event_writes: dict[tuple[str, str], int] = {}
        self._status_counts: dict[int, int] = {}
        self._requests_received = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._admitted: deque[float] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> CronofyEmulator:
        """Bind the socket and serve in a background thread; return ``self``. No-op when running."""
        with self._lifecycle_lock:
            if self._server is not None:
                return self
            self._stopping = threading.Event()
            server = _Server((self.host, self.port), self, self.ssl_context)
            thread = threading.Thread(
                target=server.serve_forever,
                # A short poll keeps stop() quick, which matters for function-scoped fixtures.
                kwargs={"poll_interval": 0.05},
                name=f"cronofy-emulator-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections, join the thread.

        Idempotent. Scripted delays in progress are cut short.
        """
        with self._lifecycle_lock:
            server, thread = self._server, self._thread
            if server is None:
                return
            self._server = self._thread = None
            self._stopping.set()
            server.shutdown()
            server.server_close()
            with self._lock:
                sockets = list(self._open_sockets)
            # Idle keep-alive connections would otherwise keep their handler threads blocked. The
            # base class's shutdown, so that a TLS socket's reader sees EOF rather than a socket
            # unwrapped under its feet.
            for sock in sockets:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            if thread is not None:
                thread.join(timeout=5)

    def __enter__(self) -> CronofyEmulator:
        """Start the emulator."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the emulator."""
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:54321`` (no trailing slash);
        ``https://`` when it serves TLS."""
        server = self._server
        if server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        host, port = server.server_address[:2]
        host = str(host)
        if ":" in host:
            host = f"[{host}]"
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{host}:{port}"

    def airflow_connection(
        self, *, access_token: str | None = None, refresh_token: str | None = None, **extra: object
    ) -> dict[str, Any]:
        """Return the connection as the dict an ``AIRFLOW_CONN_*`` JSON variable holds.

        ``password`` is the API key. ``access_token`` and ``refresh_token`` go into ``extra`` when
        given (with ``client_id``, which a refresh needs); other keyword arguments are added to
        ``extra`` as they are (e.g. ``timeout=2``).
        """
        extras: dict[str, object] = {}
        if access_token is not None:
            extras["access_token"] = access_token
        if refresh_token is not None:
            extras["refresh_token"] = refresh_token
            extras["client_id"] = self.client_id
        extras.update(extra)
        return {"conn_type": "cronofy", "host": self.url, "password": self.api_key, "extra": extras}

    def airflow_connection_json(self, **kwargs: Any) -> str:
        """Return :meth:`airflow_connection` as JSON, ready for an ``AIRFLOW_CONN_*`` variable."""
        return json.dumps(self.airflow_connection(**kwargs))

    # ----------------------------------------------------------------- run-time settings

    @property
    def latency(self) -> Latency:
        """Seconds added to every answer (faults and errors included): a number, or a callable
        drawing one per request, e.g. ``lambda: random.uniform(0.1, 0.2)``. Settable at any time;
        requests already waiting keep the latency they drew.

        Cronofy sees the request at once (state changes, rate limiter); the answer leaves the
        latency later, and the wait holds no lock, so concurrent requests overlap. A draw that is
        not a finite number >= 0 makes that request answer 500 (with a traceback on stderr).
        """
        return self._latency

    @latency.setter
    def latency(self, value: Latency) -> None:
        _check_latency(value)
        self._latency = value

    @property
    def batch_rate_cost(self) -> str:
        """How a ``POST /v1/batch`` counts against the rate limits: ``"request"`` (one) or
        ``"entries"`` (one per entry). Settable at any time."""
        return self._batch_rate_cost

    @batch_rate_cost.setter
    def batch_rate_cost(self, value: str) -> None:
        _check_batch_rate_cost(value)
        self._batch_rate_cost = value

    # ----------------------------------------------------------------- state set-up

    def schedule_agent(
        self,
        scheduling_key: str,
        *,
        join_url: str = "https://meet.example.com/abc",
        join_time: str = "2030-01-01T10:00:00Z",
    ) -> None:
        """Store a scheduled Meeting Agent, as a successful ``POST /v1/meeting_agents`` would."""
        with self._lock:
            self._store_agent(scheduling_key, join_url, join_time)

    def add_calendar(self, calendar_id: str, *, access_token: str) -> None:
        """Create a calendar owned by the account of ``access_token``.

        The owner is resolved when a request arrives, so the token may be registered before or
        after this call. Calendar calls made with a token of another account get 404.
        """
        with self._lock:
            self._calendars[calendar_id] = access_token

    def add_event(
        self, calendar_id: str, event_id: str, *, summary: str = "Meeting", meeting_agent: bool = True
    ) -> None:
        """Create an event (with a Meeting Agent unless ``meeting_agent=False``) in a known calendar."""
        with self._lock:
            if calendar_id not in self._calendars:
                raise ValueError(f"unknown calendar {calendar_id!r}: call add_calendar() first")
            self._events[(calendar_id, event_id)] = {
                "summary": summary,
                "start": "2030-01-01T10:00:00Z",
                "end": "2030-01-01T11:00:00Z",
                "meeting_agent": "cronofy" if meeting_agent else None,
                "deleted": False,
            }

    def add_access_token(
        self,
        token: str,
        *,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        account_id: str = DEFAULT_ACCOUNT_ID,
        expired: bool = False,
    ) -> None:
        """Register an access token (which does not expire by itself) for ``account_id``."""
        with self._lock:
            self._access_tokens[token] = _AccessToken(tuple(scopes), account_id, expired=expired)

    def add_refresh_token(
        self,
        refresh_token: str,
        *,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        """Register a refresh token; a refresh grant with it issues access tokens for ``account_id``."""
        with self._lock:
            self._refresh_tokens[refresh_token] = _RefreshToken(tuple(scopes), account_id)
            self._dead_refresh_tokens.discard(refresh_token)

    def expire_access_token(self, token: str) -> None:
        """Make a registered access token expired: requests with it get 401 from now on."""
        with self._lock:
            if token not in self._access_tokens:
                raise KeyError(f"unknown access token {token!r}")
            self._access_tokens[token].expired = True

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Revoke a refresh token: refresh grants with it get 400 ``invalid_grant``.

        Revoking a token already revoked or rotated away is a no-op; a never-registered one raises
        ``KeyError`` (most likely a typo in the test).
        """
        with self._lock:
            if refresh_token in self._refresh_tokens:
                del self._refresh_tokens[refresh_token]
                self._dead_refresh_tokens.add(refresh_token)
            elif refresh_token not in self._dead_refresh_tokens:
                raise KeyError(f"unknown refresh token {refresh_token!r}")

    # ----------------------------------------------------------------- state inspection

    @property
    def scheduled_agents(self) -> dict[str, dict[str, Any]]:
        """Copy of the agents by scheduling key.

        Each is ``{"status": "scheduled" | "cancelled", "join_url", "join_time", "cancel_requests"}``;
        ``cancel_requests`` counts every cancel request for the key, including repeated ones.
        """
        with self._lock:
            return {key: dict(agent) for key, agent in self._agents.items()}

    @property
    def events(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Copy of the events by ``(calendar_id, event_id)``.

        Each has ``summary``, ``start``, ``end``, ``meeting_agent`` (``"cronofy"`` or ``None``),
        ``deleted`` and any other field an upsert sent.
        """
        with self._lock:
            return {key: dict(event) for key, event in self._events.items()}

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since start (or :meth:`reset_requests`), in arrival order."""
        with self._lock:
            return [record.freeze() for record in self._records]

    @property
    def connections_opened(self) -> int:
        """Number of TCP connections accepted so far (over TLS: whose handshake succeeded)."""
        with self._lock:
            return self._connections

    @property
    def tls_handshake_failures(self) -> int:
        """Number of TLS connections whose handshake failed or timed out (0 over plain HTTP)."""
        with self._lock:
            return self._handshake_failures

    @property
    def fault_counts(self) -> dict[str, int]:
        """Faults injected so far by status (``"503"``, ``"429"``, ...), ``"drop"``, ``"delay"``,
        plus ``"rate_limited"`` for 429s sent by the rate limiter."""
        with self._lock:
            return dict(self._fault_counts)

    @property
    def event_writes(self) -> dict[tuple[str, str], int]:
        """Upserts and deletes answered 202, by ``(calendar_id, event_id)``, whether sent on their
        own or inside a batch: how many times each event was changed (a delete of an unknown
        event id counts too, as Cronofy answers it 202)."""
        with self._lock:
            return dict(self._event_writes)

    @property
    def requests_received(self) -> int:
        """Number of HTTP requests received since start (a batch counts as one), kept across
        :meth:`reset_requests`."""
        with self._lock:
            return self._requests_received

    @property
    def status_counts(self) -> dict[int, int]:
        """Answers sent so far by HTTP status (a batch's 207 counts once; its entries' statuses are
        in :attr:`requests`), e.g. ``status_counts.get(429, 0)``: every 429 sent, rate limiter and
        injected faults together. Kept across :meth:`reset_requests`."""
        with self._lock:
            return dict(self._status_counts)

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (or dropped), at this moment."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests ever in flight at once: how much overlap concurrent clients got."""
        with self._lock:
            return self._max_in_flight

    def reset_requests(self) -> None:
        """Forget the recorded requests (connection and fault counters are kept)."""
        with self._lock:
            self._records = []

    # ----------------------------------------------------------------- fault scripting

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        retry_after: str | int | None = None,
        body: bytes | str | None = None,
        content_type: str = _JSON,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` instead of handling them.

        ``retry_after`` adds a ``Retry-After`` header; ``body`` defaults to a JSON error for the
        status. ``method`` and ``path`` (a glob on the path without query string, matched raw or
        percent-decoded) restrict which requests match. Scripted faults apply in the order they
        were scripted, one per request.
        """
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        raw_body = body.encode() if isinstance(body, str) else body
        fault = _ScriptedFault(
            "fail",
            count,
            method,
            path,
            status=status,
            retry_after=None if retry_after is None else str(retry_after),
            body=raw_body,
            content_type=content_type,
        )
        self._script(fault)

    def delay_next(
        self, count: int, seconds: float, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Sleep ``seconds`` before answering the next ``count`` matching requests normally."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._script(_ScriptedFault("delay", count, method, path, seconds=seconds))

    def drop_next(self, count: int, *, method: str | None = None, path: str | None = None) -> None:
        """Close the connection without any response for the next ``count`` matching requests."""
        self._script(_ScriptedFault("drop", count, method, path))

    def fail_next_batch_entries(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` batch entries (in any ``POST /v1/batch``, in order) with
        ``status`` and a JSON error body, ``{"status": status, "data": {"errors": ...}}``, instead
        of handling them; the batch itself still answers 207."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        if count < 0:
            raise ValueError("count must be >= 0")
        if count:
            with self._lock:
                self._scripted_entries.append(_ScriptedFault("fail", count, None, None, status=status))

    def clear_faults(self) -> None:
        """Cancel scripted faults not yet used (batch-entry ones too) and turn random faults off."""
        with self._lock:
            self._scripted = []
            self._scripted_entries = []
            self._random = None

    def set_random_faults(
        self,
        *,
        seed: int,
        p_503: float = 0,
        p_429: float = 0,
        p_429_retry_after: float = 0.5,
        retry_after_seconds: int = 1,
        p_drop: float = 0,
        p_delay: float = 0,
        delay_seconds: float = 0.0,
        paths: tuple[str, ...] | None = None,
        p_entry_503: float = 0,
        p_entry_429: float = 0,
    ) -> None:
        """Inject faults at random with a ``random.Random(seed)``: the same seed and the same
        sequence of requests give the same faults.

        Each matching request (``paths``: globs as in :meth:`fail_next`; ``None`` = all) is dropped
        with probability ``p_drop``, answered 503 with ``p_503``, 429 with ``p_429`` (a share
        ``p_429_retry_after`` of them with ``Retry-After: retry_after_seconds``) or delayed
        ``delay_seconds`` with ``p_delay``. Each entry of a batch that got through (whatever
        ``paths``) answers 503 with probability ``p_entry_503`` or 429 with ``p_entry_429``, drawn
        from a stream of its own. Scripted faults take precedence. All probabilities 0 turns
        random faults off. Deterministic only for requests sent one at a time.
        """
        probabilities = {"p_503": p_503, "p_429": p_429, "p_drop": p_drop, "p_delay": p_delay}
        entry_probabilities = {"p_entry_503": p_entry_503, "p_entry_429": p_entry_429}
        every = {**probabilities, **entry_probabilities, "p_429_retry_after": p_429_retry_after}
        for name, value in every.items():
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if sum(probabilities.values()) > 1:
            raise ValueError("p_503 + p_429 + p_drop + p_delay must not exceed 1")
        if sum(entry_probabilities.values()) > 1:
            raise ValueError("p_entry_503 + p_entry_429 must not exceed 1")
        with self._lock:
            if not any(probabilities.values()) and not any(entry_probabilities.values()):
                self._random = None
                return
            self._random = _RandomFaults(
                rng=random.Random(seed),
                p_503=p_503,
                p_429=p_429,
                p_429_retry_after=p_429_retry_after,
                retry_after_seconds=retry_after_seconds,
                p_drop=p_drop,
                p_delay=p_delay,
                delay_seconds=delay_seconds,
                paths=tuple(paths) if paths is not None else None,
                entry_rng=random.Random(f"{seed}/batch-entries"),
                p_entry_503=p_entry_503,
                p_entry_429=p_entry_429,
            )

    def _script(self, fault: _ScriptedFault) -> None:
        if fault.remaining < 0:
            raise ValueError("count must be >= 0")
        if fault.remaining:
            with self._lock:
                self._scripted.append(fault)

    # ----------------------------------------------------------------- request plumbing
    # Called from handler threads.

    def _connection_opened(self, sock: socket.socket) -> int:
        with self._lock:
            self._connections += 1
            self._open_sockets.add(sock)
            return self._connections

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    def _handshake_started(self, sock: socket.socket) -> None:
        # Tracked so that stop() cuts a handshake in progress short; not counted yet.
        with self._lock:
            self._open_sockets.add(sock)

    def _handshake_failed(self, exc: Exception) -> None:
        with self._lock:
            self._handshake_failures += 1
        if self.verbose:
            print(f"TLS handshake failed: {exc!r}", file=sys.stderr)

    def _begin(
        self, method: str, path: str, headers: dict[str, str], body: bytes, connection_id: int
    ) -> _Record:
        record = _Record(
            method, path, headers, body, _parse_json_lenient(body), connection_id, time.monotonic()
        )
        with self._lock:
            self._records.append(record)
            self._requests_received += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        return record

    def _finish(self, record: _Record, response: _Response | None) -> None:
        # The request stays in flight until _request_done: its answer is still to be written.
        with self._lock:
            if response is not None:
                record.status = response.status
                record.batch_entries = response.batch_entries
                self._status_counts[response.status] = self._status_counts.get(response.status, 0) + 1

    def _request_done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _draw_latency(self) -> float:
        # Called without the lock: a callable may be slow, or wait on something of the test's.
        latency = self._latency
        seconds = latency() if callable(latency) else latency
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise ValueError(f"latency must be a finite number of seconds >= 0, got {seconds!r}")
        if seconds < 0:
            raise ValueError(f"latency must be a finite number of seconds >= 0, got {seconds!r}")
        return float(seconds)

    def _decide_fault(self, method: str, path: str) -> _Decision:
        with self._lock:
            for fault in self._scripted:
                if fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    self._scripted = [f for f in self._scripted if f.remaining > 0]
                    return self._scripted_decision(fault)
            faults = self._random
            if faults is None or (
                faults.paths is not None and not any(_path_matches(p, path) for p in faults.paths)
            ):
                return _Decision()
            # Two draws per request whatever the outcome, so the sequence depends only on the
            # number of matching requests.
            draw, retry_draw = faults.rng.random(), faults.rng.random()
            threshold = faults.p_drop
            if draw < threshold:
                self._fault_counts["drop"] += 1
                return _Decision("drop")
            threshold += faults.p_503
            if draw < threshold:
                self._fault_counts["503"] += 1
                return _Decision("fail", _Response(503, _default_error_body(503), _JSON))
            threshold += faults.p_429
            if draw < threshold:
                self._fault_counts["429"] += 1
                headers = {}
                if retry_draw < faults.p_429_retry_after:
                    headers["Retry-After"] = str(faults.retry_after_seconds)
                return _Decision("fail", _Response(429, _default_error_body(429), _JSON, headers))
            threshold += faults.p_delay
            if draw < threshold:
                self._fault_counts["delay"] += 1
                return _Decision("delay", seconds=faults.delay_seconds)
            return _Decision()

    def _scripted_decision(self, fault: _ScriptedFault) -> _Decision:
        if fault.kind == "fail":
            key = str(fault.status)
            self._fault_counts[key] = self._fault_counts.get(key, 0) + 1
            headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            body = _default_error_body(fault.status) if fault.body is None else fault.body
            return _Decision("fail", _Response(fault.status, body, fault.content_type, headers))
        self._fault_counts[fault.kind] += 1
        return _Decision(fault.kind, seconds=fault.seconds)

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Response:
        cost = self._rate_cost(method, path, body)
        with self._lock:
            now = time.monotonic()
            if self._rate_limited(now, cost):
                self._fault_counts["rate_limited"] += 1
                return _error(429, "base", "errors.rate_limited", "Too Many Requests")
            self._admitted.extend([now] * cost)
            try:
                return self._route(method, path, headers, body, now)
            except _Reject as reject:
                return reject.response

    def _rate_cost(self, method: str, path: str, body: bytes) -> int:
        # With batch_rate_cost="entries" a well-formed batch weighs its number of entries; anything
        # else (a malformed batch included) weighs one request.
        if self._batch_rate_cost != "entries" or method != "POST" or path.partition("?")[0] != "/v1/batch":
            return 1
        data = _parse_json_lenient(body)
        entries = data.get("batch") if isinstance(data, dict) else None
        if isinstance(entries, list) and 1 <= len(entries) <= BATCH_MAX_ENTRIES:
            return len(entries)
        return 1

    def _rate_limited(self, now: float, cost: int) -> bool:
        per_second = self.rate_limit_per_second or 0
        per_minute = self.rate_limit_per_minute or 0
        window = self._admitted
        horizon = 60.0 if per_minute else 1.0
        while window and window[0] <= now - horizon:
            window.popleft()
        if per_minute and len(window) + cost > per_minute:
            return True
        if per_second:
            recent = 0
            for admitted_at in reversed(window):
                if admitted_at <= now - 1.0:
                    break
                recent += 1
            if recent + cost > per_second:
                return True
        return False

    # ----------------------------------------------------------------- routes (lock held)

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes, now: float) -> _Response:
        bare = path.partition("?")[0]
        if bare == "/v1/meeting_agents" and method == "POST":
            return self._schedule_meeting_agent(headers, body)
        if bare == "/v1/meeting_agents" and method == "DELETE":
            return self._cancel_meeting_agent(headers, body)
        if bare == "/v1/userinfo" and method == "GET":
            return self._userinfo(headers, now)
        if bare == "/oauth/token" and method == "POST":
            return self._token(headers, body, now)
        if bare == "/v1/batch" and method == "POST":
            return self._batch(headers, body, now)
        calendar_id = _events_calendar(bare)
        if calendar_id is not None and method in ("POST", "DELETE"):
            return self._event_call(method, calendar_id, headers, body, now)
        return _error(404, "base", "errors.not_found", "not found")

    def _event_call(
        self, method: str, calendar_id: str, headers: dict[str, str], body: bytes, now: float
    ) -> _Response:
        if method == "POST":
            return self._upsert_event(calendar_id, headers, body, now)
        return self._delete_event(calendar_id, headers, body, now)

    def _batch(self, headers: dict[str, str], body: bytes, now: float) -> _Response:
        # The whole batch needs a valid access token; each entry is then handled as the same
        # request on its own would be (scope, calendar ownership, field errors), in order.
        self._require_access_token(headers, now)
        entries = _batch_entries(self._json_body(headers, body))
        entry_headers = {
            "authorization": headers.get("authorization", ""),
            "content-type": "application/json",
        }
        answers: list[dict[str, object]] = []
        recorded: list[RecordedBatchEntry] = []
        for entry in entries:
            response = self._entry_fault() or self._batch_entry(entry, entry_headers, now)
            answer: dict[str, object] = {"status": response.status}
            if response.body:
                answer["data"] = json.loads(response.body)
            answers.append(answer)
            recorded.append(
                RecordedBatchEntry(entry["method"], entry["relative_url"], entry.get("data"), response.status)
            )
        result = _json_response(207, {"batch": answers})
        result.batch_entries = tuple(recorded)
        return result

    def _batch_entry(self, entry: dict[str, Any], headers: dict[str, str], now: float) -> _Response:
        method = entry["method"].upper()
        calendar_id = _events_calendar(entry["relative_url"].partition("?")[0])
        if calendar_id is None or method not in ("POST", "DELETE"):
            return _error(
                422,
                "relative_url",
                "errors.not_batchable",
                "only POST and DELETE /v1/calendars/{calendar_id}/events can be batched",
            )
        data = entry.get("data")
        body = b"" if data is None else json.dumps(data).encode()
        try:
            return self._event_call(method, calendar_id, headers, body, now)
        except _Reject as reject:
            return reject.response

    def _entry_fault(self) -> _Response | None:
        status: int | None = None
        for fault in self._scripted_entries:
            if fault.remaining > 0:
                fault.remaining -= 1
                status = fault.status
                break
        self._scripted_entries = [f for f in self._scripted_entries if f.remaining > 0]
        faults = self._random
        if status is None and faults is not None and (faults.p_entry_503 or faults.p_entry_429):
            draw = faults.entry_rng.random()
            if draw < faults.p_entry_503:
                status = 503
            elif draw < faults.p_entry_503 + faults.p_entry_429:
                status = 429
        if status is None:
            return None
        key = f"entry_{status}"
        self._fault_counts[key] = self._fault_counts.get(key, 0) + 1
        return _Response(status, _default_error_body(status), _JSON)

    def _bearer(self, headers: dict[str, str]) -> str | None:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        credential = credential.strip()
        return credential if scheme.lower() == "bearer" and credential else None

    @staticmethod
    def _unauthorized(description: str) -> _Reject:
        # The description never contains the credential: clients log error bodies.
        return _Reject(
            _json_response(
                401,
                {"error": "invalid_token", "error_description": description},
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        )

    def _require_api_key(self, headers: dict[str, str]) -> None:
        credential = self._bearer(headers)
        if credential is None:
            raise self._unauthorized("missing Bearer credentials")
        if not hmac.compare_digest(credential.encode(), self.api_key.encode()):
            raise self._unauthorized("API key not recognised")

    def _require_access_token(self, headers: dict[str, str], now: float) -> _AccessToken:
        credential = self._bearer(headers)
        if credential is None:
            raise self._unauthorized("missing Bearer credentials")
        token = self._access_tokens.get(credential)
        if token is None:
            raise self._unauthorized("access token not recognised")
        if not token.is_valid(now):
            raise self._unauthorized("access token expired")
        return token

    @staticmethod
    def _require_scope(token: _AccessToken, scope: str) -> None:
        if scope not in token.scopes:
            raise _Reject(_error(403, "scope", "errors.missing_scope", scope))

    def _require_calendar(self, token: _AccessToken, calendar_id: str) -> None:
        owner_token = self._calendars.get(calendar_id)
        owner = self._access_tokens.get(owner_token) if owner_token is not None else None
        if owner is None or owner.account_id != token.account_id:
            raise _Reject(_error(404, "calendar_id", "errors.not_found", "not found"))

    @staticmethod
    def _json_body(headers: dict[str, str], body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        if not headers.get("content-type", "").lower().startswith("application/json"):
            raise _Reject(
                _error(415, "body", "errors.unsupported_media_type", "Content-Type must be application/json")
            )
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _Reject(_error(422, "body", "errors.invalid_json", "body is not valid JSON")) from None
        if not isinstance(data, dict):
            raise _Reject(_error(422, "body", "errors.invalid_json", "body must be a JSON object"))
        return data

    def _store_agent(self, scheduling_key: str, join_url: str, join_time: str) -> None:
        previous = self._agents.get(scheduling_key, {})
        self._agents[scheduling_key] = {
            "status": "scheduled",
            "join_url": join_url,
            "join_time": join_time,
            "cancel_requests": previous.get("cancel_requests", 0),
        }

    def _schedule_meeting_agent(self, headers: dict[str, str], body: bytes) -> _Response:
        self._require_api_key(headers)
        data = self._json_body(headers, body)
        errors: dict[str, list[dict[str, str]]] = {}
        join_url = _require_string(data, "join_url", errors)
        scheduling_key = data.get("scheduling_key")
        if scheduling_key is not None and (not isinstance(scheduling_key, str) or not scheduling_key):
            errors["scheduling_key"] = _invalid("must be a non-empty string")
            scheduling_key = None
        join_time: str | None = None
        if scheduling_key is not None or data.get("join_time") is not None:
            join_time = _require_string(data, "join_time", errors)
            if join_time is not None and not _is_iso8601_time(join_time):
                errors["join_time"] = _invalid(
                    "must be an ISO 8601 time with a zone, e.g. 2030-01-01T10:00:00Z"
                )
        if errors:
            return _errors(422, errors)
        if scheduling_key is not None and join_url is not None and join_time is not None:
            self._store_agent(scheduling_key, join_url, join_time)
        return _Response(202)

    def _cancel_meeting_agent(self, headers: dict[str, str], body: bytes) -> _Response:
        self._require_api_key(headers)
        data = self._json_body(headers, body)
        errors: dict[str, list[dict[str, str]]] = {}
        scheduling_key = _require_string(data, "scheduling_key", errors)
        if scheduling_key is None:
            return _errors(422, errors)
        agent = self._agents.get(scheduling_key)
        if agent is not None:
            agent["cancel_requests"] += 1
            if agent["status"] == "scheduled":
                agent["status"] = "cancelled"
                return _Response(202)
        if self.unknown_scheduling_key_status == 404:
            return _error(404, "scheduling_key", "errors.not_found", "not found")
        return _Response(202)

    def _upsert_event(self, calendar_id: str, headers: dict[str, str], body: bytes, now: float) -> _Response:
        token = self._require_access_token(headers, now)
        self._require_scope(token, "create_event")
        self._require_calendar(token, calendar_id)
        data = self._json_body(headers, body)
        errors: dict[str, list[dict[str, str]]] = {}
        event_id = _require_string(data, "event_id", errors)
        agent_given = "meeting_agent" in data
        agent_value: str | None = None
        if agent_given:
            setting = data["meeting_agent"]
            profile = setting.get("profile_id") if isinstance(setting, dict) else None
            if profile == "cronofy":
                agent_value = "cronofy"
            elif profile != "none":
                errors["meeting_agent.profile_id"] = _invalid('must be "cronofy" or "none"')
        existing = self._events.get((calendar_id, event_id)) if event_id is not None else None
        if existing is None or existing["deleted"]:
            # A new event needs its required fields; an existing one accepts a partial update.
            for name in ("summary", "start", "end"):
                if data.get(name) in (None, ""):
                    errors[name] = _REQUIRED
        if errors or event_id is None:
            return _errors(422, errors)
        if existing is None or existing["deleted"]:
            existing = {"meeting_agent": None}
            self._events[(calendar_id, event_id)] = existing
        self._count_write(calendar_id, event_id)
        existing["deleted"] = False
        for name, value in data.items():
            if name not in ("event_id", "meeting_agent", "deleted"):
                existing[name] = value
        if agent_given:
            existing["meeting_agent"] = agent_value
        return _Response(202)

    def _delete_event(self, calendar_id: str, headers: dict[str, str], body: bytes, now: float) -> _Response:
        token = self._require_access_token(headers, now)
        self._require_scope(token, "delete_event")
        self._require_calendar(token, calendar_id)
        data = self._json_body(headers, body)
        errors: dict[str, list[dict[str, str]]] = {}
        event_id = _require_string(data, "event_id", errors)
        if event_id is None:
            return _errors(422, errors)
        event = self._events.get((calendar_id, event_id))
        self._count_write(calendar_id, event_id)
        # Unknown ids get 202 too: deleting is idempotent at Cronofy.
        if event is not None:
            event["deleted"] = True
            event["meeting_agent"] = None
        return _Response(202)

    def _count_write(self, calendar_id: str, event_id: str) -> None:
        key = (calendar_id, event_id)
        self._event_writes[key] = self._event_writes.get(key, 0) + 1

    def _userinfo(self, headers: dict[str, str], now: float) -> _Response:
        token = self._require_access_token(headers, now)
        return _json_response(
            200,
            {
                "sub": token.account_id,
                "cronofy.type": "account",
                "cronofy.data": {"authorization": {"scope": " ".join(token.scopes), "status": "active"}},
            },
        )

    def _token(self, headers: dict[str, str], body: bytes, now: float) -> _Response:
        no_store = {"Cache-Control": "no-store"}

        def oauth_error(status: int, error: str, description: str) -> _Response:
            return _json_response(status, {"error": error, "error_description": description}, no_store)

        content_type = headers.get("content-type", "").lower()
        params: dict[str, object]
        if content_type.startswith("application/json"):
            parsed = _parse_json_lenient(body)
            if not isinstance(parsed, dict):
                return oauth_error(400, "invalid_request", "body must be a JSON object")
            params = parsed
        elif content_type.startswith("application/x-www-form-urlencoded") or not body.strip():
            try:
                form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
            except UnicodeDecodeError:
                return oauth_error(400, "invalid_request", "body is not valid form data")
            params = {name: values[0] for name, values in form.items()}
        else:
            return oauth_error(400, "invalid_request", "body must be JSON or form-encoded")

        def param(name: str) -> str:
            value = params.get(name)
            return value if isinstance(value, str) else ""

        if not (
            hmac.compare_digest(param("client_id").encode(), self.client_id.encode())
            and hmac.compare_digest(param("client_secret").encode(), self.api_key.encode())
        ):
            return oauth_error(401, "invalid_client", "client credentials not recognised")
        grant_type = param("grant_type")
        if not grant_type:
            return oauth_error(400, "invalid_request", "grant_type is required")
        if grant_type != "refresh_token":
            return oauth_error(400, "unsupported_grant_type", "only refresh_token is supported")
        refresh_token = param("refresh_token")
        if not refresh_token:
            return oauth_error(400, "invalid_request", "refresh_token is required")
        grant = self._refresh_tokens.get(refresh_token)
        if grant is None:
            return oauth_error(400, "invalid_grant", "refresh token not recognised or revoked")

        access_token = "emu_at_" + _random_token()
        self._access_tokens[access_token] = _AccessToken(
            grant.scopes, grant.account_id, expires_at=now + self.access_token_lifetime
        )
        if self.rotate_refresh_tokens:
            del self._refresh_tokens[refresh_token]
            self._dead_refresh_tokens.add(refresh_token)
            refresh_token = "emu_rt_" + _random_token()
            self._refresh_tokens[refresh_token] = grant
        return _json_response(
            200,
            {
                "token_type": "bearer",
                "access_token": access_token,
                "expires_in": self.access_token_lifetime,
                "refresh_token": refresh_token,
                "scope": " ".join(grant.scopes),
                "account_id": grant.account_id,
            },
            no_store,
        )


def _random_token() -> str:
    return secrets.token_urlsafe(24)


def _events_calendar(bare_path: str) -> str | None:
    """The calendar id of ``/v1/calendars/{calendar_id}/events``, or ``None`` for another path."""
    # Split before decoding: "cal%2Fx" is one segment naming the calendar "cal/x".
    segments = bare_path.split("/")
    if (
        len(segments) == 5
        and segments[:3] == ["", "v1", "calendars"]
        and segments[3]
        and segments[4] == "events"
    ):
        return urllib.parse.unquote(segments[3])
    return None


def _batch_entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a batch body, or raise ``_Reject`` (422) naming what is malformed."""
    entries = data.get("batch")
    errors: dict[str, list[dict[str, str]]] = {}
    if entries is None:
        errors["batch"] = _REQUIRED
    elif not isinstance(entries, list):
        errors["batch"] = _invalid("must be a list of requests")
    elif not 1 <= len(entries) <= BATCH_MAX_ENTRIES:
        errors["batch"] = _invalid(f"must hold 1 to {BATCH_MAX_ENTRIES} requests, got {len(entries)}")
    else:
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                errors[f"batch.{index}"] = _invalid("must be an object with method, relative_url and data")
                continue
            for name in ("method", "relative_url"):
                if not isinstance(entry.get(name), str) or not entry[name]:
                    errors[f"batch.{index}.{name}"] = (
                        _REQUIRED if entry.get(name) in (None, "") else _invalid("must be a string")
                    )
            if "data" in entry and not isinstance(entry["data"], dict):
                errors[f"batch.{index}.data"] = _invalid("must be an object")
    if errors:
        raise _Reject(_errors(422, errors))
    return cast(list[dict[str, Any]], entries)


def _check_latency(value: object) -> None:
    if callable(value):
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"latency must be a finite number of seconds >= 0 or a callable returning one, got {value!r}"
        )


def _check_batch_rate_cost(value: object) -> None:
    if value not in BATCH_RATE_COSTS:
        raise ValueError(
            f"batch_rate_cost must be one of {', '.join(map(repr, BATCH_RATE_COSTS))}, got {value!r}"
        )


class _BodyError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A burst of clients connecting at once (a concurrent engine's pool) must not overflow the
    # listen backlog (socketserver's default is 5); the kernel caps it at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], emulator: CronofyEmulator, tls_context: ssl.SSLContext | None
    ) -> None:
        self.emulator = emulator
        self.tls_context = tls_context
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

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
        request.settimeout(_HANDSHAKE_TIMEOUT)
        # wrap_socket takes over the file descriptor: from here on close the TLS socket, not
        # `request` (which the caller still shuts down, harmlessly).
        tls = self.tls_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            self.emulator._handshake_started(tls)
            try:
                tls.do_handshake()
            except (OSError, ValueError) as exc:  # ssl.SSLError, a reset, a timeout, or stop()
                self.emulator._handshake_failed(exc)
                return
            super().finish_request(tls, client_address)
        finally:
            self.emulator._connection_closed(tls)
            self.shutdown_request(tls)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so that clients can keep connections alive; every answer carries Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "CronofyEmulator/0.1"
    # Headers and body leave in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    emulator: CronofyEmulator
    connection_id: int

    def setup(self) -> None:
        super().setup()
        self.emulator = cast(_Server, self.server).emulator
        self.connection_id = self.emulator._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.emulator._connection_closed(self.connection)

    def version_string(self) -> str:
        # The default appends the Python version, which a Cronofy stand-in has no reason to show.
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.emulator.verbose:
            super().log_message(format, *args)

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
        emulator = self.emulator
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = self._read_body()
        except _BodyError as exc:
            # The rest of the stream cannot be trusted to start a new request.
            self.close_connection = True
            record = emulator._begin(self.command, self.path, headers, b"", self.connection_id)
            try:
                self._respond(record, _error(exc.status, "body", "errors.invalid", exc.description))
            finally:
                emulator._request_done()
            return
        record = emulator._begin(self.command, self.path, headers, body, self.connection_id)
        try:
            self._serve(record, headers, body)
        finally:
            emulator._request_done()

    def _serve(self, record: _Record, headers: dict[str, str], body: bytes) -> None:
        emulator = self.emulator
        decision = emulator._decide_fault(self.command, self.path)
        if decision.kind == "drop":
            self._wait_latency()
            self.close_connection = True
            return
        if decision.kind == "fail" and decision.response is not None:
            self._respond(record, decision.response)
            return
        if decision.kind == "delay" and emulator._stopping.wait(decision.seconds):
            self.close_connection = True
            return
        try:
            response = emulator._answer(self.command, self.path, headers, body)
        except Exception:
            # A bug here must not look like a dropped connection to the client under test.
            traceback.print_exc(file=sys.stderr)
            response = _internal_error()
        self._respond(record, response)

    def _wait_latency(self) -> bool:
        """Sleep the emulator's latency (no lock held); False when a draw failed or stop() cut it short."""
        try:
            seconds = self.emulator._draw_latency()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return False
        if seconds and self.emulator._stopping.wait(seconds):
            self.close_connection = True
            return False
        return True

    def _respond(self, record: _Record, response: _Response) -> None:
        if not self._wait_latency():
            if self.emulator._stopping.is_set():  # no answer at all
                return
            response = _internal_error()
        # Record the status before the client can see the answer and inspect the emulator.
        self.emulator._finish(record, response)
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
            raise _BodyError(400, "invalid Content-Length") from None
        if length < 0:
            raise _BodyError(400, "invalid Content-Length")
        if length > _MAX_BODY_BYTES:
            raise _BodyError(413, "body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(400, "invalid chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are ignored
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY_BYTES:
                raise _BodyError(413, "body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, response: _Response) -> None:
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

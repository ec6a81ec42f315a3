"""``CronofyEmulator``: the public face of the emulator, its settings, lifecycle and helpers.

It owns the parts and wires them together: ``CronofyState`` (Cronofy's data), ``Routes`` (what a
request does), ``Faults`` (what goes wrong on purpose), ``Traffic`` (what came in) and ``Server``
(HTTP/TLS). State helpers and inspection never go through HTTP.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_cronofy.testing.emulator.faults import Faults, FaultScripting
from airflow_provider_cronofy.testing.emulator.records import RecordedRequest
from airflow_provider_cronofy.testing.emulator.routes import Routes
from airflow_provider_cronofy.testing.emulator.server import Backend, Server
from airflow_provider_cronofy.testing.emulator.settings import (
    Latency,
    check_batch_rate_cost,
    check_latency,
    check_repeated_scheduling_key,
    check_settings,
    draw_latency,
)
from airflow_provider_cronofy.testing.emulator.state import DEFAULT_ACCOUNT_ID, DEFAULT_SCOPES, CronofyState
from airflow_provider_cronofy.testing.emulator.traffic import Traffic, TrafficCounter


class CronofyEmulator(FaultScripting):
    """A Cronofy API server on the loopback interface, for tests and local demos.

    It answers the calls the provider makes (cancel / schedule a Meeting Agent, upsert / delete an
    event, alone or in a ``POST /v1/batch``, userinfo, refresh an access token), checks
    credentials and scopes like Cronofy does, rate-limits like Cronofy's default application
    limits, adds latency, and can be scripted to fail, stall or drop connections (before or after
    Cronofy acted on the request). What a repeated scheduling key does is a setting,
    :attr:`repeated_scheduling_key`. Every request is recorded for inspection.

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
        repeated_scheduling_key: str = "replace",
        clock: Callable[[], float] = time.monotonic,
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

        ``repeated_scheduling_key`` (see :attr:`repeated_scheduling_key`) is what scheduling a key
        that has a live agent already does: ``"replace"`` (the default), ``"duplicate"`` or
        ``"refuse"``.

        ``clock`` (monotonic seconds, ``time.monotonic`` by default) is the time the rate
        limits, token lifetimes and :attr:`requests` arrival times count on: a test that moves it
        forward skips a rate-limit window instead of waiting it out.
        """
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
        self.partial_event_updates = True
        """When True (default), an upsert of an existing event accepts a partial body (``event_id``
        and the fields to change, e.g. only ``meeting_agent``); when False, every upsert needs
        ``summary``, ``start`` and ``end`` (422 otherwise). Which one Cronofy does is unconfirmed:
        ``make test-live`` finds out."""
        check_settings(self)
        self._latency: Latency = 0.0
        self._batch_rate_cost = "request"
        self._repeated_scheduling_key = "replace"
        self.latency = latency  # the setters check the values
        self.batch_rate_cost = batch_rate_cost
        self.repeated_scheduling_key = repeated_scheduling_key

        self._state = CronofyState(self)
        self._faults = Faults()
        self._traffic = Traffic(clock)
        self._routes = Routes(self._state, self._faults, clock)
        self._lifecycle_lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> CronofyEmulator:
        """Bind the socket and serve in a background thread; return ``self``. No-op when running."""
        with self._lifecycle_lock:
            if self._server is not None:
                return self
            self._stopping = threading.Event()
            backend = Backend(
                self._traffic,
                self._faults,
                self._routes,
                lambda: draw_latency(self._latency),
                self._stopping,
                lambda: self.verbose,
            )
            server = Server((self.host, self.port), backend, self.ssl_context)
            thread = threading.Thread(
                target=server.serve_forever,
                # A short poll keeps stop() quick, which matters for function-scoped fixtures.
                kwargs={"poll_interval": 0.01},
                name=f"cronofy-emulator-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections, join the thread.

        Idempotent. Scripted delays and latency waits in progress are cut short.
        """
        with self._lifecycle_lock:
            server, thread = self._server, self._thread
            if server is None:
                return
            self._server = self._thread = None
            self._stopping.set()
            server.shutdown()
            server.server_close()
            sockets = self._traffic.open_sockets()
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
        check_latency(value)
        self._latency = value

    @property
    def batch_rate_cost(self) -> str:
        """How a ``POST /v1/batch`` counts against the rate limits: ``"request"`` (one) or
        ``"entries"`` (one per entry). Settable at any time."""
        return self._batch_rate_cost

    @batch_rate_cost.setter
    def batch_rate_cost(self, value: str) -> None:
        check_batch_rate_cost(value)
        self._batch_rate_cost = value

    @property
    def repeated_scheduling_key(self) -> str:
        """What ``POST /v1/meeting_agents`` does when its ``scheduling_key`` has a live (scheduled,
        not cancelled) agent already; Cronofy's real behaviour is unconfirmed, so tests can play
        each:

        * ``"replace"`` (default): the new ``join_url``, ``join_time`` (and attendee,
          subscriptions) replace the live agent's; still one live agent; 202.
        * ``"duplicate"``: a second live agent with the same key; 202. Cancelling the key cancels
          every live agent it has.
        * ``"refuse"``: 422 ``{"errors": {"scheduling_key": [{"key": "errors.already_exists",
          ...}]}}``; nothing changes.

        A key whose agents are all cancelled (or a new one) schedules a new agent in every mode.
        Settable at any time; a value not among the three raises ``ValueError``.
        """
        return self._repeated_scheduling_key

    @repeated_scheduling_key.setter
    def repeated_scheduling_key(self, value: str) -> None:
        check_repeated_scheduling_key(value)
        self._repeated_scheduling_key = value

    # ----------------------------------------------------------------- state set-up

    def schedule_agent(
        self,
        scheduling_key: str,
        *,
        join_url: str = "https://meet.example.com/abc",
        join_time: str = "2030-01-01T10:00:00Z",
    ) -> None:
        """Store a scheduled Meeting Agent, as a ``POST /v1/meeting_agents`` would.

        A key with a live agent already follows :attr:`repeated_scheduling_key`; with
        ``"refuse"`` it raises ``ValueError`` and changes nothing.
        """
        self._state.schedule_agent(scheduling_key, join_url, join_time)

    def add_calendar(self, calendar_id: str, *, access_token: str) -> None:
        """Create a calendar owned by the account of ``access_token``.

        The owner is resolved when a request arrives, so the token may be registered before or
        after this call. Calendar calls made with a token of another account get 404.
        """
        self._state.add_calendar(calendar_id, access_token)

    def add_event(
        self, calendar_id: str, event_id: str, *, summary: str = "Meeting", meeting_agent: bool = True
    ) -> None:
        """Create an event (with a Meeting Agent unless ``meeting_agent=False``) in a known calendar."""
        self._state.add_event(calendar_id, event_id, summary, meeting_agent)

    def add_access_token(
        self,
        token: str,
        *,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        account_id: str = DEFAULT_ACCOUNT_ID,
        expired: bool = False,
    ) -> None:
        """Register an access token (which does not expire by itself) for ``account_id``."""
        self._state.add_access_token(token, scopes, account_id, expired)

    def add_refresh_token(
        self,
        refresh_token: str,
        *,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        """Register a refresh token; a refresh grant with it issues access tokens for ``account_id``."""
        self._state.add_refresh_token(refresh_token, scopes, account_id)

    def expire_access_token(self, token: str) -> None:
        """Make a registered access token expired: requests with it get 401 from now on."""
        self._state.expire_access_token(token)

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Revoke a refresh token: refresh grants with it get 400 ``invalid_grant``.

        Revoking a token already revoked or rotated away is a no-op; a never-registered one raises
        ``KeyError`` (most likely a typo in the test).
        """
        self._state.revoke_refresh_token(refresh_token)

    # ----------------------------------------------------------------- state inspection

    @property
    def scheduled_agents(self) -> dict[str, dict[str, Any]]:
        """Copy of the agents by scheduling key, one entry per key.

        Each is ``{"status": "scheduled" | "cancelled", "join_url", "join_time", "cancel_requests"}``:
        ``"scheduled"`` when the key has at least one live agent (the ``join_url`` and
        ``join_time`` shown are its newest live agent's, else its newest agent's);
        ``cancel_requests`` counts every cancel request for the key, including repeated ones. How
        many live agents a key has: :meth:`live_agents`; each of them: :attr:`agents_by_key`.
        """
        return self._state.snapshot_agents()

    def live_agents(self, scheduling_key: str) -> int:
        """How many live (scheduled, not cancelled) agents ``scheduling_key`` has now: 0 for a key
        never scheduled. More than 1 only with ``repeated_scheduling_key="duplicate"``."""
        return self._state.live_agent_counts().get(scheduling_key, 0)

    @property
    def live_agent_counts(self) -> dict[str, int]:
        """Live agents per scheduling key, for every key ever scheduled (0 when all are cancelled),
        e.g. ``assert max(cronofy.live_agent_counts.values()) <= 1``."""
        return self._state.live_agent_counts()

    @property
    def agents_by_key(self) -> dict[str, list[dict[str, Any]]]:
        """Copy of every agent each scheduling key had, oldest first.

        Each is ``{"sub", "status": "scheduled" | "cancelled", "join_url", "join_time",
        "on_behalf_of_attendee", "subscriptions", "replaced"}``; ``replaced`` counts the repeated
        POSTs that rewrote it (``repeated_scheduling_key="replace"``), the last two ``None`` when
        not sent.
        """
        return self._state.snapshot_agents_by_key()

    @property
    def sent_agents(self) -> list[dict[str, Any]]:
        """Copy of the agents sent at once (a POST without ``scheduling_key``), oldest first, shaped
        like :attr:`agents_by_key`'s (``join_time`` ``None``)."""
        return self._state.snapshot_sent_agents()

    @property
    def events(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Copy of the events by ``(calendar_id, event_id)``.

        Each has ``summary``, ``start``, ``end``, ``meeting_agent`` (``"cronofy"`` or ``None``),
        ``deleted`` and any other field an upsert sent.
        """
        return self._state.snapshot_events()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since start (or :meth:`reset_requests`), in arrival order."""
        return self._traffic.records()

    # Read-only counters, kept across reset_requests().
    connections_opened = TrafficCounter(
        "Number of TCP connections accepted so far (over TLS: whose handshake succeeded)."
    )
    tls_handshake_failures = TrafficCounter(
        "Number of TLS connections whose handshake failed or timed out (0 over plain HTTP)."
    )
    requests_received = TrafficCounter(
        "Number of HTTP requests received since start (a batch counts as one), kept across :meth:`reset_requests`."
    )
    in_flight = TrafficCounter("Requests received and not yet answered (or dropped), at this moment.")
    max_in_flight = TrafficCounter(
        "The most requests ever in flight at once: how much overlap concurrent clients got."
    )

    @property
    def event_writes(self) -> dict[tuple[str, str], int]:
        """Upserts and deletes answered 202, by ``(calendar_id, event_id)``, whether sent on their
        own or inside a batch: how many times each event was changed (a delete of an unknown
        event id counts too, as Cronofy answers it 202)."""
        return self._state.snapshot_event_writes()

    @property
    def status_counts(self) -> dict[int, int]:
        """Answers sent so far by HTTP status (a batch's 207 counts once; its entries' statuses are
        in :attr:`requests`), e.g. ``status_counts.get(429, 0)``: every 429 sent, rate limiter and
        injected faults together. Kept across :meth:`reset_requests`."""
        return self._traffic.status_counts()

    def reset_requests(self) -> None:
        """Forget the recorded requests (connection and fault counters are kept)."""
        self._traffic.reset_records()

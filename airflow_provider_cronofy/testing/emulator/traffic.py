"""What came in and how it went: recorded requests, connections, and the counters benchmarks read
(requests received, answers by status, requests in flight). Thread-safe, with a lock of its own.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol, overload

from airflow_provider_cronofy.testing.emulator.answers import Response, parse_json_lenient
from airflow_provider_cronofy.testing.emulator.records import Record, RecordedRequest


class Traffic:
    """Records and counters, updated by the server's handler threads; ``clock`` times arrivals."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._connections = 0
        self._handshake_failures = 0
        self._open_sockets: set[socket.socket] = set()
        self._requests_received = 0
        self._status_counts: dict[int, int] = {}
        self._in_flight = 0
        self._max_in_flight = 0

    # Connections.

    def connection_opened(self, sock: socket.socket) -> int:
        """Count a connection and return its id (from 1)."""
        with self._lock:
            self._connections += 1
            self._open_sockets.add(sock)
            return self._connections

    def connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    def handshake_started(self, sock: socket.socket) -> None:
        # Tracked so that stop() cuts a handshake in progress short; not counted yet.
        with self._lock:
            self._open_sockets.add(sock)

    def handshake_failed(self) -> None:
        with self._lock:
            self._handshake_failures += 1

    def open_sockets(self) -> list[socket.socket]:
        with self._lock:
            return list(self._open_sockets)

    # Requests.

    def begin(
        self, method: str, path: str, headers: dict[str, str], body: bytes, connection_id: int
    ) -> Record:
        """Record a request on arrival; it is in flight until :meth:`finish` or :meth:`request_done`."""
        record = Record(method, path, headers, body, parse_json_lenient(body), connection_id, self._clock())
        with self._lock:
            self._records.append(record)
            self._requests_received += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        return record

    def handled(self, record: Record, response: Response) -> None:
        """Record what handling the request answered (before a fault may replace or drop it)."""
        with self._lock:
            record.handled_status = response.status
            record.batch_entries = response.batch_entries

    def finish(self, record: Record, response: Response) -> None:
        """Record the answer about to be written; the request is no longer in flight."""
        # Before the client can read the answer, so a client that inspects the emulator right
        # after its last answer sees the counters settled.
        with self._lock:
            record.status = response.status
            if response.batch_entries:
                record.batch_entries = response.batch_entries
            self._status_counts[response.status] = self._status_counts.get(response.status, 0) + 1
            self._settle(record)

    def request_done(self, record: Record) -> None:
        """The request ended (answered, dropped or cut short by ``stop()``)."""
        with self._lock:
            self._settle(record)

    def _settle(self, record: Record) -> None:
        if not record.settled:
            record.settled = True
            self._in_flight -= 1

    def records(self) -> list[RecordedRequest]:
        with self._lock:
            return [record.freeze() for record in self._records]

    def reset_records(self) -> None:
        with self._lock:
            self._records = []

    def counters(self) -> dict[str, int]:
        """``connections_opened``, ``tls_handshake_failures``, ``requests_received``,
        ``in_flight`` and ``max_in_flight``, read together."""
        with self._lock:
            return {
                "connections_opened": self._connections,
                "tls_handshake_failures": self._handshake_failures,
                "requests_received": self._requests_received,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
            }

    def status_counts(self) -> dict[int, int]:
        with self._lock:
            return dict(self._status_counts)


class _HasTraffic(Protocol):
    _traffic: Traffic


class TrafficCounter:
    """A read-only ``int`` attribute of ``CronofyEmulator``: one of :meth:`Traffic.counters`."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, emulator: None, owner: type | None = None) -> TrafficCounter: ...

    @overload
    def __get__(self, emulator: _HasTraffic, owner: type | None = None) -> int: ...

    def __get__(self, emulator: _HasTraffic | None, owner: type | None = None) -> int | TrafficCounter:
        if emulator is None:
            return self
        return emulator._traffic.counters()[self._name]

    def __set__(self, emulator: _HasTraffic, value: object) -> None:
        raise AttributeError(f"{self._name} is read-only")

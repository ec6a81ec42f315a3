"""What the emulator received: one record per HTTP request, and per entry of a batch.

``RecordedRequest`` and ``RecordedBatchEntry`` are public (``CronofyEmulator.requests``);
``Record`` is their mutable twin, filled in while the request is answered.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


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
    requests with the same id travelled on one keep-alive connection. ``time`` is the emulator's
    ``clock`` (``time.monotonic()`` unless given) at arrival. ``batch_entries`` holds, for a
    ``POST /v1/batch`` handled (answered 207, or its answer lost to a fault scripted with
    ``after_acting=True``), every entry as handled, in order (empty for any other request).
    ``handled_status`` is the status Cronofy's handling produced (the rate limiter's 429
    included): the same as ``status`` for a request answered normally, ``None`` when a fault
    answered or dropped it without handling it, and the lost real answer when a fault scripted
    with ``after_acting=True`` replaced it (``status`` 503, ``handled_status`` 202: the agent was
    scheduled).
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
    handled_status: int | None = None


@dataclass
class Record:
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
    handled_status: int | None = None
    settled: bool = False  # no longer counted in flight

    def freeze(self) -> RecordedRequest:
        values = {item.name: getattr(self, item.name) for item in fields(RecordedRequest)}
        values["headers"] = dict(self.headers)
        return RecordedRequest(**values)

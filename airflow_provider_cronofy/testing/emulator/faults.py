"""Injected faults: scripted (``fail_next``, ``delay_next``, ``drop_next``,
``fail_next_batch_entries``) and random (``set_random_faults``), and how many of each were sent.

``Faults`` decides, per request and per batch entry, whether to answer normally; it has its own
lock (taken after the state's, never before). ``FaultScripting`` gives ``CronofyEmulator`` its
public fault helpers.
"""

from __future__ import annotations

import fnmatch
import random
import threading
import urllib.parse
from dataclasses import dataclass

from airflow_provider_cronofy.testing.emulator.answers import JSON, Response, default_error_body


def path_matches(pattern: str, path: str) -> bool:
    # Filters name the path without its query string; glob patterns let one filter cover
    # every calendar ("/v1/calendars/*/events").
    bare = path.partition("?")[0]
    return fnmatch.fnmatchcase(bare, pattern) or fnmatch.fnmatchcase(urllib.parse.unquote(bare), pattern)


@dataclass
class ScriptedFault:
    kind: str  # "fail", "delay" or "drop"
    remaining: int
    method: str | None
    path: str | None
    status: int = 503
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = JSON
    seconds: float = 0.0
    after_acting: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or path_matches(self.path, path)


@dataclass
class RandomFaults:
    rng: random.Random
    # Batch entries draw from a stream of their own, so that turning entry faults on does not
    # change which requests the request-level faults hit.
    entry_rng: random.Random
    p: dict[str, float]  # "p_drop", "p_503", "p_429", "p_delay", "p_entry_503", "p_entry_429"
    p_429_retry_after: float
    retry_after_seconds: int
    delay_seconds: float
    paths: tuple[str, ...] | None


@dataclass
class Decision:
    kind: str | None = None  # None (answer normally), "fail", "delay" or "drop"
    response: Response | None = None
    seconds: float = 0.0
    # True: handle the request first (Cronofy acts), then fail, delay or drop its answer.
    after_acting: bool = False


class Faults:
    """The faults scripted or drawn at random, and the count of those sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripted: list[ScriptedFault] = []
        self._scripted_entries: list[ScriptedFault] = []
        self._random: RandomFaults | None = None
        self._counts: dict[str, int] = dict.fromkeys(("503", "429", "drop", "delay", "rate_limited"), 0)

    def script(self, fault: ScriptedFault) -> None:
        if fault.remaining < 0:
            raise ValueError("count must be >= 0")
        if fault.remaining:
            with self._lock:
                self._scripted.append(fault)

    def script_entries(self, count: int, status: int) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        if count < 0:
            raise ValueError("count must be >= 0")
        if count:
            with self._lock:
                self._scripted_entries.append(ScriptedFault("fail", count, None, None, status=status))

    def set_random(self, faults: RandomFaults | None) -> None:
        with self._lock:
            self._random = faults

    def clear(self) -> None:
        with self._lock:
            self._scripted = []
            self._scripted_entries = []
            self._random = None

    def count(self, key: str) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def decide(self, method: str, path: str) -> Decision:
        """What to do with a request: a scripted fault first, then a random one, else nothing."""
        with self._lock:
            for fault in self._scripted:
                if fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    self._scripted = [f for f in self._scripted if f.remaining > 0]
                    return self._scripted_decision(fault)
            faults = self._random
            if faults is None or (
                faults.paths is not None and not any(path_matches(p, path) for p in faults.paths)
            ):
                return Decision()
            return self._random_decision(faults)

    def entry_fault(self) -> Response | None:
        """The injected answer of the next batch entry, or ``None`` to handle it."""
        with self._lock:
            status: int | None = None
            for fault in self._scripted_entries:
                if fault.remaining > 0:
                    fault.remaining -= 1
                    status = fault.status
                    break
            self._scripted_entries = [f for f in self._scripted_entries if f.remaining > 0]
            faults = self._random
            if status is None and faults is not None and (faults.p["p_entry_503"] or faults.p["p_entry_429"]):
                draw = faults.entry_rng.random()
                if draw < faults.p["p_entry_503"]:
                    status = 503
                elif draw < faults.p["p_entry_503"] + faults.p["p_entry_429"]:
                    status = 429
            if status is None:
                return None
            key = f"entry_{status}"
            self._counts[key] = self._counts.get(key, 0) + 1
            return Response(status, default_error_body(status), JSON)

    def _random_decision(self, faults: RandomFaults) -> Decision:
        # Two draws per request whatever the outcome, so the sequence depends only on the
        # number of matching requests.
        draw, retry_draw = faults.rng.random(), faults.rng.random()
        threshold = faults.p["p_drop"]
        if draw < threshold:
            self._counts["drop"] += 1
            return Decision("drop")
        threshold += faults.p["p_503"]
        if draw < threshold:
            self._counts["503"] += 1
            return Decision("fail", Response(503, default_error_body(503), JSON))
        threshold += faults.p["p_429"]
        if draw < threshold:
            self._counts["429"] += 1
            headers = {}
            if retry_draw < faults.p_429_retry_after:
                headers["Retry-After"] = str(faults.retry_after_seconds)
            return Decision("fail", Response(429, default_error_body(429), JSON, headers))
        threshold += faults.p["p_delay"]
        if draw < threshold:
            self._counts["delay"] += 1
            return Decision("delay", seconds=faults.delay_seconds)
        return Decision()

    def _scripted_decision(self, fault: ScriptedFault) -> Decision:
        if fault.kind == "fail":
            key = str(fault.status)
            self._counts[key] = self._counts.get(key, 0) + 1
            headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            body = default_error_body(fault.status) if fault.body is None else fault.body
            response = Response(fault.status, body, fault.content_type, headers)
            return Decision("fail", response, after_acting=fault.after_acting)
        self._counts[fault.kind] += 1
        return Decision(fault.kind, seconds=fault.seconds, after_acting=fault.after_acting)


class FaultScripting:
    """``CronofyEmulator``'s fault helpers, scripting its ``Faults``."""

    _faults: Faults

    @property
    def fault_counts(self) -> dict[str, int]:
        """Faults injected so far by status (``"503"``, ``"429"``, ...), ``"drop"``, ``"delay"``,
        ``"entry_503"``, ``"entry_429"``, ... for batch entries, plus ``"rate_limited"`` for 429s
        sent by the rate limiter."""
        return self._faults.counts()

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        retry_after: str | int | None = None,
        body: bytes | str | None = None,
        content_type: str = JSON,
        method: str | None = None,
        path: str | None = None,
        after_acting: bool = False,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` instead of handling them.

        ``retry_after`` adds a ``Retry-After`` header; ``body`` defaults to a JSON error for the
        status. ``method`` and ``path`` (a glob on the path without query string, matched raw or
        percent-decoded) restrict which requests match. Scripted faults apply in the order they
        were scripted, one per request.

        ``after_acting=True`` handles the request first, as if no fault were scripted (an agent is
        scheduled, an event deleted, the rate limiter counts it), then answers ``status`` instead
        of the real answer: Cronofy acted but the client cannot know. The real answer's status is
        the record's ``handled_status`` in :attr:`requests`.
        """
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        raw_body = body.encode() if isinstance(body, str) else body
        fault = ScriptedFault(
            "fail",
            count,
            method,
            path,
            status=status,
            retry_after=None if retry_after is None else str(retry_after),
            body=raw_body,
            content_type=content_type,
            after_acting=after_acting,
        )
        self._faults.script(fault)

    def delay_next(
        self,
        count: int,
        seconds: float,
        *,
        method: str | None = None,
        path: str | None = None,
        after_acting: bool = False,
    ) -> None:
        """Sleep ``seconds``, then handle and answer the next ``count`` matching requests normally.

        By default the request is handled after the sleep (even when the client has given up by
        then), so a retry sent after a read timeout may be handled before the original.
        ``after_acting=True`` handles the request first and sleeps before sending its answer: a
        client whose read timeout is shorter than ``seconds`` gives up on a request Cronofy has
        already acted on (an agent scheduled, ...).
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        fault = ScriptedFault("delay", count, method, path, seconds=seconds, after_acting=after_acting)
        self._faults.script(fault)

    def drop_next(
        self, count: int, *, method: str | None = None, path: str | None = None, after_acting: bool = False
    ) -> None:
        """Close the connection without any response for the next ``count`` matching requests.

        By default the request is not handled (Cronofy never saw it); ``after_acting=True``
        handles it first (an agent is scheduled, ...), then closes the connection without an
        answer. The status it would have had is the record's ``handled_status``.
        """
        self._faults.script(ScriptedFault("drop", count, method, path, after_acting=after_acting))

    def fail_next_batch_entries(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` batch entries (in any ``POST /v1/batch``, in order) with
        ``status`` and a JSON error body, ``{"status": status, "data": {"errors": ...}}``, instead
        of handling them; the batch itself still answers 207."""
        self._faults.script_entries(count, status)

    def clear_faults(self) -> None:
        """Cancel scripted faults not yet used (batch-entry ones too) and turn random faults off."""
        self._faults.clear()

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
        if not any(probabilities.values()) and not any(entry_probabilities.values()):
            self._faults.set_random(None)
            return
        self._faults.set_random(
            RandomFaults(
                random.Random(seed),
                random.Random(f"{seed}/batch-entries"),
                {**probabilities, **entry_probabilities},
                p_429_retry_after,
                retry_after_seconds,
                delay_seconds,
                tuple(paths) if paths is not None else None,
            )
        )

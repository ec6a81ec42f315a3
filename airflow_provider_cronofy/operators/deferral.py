"""Deferrable bulk runs: the state a run carries across a deferral, and the pacing estimate.

What is carried and why: docs/howto/deferrable.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from airflow_provider_cronofy.exceptions import CronofyError, CronofyInputError
from airflow_provider_cronofy.validation import check_bool
from airflow_provider_cronofy.wording import plural

FORMAT = 1
"""Version of the carried state's layout; a state of another version is refused with a message."""
DEFAULT_DEFER_AFTER = 10.0
"""Seconds: a run defers when its next allowed send is further away than this."""


def check_deferral_args(deferrable: object, defer_after: object) -> float:
    """``defer_after`` as a float; :class:`CronofyInputError` unless ``deferrable`` is a bool and
    ``defer_after`` a finite number of seconds above 0."""
    check_bool("deferrable", deferrable)
    if (
        isinstance(defer_after, bool)
        or not isinstance(defer_after, (int, float))
        or not math.isfinite(defer_after)
        or defer_after <= 0
    ):
        raise CronofyInputError(
            f"defer_after must be a number of seconds above 0 (e.g. {DEFAULT_DEFER_AFTER:g}), got "
            f"{type(defer_after).__name__}: {defer_after!r:.100}."
        )
    return float(defer_after)


def fingerprint(subject: str, items: Sequence[Any]) -> str:
    """``"<count>:<sha256 prefix>"`` of ``subject`` and ``items`` (strings, tuples of strings or
    dicts), each part length-prefixed."""
    digest = hashlib.sha256()
    for text in (subject, *(part for item in items for part in _parts(item))):
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return f"{len(items)}:{digest.hexdigest()[:32]}"


def _parts(item: Any) -> tuple[str, ...]:
    if isinstance(item, dict):
        return (json.dumps(item, sort_keys=True),)
    return tuple(item) if isinstance(item, tuple) else (item,)


@dataclass
class CarriedState:
    """Where a segmented run stands: items before ``position`` have an outcome (``outcomes``:
    those not the default one; ``failures``: status, redacted reason, sent), none after it was
    sent; the pacer's recent ``sent_at`` (epoch s) and its identity; the run's ``deferrals``,
    ``started_at``, seconds ``deferred`` and latest ``deferred_at`` (``None``: not known)."""

    position: int = 0
    outcomes: dict[int, str] = field(default_factory=dict)
    failures: dict[int, tuple[int | None, str, bool]] = field(default_factory=dict)
    sent_at: list[float] = field(default_factory=list)
    pacer: str = ""
    deferrals: int = 0
    started_at: float | None = None
    deferred: float = 0.0
    deferred_at: float | None = None

    def encode(self, list_fingerprint: str) -> dict[str, Any]:
        """The JSON-native form carried in ``next_kwargs``."""
        by_outcome: dict[str, list[int]] = {}
        for index in sorted(self.outcomes):
            by_outcome.setdefault(self.outcomes[index], []).append(index)
        return {
            "format": FORMAT,
            "fingerprint": list_fingerprint,
            "position": self.position,
            "deferrals": self.deferrals,
            "outcomes": {name: _runs(indexes) for name, indexes in by_outcome.items()},
            "failed": [[index, *failure] for index, failure in sorted(self.failures.items())],
            "pacer": self.pacer,
            "sent_at": _deltas_ms(self.sent_at),
            "started_at": _rounded(self.started_at),
            "deferred": round(self.deferred, 3),
            "deferred_at": _rounded(self.deferred_at),
        }

    @classmethod
    def decode(cls, data: Mapping[str, Any], list_fingerprint: str, *, name: str) -> CarriedState:
        """Read an :meth:`encode`-d state back; :class:`CronofyInputError` if this version did not
        write it or the list (argument ``name``) no longer has ``list_fingerprint``."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise CronofyInputError(
                f"Cannot resume: the carried state has format {found!r}, this provider reads format "
                f"{FORMAT}. Clear the task to start the run again."
            )
        carried = data.get("fingerprint")
        position = data.get("position")
        if carried != list_fingerprint:
            raise CronofyInputError(
                f"Cannot resume: {name} changed while the task was deferred. The run stopped after "
                f"{position} of {str(carried).split(':')[0]} items (list fingerprint {carried}); {name} "
                f"now renders {list_fingerprint.split(':')[0]} items (fingerprint {list_fingerprint}). "
                "The outcomes carried across the deferral belong to the old list, so nothing more is "
                "sent. Clear the task to run it with the new list (cancelling again is harmless)."
            )
        try:
            outcomes = {
                index: str(outcome) for outcome, runs in data["outcomes"].items() for index in _unruns(runs)
            }
            # A failure carried by 0.3.0 has no "sent" (True then: it was sent).
            failures = {
                int(f[0]): (f[1], str(f[2]), bool(f[3]) if len(f) > 3 else True) for f in data["failed"]
            }
            return cls(
                position=int(position),  # type: ignore[arg-type]  # None: TypeError below
                outcomes=outcomes,
                failures=failures,
                sent_at=_undeltas_ms(data["sent_at"]),
                pacer=str(data["pacer"]),
                deferrals=int(data["deferrals"]),
                # Absent from a state written by 0.2.0: the run's time then counts from the resume.
                started_at=_optional_float(data.get("started_at")),
                deferred=float(data.get("deferred", 0.0)),
                deferred_at=_optional_float(data.get("deferred_at")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CronofyInputError(
                f"Cannot resume: the carried state is malformed ({type(error).__name__}: {error}). "
                "Clear the task to start the run again."
            ) from None


def defer_for(operator: Any, seconds: float, state: dict[str, Any]) -> NoReturn:
    """Defer ``operator`` for ``seconds``, carrying ``state`` in ``defer()``'s kwargs and in the
    trigger's event; Airflow resumes it in ``execute_complete``."""
    from airflow_provider_cronofy.triggers.resume_at import ResumeAtTrigger

    moment = datetime.now(timezone.utc) + timedelta(seconds=max(seconds, 0.0))
    operator.defer(
        trigger=ResumeAtTrigger(moment, state), method_name="execute_complete", kwargs={"resume": state}
    )
    raise AssertionError("defer() returned")  # pragma: no cover - defer always raises


def carried_state(event: Any, resume: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The state a resumed run continues from: ``next_kwargs["resume"]``, else the event's
    (:class:`CronofyError` if neither holds one)."""
    if resume is not None:
        return resume
    if isinstance(event, Mapping) and isinstance(event.get("resume"), Mapping):
        return event["resume"]
    raise CronofyError(
        "Resumed from a deferral without the state the run carried (no 'resume' in next_kwargs or "
        "in the trigger event), so where it stopped is unknown. Nothing was sent; clear the task "
        "to run the whole list again (cancelling again is harmless)."
    )


def _rounded(epoch: float | None) -> float | None:
    return None if epoch is None else round(epoch, 3)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _runs(indexes: list[int]) -> list[int]:
    """Sorted indexes as ``[start, count, start, count, ...]``."""
    out: list[int] = []
    for index in indexes:
        if out and out[-2] + out[-1] == index:
            out[-1] += 1
        else:
            out.extend((index, 1))
    return out


def _unruns(runs: Sequence[int]) -> list[int]:
    return [
        index
        for start, count in zip(runs[::2], runs[1::2], strict=True)
        for index in range(start, start + count)
    ]


def _deltas_ms(epoch_times: Sequence[float]) -> list[int]:
    """Epoch seconds as ``[first ms, delta ms, ...]``, rounded up (a later time paces more, never less)."""
    out: list[int] = []
    previous = 0
    for t in sorted(epoch_times):
        ms = math.ceil(t * 1000)
        out.append(ms - previous)
        previous = ms
    return out


def _undeltas_ms(deltas: Sequence[int]) -> list[float]:
    out: list[float] = []
    ms = 0
    for delta in deltas:
        ms += int(delta)
        out.append(ms / 1000)
    return out


def slots_for(job: Any, count: int) -> int:
    """Pacer slots ``count`` items of ``job`` take (a batch: one, or one per entry with
    ``cost_per_entry``; times ``requests_per_item``)."""
    return count if getattr(job, "cost_per_entry", False) else requests_for(job, count)


def requests_for(job: Any, count: int) -> int:
    """Requests ``count`` items of ``job`` send: a batch per ``unit_size`` items, ``requests_per_item``
    requests each."""
    return -(-count // unit_size(job)) * getattr(job, "requests_per_item", 1)


def items_for(job: Any, slots: int) -> int:
    """How many items of the bulk ``job`` ``slots`` pacer slots send (see :func:`slots_for`)."""
    if getattr(job, "cost_per_entry", False):
        return slots
    return slots // getattr(job, "requests_per_item", 1) * unit_size(job)


def unit_size(job: Any) -> int:
    """Items the bulk ``job`` sends in one request (a batch of events: up to 50; else 1)."""
    return max(1, int(getattr(job, "unit_size", 1)))


def pacing_estimate_line(settings: Any, job: Any, count: int, *, deferrable: bool, defer_after: float) -> str:
    """A dry run's line on how long ``count`` items of ``job`` would take under the pacer of
    ``settings``, and how often a ``deferrable`` run would defer (computed, nothing sent)."""
    from airflow_provider_cronofy.hooks.pacing import estimate_pacing

    per_second, per_minute = settings.rate_limit_per_second, settings.rate_limit_per_minute
    unit = unit_size(job)
    requests = requests_for(job, count)
    sent = plural(requests, "batch", "batches") if unit > 1 else plural(requests, "request")
    if not per_second and not per_minute:
        return (
            f"this connection's pacing is off (rate_limit_per_second and rate_limit_per_minute "
            f"are 0): the {sent} would go as fast as Cronofy answers them."
        )
    slots = slots_for(job, count)
    if slots != requests:
        sent += f", counted as {plural(slots, 'request')} (batch_rate_cost=entries),"
    limits = ", ".join(
        f"{limit}/{short}" if limit else f"no {window} limit"
        for limit, short, window in ((per_second, "s", "per-second"), (per_minute, "min", "per-minute"))
    )
    estimate = estimate_pacing(slots, per_second, per_minute, defer_after)
    line = (
        f"at this connection's rate limits ({limits}) the {sent} would take about "
        f"{_duration(estimate.seconds)} of pacing"
    )
    deferrals = plural(estimate.deferrals, "time")
    deferred = _duration(estimate.deferred_seconds)
    if deferrable:
        line += f"; with deferrable=True (defer_after={defer_after:g} s) the run would " + (
            f"defer {deferrals}, about {deferred} of it deferred" if estimate.deferrals else "not defer"
        )
    elif estimate.deferrals:
        line += (
            f"; deferrable=False: the worker waits through it all (deferrable=True would defer "
            f"{deferrals}, about {deferred} of it)"
        )
    resumes = ", and each resume a task start" if deferrable and estimate.deferrals else ""
    return f"{line}. An estimate of the pacing only: each answer's latency adds to it{resumes}."


def _duration(seconds: float) -> str:
    """``"9.5 s"``, ``"2 min 3 s"``, ``"2 min"``, ``"1 h 5 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min" + (f" {whole % 60} s" if whole % 60 else "")
    return f"{whole // 3600} h" + (f" {whole % 3600 // 60} min" if whole % 3600 // 60 else "")

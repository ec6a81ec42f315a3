"""Deferrable bulk runs: the state a run carries across a deferral, and the pacing estimate.

With ``deferrable=True`` an operator sends its list in segments: as many items as the pacer lets
go before a wait longer than ``defer_after``, then it defers to :class:`~airflow_provider_cronofy.triggers.resume_at.ResumeAtTrigger`
until the next slot, carrying :class:`CarriedState` in ``next_kwargs["resume"]``, and
``execute_complete`` goes on where it stopped (see :mod:`.bulk`). The state is JSON-native: the
position reached, the outcomes and failures so far by position (never the items: the list is
re-read from the rendered template field and a fingerprint proves it is the same list), the
pacer's recent send times, and the run's start and deferred seconds. docs/howto/deferral.md
has the rationale.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_cronofy.exceptions import CronofyError, CronofyInputError
from airflow_provider_cronofy.validation import check_bool
from airflow_provider_cronofy.wording import plural

if TYPE_CHECKING:
    pass

FORMAT = 1
"""Version of the carried state's layout; a state of another version is refused with a message."""
DEFAULT_DEFER_AFTER = 10.0
"""Seconds: a run defers when its next allowed send is further away than this."""
RESUME_METHOD = "execute_complete"


def check_deferral_args(deferrable: object, defer_after: object) -> float:
    """Return ``defer_after`` as a float; raise :class:`CronofyInputError` for unusable values.

    ``deferrable`` must be a bool; ``defer_after`` a finite number of seconds above 0.
    """
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
    """``"<count>:<sha256 prefix>"`` of ``subject`` and ``items`` (length-prefixed, so unambiguous).

    An item is a string, a tuple of strings (``(calendar_id, event_id)``: every part counts) or
    a dict (an agent's body: its JSON, keys sorted).
    """
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
    """Where a segmented run stands: everything a resumed run needs, and nothing it can re-read.

    :ivar position: items before this index have an outcome; from it on nothing was sent.
    :ivar outcomes: index -> outcome, for the items whose outcome is not the default one.
    :ivar failures: index -> (HTTP status or ``None``, redacted reason, whether it was sent).
    :ivar sent_at: the recent send times (epoch seconds) of the pacer, at the deferral.
    :ivar pacer: the identity of the pacer that made them.
    :ivar deferrals: how many times the run deferred so far.
    :ivar started_at: when the run started (epoch seconds); ``None``: not known (an old state).
    :ivar deferred: seconds spent deferred before the latest deferral.
    :ivar deferred_at: when the latest deferral began (epoch seconds); ``None``: not known.
    """

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
        """The JSON-native form carried in ``next_kwargs`` (ints, floats, strings, ``None``, lists and
        dicts only)."""
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
        """Read an :meth:`encode`-d state back, checking it belongs to the list ``list_fingerprint``.

        :raises CronofyInputError: the state is not one this version wrote, or the list changed
            while the task was deferred (``name`` is the argument holding it).
        """
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
    """Defer ``operator`` for ``seconds``, carrying ``state``; Airflow resumes it in ``execute_complete``.

    The state goes in ``defer()``'s kwargs (``next_kwargs["resume"]``) and in the trigger's event
    (see :mod:`airflow_provider_cronofy.triggers.resume_at` for why both).
    """
    from airflow_provider_cronofy.triggers.resume_at import ResumeAtTrigger

    moment = datetime.now(timezone.utc) + timedelta(seconds=max(seconds, 0.0))
    operator.defer(
        trigger=ResumeAtTrigger(moment, state), method_name=RESUME_METHOD, kwargs={"resume": state}
    )
    raise AssertionError("defer() returned")  # pragma: no cover - defer always raises


def carried_state(event: Any, resume: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The state a resumed run continues from: ``next_kwargs["resume"]``, else the event's.

    :raises CronofyError: neither holds one (the run cannot know where it stopped; rather than
        send every item again, it fails: clear the task to start over).
    """
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
    """Pacer slots ``count`` items of the bulk ``job`` take: a batch of ``unit_size`` items costs
    one slot (one per entry with ``cost_per_entry``), an item of ``requests_per_item`` requests that many."""
    if getattr(job, "cost_per_entry", False):
        return count
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
    """A dry run's line on how long ``count`` items of ``job`` would take under the connection's pacer.

    Computed, not sent (:func:`~airflow_provider_cronofy.hooks.pacing.estimate_pacing`): the
    requests (a batch carries ``job.unit_size`` events), the pacer slots they cost
    (:func:`slots_for`), the windows of ``settings``, and with ``deferrable`` how many times
    the run would defer after ``defer_after``.
    """
    from airflow_provider_cronofy.hooks.pacing import estimate_pacing

    per_second, per_minute = settings.rate_limit_per_second, settings.rate_limit_per_minute
    unit = unit_size(job)
    requests = -(-count // unit) * getattr(job, "requests_per_item", 1)
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

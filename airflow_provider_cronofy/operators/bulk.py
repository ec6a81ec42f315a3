"""What the operators share: one bulk run, at once or in segments with deferrals between them,
and its end (the done line, the XComs, the return value or the error). Imports no ``requests``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_cronofy._compat import BaseOperator, TaskDeferred, conf
from airflow_provider_cronofy.exceptions import (
    CronofyBulkError,
    CronofyInputError,
    ItemFailure,
    cause_lines,
    stopped_line,
)
from airflow_provider_cronofy.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_cronofy.operators.deferral import (
    DEFAULT_DEFER_AFTER,
    CarriedState,
    carried_state,
    check_deferral_args,
    defer_for,
    fingerprint,
    items_for,
    pacing_estimate_line,
    slots_for,
)
from airflow_provider_cronofy.validation import check_bool, check_max_concurrency
from airflow_provider_cronofy.wording import plural

if TYPE_CHECKING:
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook
    from airflow_provider_cronofy.hooks.runner import BulkRun, Report, RunResult

DRY_RUN_ITEMS_LOGGED = 100
"""A dry run logs this many items one by one, then how many more there are."""


class RunClock:
    """How long a bulk run has taken since its first ``execute``, and how much of it deferred:
    on ``clock`` (monotonic) in this process, on ``wall`` (epoch) across a deferral (:meth:`resumed`)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.wall = wall
        self._mark = clock()
        self._before = 0.0
        self.started_at = wall()
        """When the run started (epoch seconds): this object's creation, or the carried start."""
        self.deferred = 0.0
        """Seconds of the run spent deferred (the worker slot free) so far."""
        self.deferrals = 0
        """How many times the run deferred so far."""

    def elapsed(self) -> float:
        """Seconds since the run started, deferrals included."""
        return self._before + self.clock() - self._mark

    def resumed(self, started_at: float, deferred: float, deferrals: int) -> None:
        """The run started at ``started_at`` (epoch s) in an earlier process; ``deferred`` seconds
        in ``deferrals`` deferrals so far."""
        self._mark = self.clock()
        # A wall clock set back meanwhile must not make the run's time negative.
        self._before = max(0.0, self.wall() - started_at)
        self.started_at = started_at
        self.deferred = min(max(0.0, deferred), self._before)
        self.deferrals = deferrals

    def took(self) -> str:
        """``"0.4 s"``; after deferrals ``"132.0 s (120.4 s of it deferred, 2 deferrals)"``."""
        text = f"{self.elapsed():.1f} s"
        if self.deferrals:
            text += f" ({self.deferred:.1f} s of it deferred, {plural(self.deferrals, 'deferral')})"
        return text


class Tally:
    """The whole run's results by input position, across segments and deferrals.

    :ivar position: every item before it was sent in a segment (or never will be: the run stopped).
    """

    def __init__(self, total: int) -> None:
        self.outcomes: list[str | None] = [None] * total
        self.failures: dict[int, ItemFailure] = {}
        self.not_attempted: list[int] = []
        self.stopped = False
        self.position = 0

    def add(self, result: RunResult, start: int) -> None:
        """Take in a segment's ``result``; its first item is at ``start``."""
        self.outcomes[start : start + len(result.outcomes)] = result.outcomes
        for index, failure in result.failures.items():
            self.failures[start + index] = failure
        self.not_attempted.extend(start + index for index in result.not_attempted)
        self.position = start + len(result.outcomes)
        if result.stopped:
            self.stopped = True
            self.not_attempted.extend(range(self.position, len(self.outcomes)))
            self.position = len(self.outcomes)

    def carried(self, pacer_times: list[float], pacer: str, clock: RunClock, default: str) -> CarriedState:
        """The state a deferral carries (outcomes other than ``default`` are named by position)."""
        return CarriedState(
            position=self.position,
            outcomes={
                i: o for i, o in enumerate(self.outcomes[: self.position]) if o is not None and o != default
            },
            failures={i: (f.status_code, f.reason, f.sent) for i, f in self.failures.items()},
            sent_at=pacer_times,
            pacer=pacer,
            deferrals=clock.deferrals,
            started_at=clock.started_at,
            deferred=clock.deferred,
        )

    @classmethod
    def resumed(cls, state: CarriedState, items: Sequence[Any], default: str) -> Tally:
        """The tally a carried ``state`` describes, for the list ``items``."""
        tally = cls(len(items))
        tally.position = state.position
        for index in range(state.position):
            if index not in state.failures:
                tally.outcomes[index] = state.outcomes.get(index, default)
        for index, (status, reason, sent) in state.failures.items():
            tally.failures[index] = ItemFailure(items[index], status, reason, sent)
        return tally


class BulkOperator(BaseOperator):
    """What the operators share (arguments documented on each operator). A subclass names its
    outcomes (:attr:`outcome_names`, the common one first), its items (:meth:`noun`) and sends a
    segment (:meth:`start`)."""

    ui_color = "#d6f0ff"
    outcome_names: tuple[str, ...] = ("cancelled",)

    def __init__(
        self,
        *,
        cronofy_conn_id: str = DEFAULT_CONN_ID,
        max_concurrency: int | None = None,
        dry_run: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        defer_after: float = DEFAULT_DEFER_AFTER,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cronofy_conn_id = cronofy_conn_id
        self.max_concurrency = max_concurrency
        self.deferrable = deferrable
        self.defer_after = defer_after
        # Not self.dry_run: that is BaseOperator.dry_run(), Airflow's own `tasks test --dry-run`.
        self.is_dry_run = dry_run

    # ------------------------------------------------------------------ what a subclass says

    def noun(self) -> tuple[str, str | None]:
        """The singular of what the items are, and its plural when not ``singular + "s"``."""
        raise NotImplementedError

    def subject(self) -> str:
        """Names the list and the action, for the fingerprint carried across a deferral."""
        raise NotImplementedError

    def start(self, hook: CronofyHook, items: Sequence[Any], tally: Tally, report: Report) -> BulkRun:
        """The bulk run of one segment ``items`` (``tally``: what the run did before it)."""
        raise NotImplementedError

    def present(self, item: Any) -> Any:
        """An item as the return value, the XComs and the error show it."""
        return item

    stopped_noun = "item"
    """What the items are called in the line of a run a fatal error stopped."""

    def cause_lines(self, failures: list[ItemFailure]) -> list[str]:
        """The error's lines on ``failures`` (presented), one per cause."""
        return cause_lines(failures)

    def failure_fields(self, item: Any) -> dict[str, Any]:
        """How a failed (presented) item reads in the ``failures`` XCom, before its status and reason."""
        # An event of ``events`` is already a {"calendar_id", "event_id"} dict: its keys lead.
        return dict(item) if isinstance(item, dict) else {"item": item}

    def after_segment(self, tally: Tally) -> None:
        """Called after each segment: a subclass may end the run (set ``tally.stopped``)."""

    # ------------------------------------------------------------------ the run

    def check_shared_arguments(self) -> bool:
        """Check the shared arguments (before any request); return whether this is a dry run."""
        dry_run = check_bool("dry_run", self.is_dry_run)
        check_max_concurrency(self.max_concurrency)
        check_deferral_args(self.deferrable, self.defer_after)
        return dry_run

    def hook(self) -> CronofyHook:
        """The connection's hook (imported when a task runs, not when a DAG file is parsed)."""
        from airflow_provider_cronofy.hooks.cronofy import CronofyHook

        return CronofyHook(self.cronofy_conn_id, max_concurrency=self.max_concurrency)

    def execute_complete(
        self, context: Any, event: Any = None, resume: Mapping[str, Any] | None = None
    ) -> dict[str, list[Any]]:
        """Resume a deferred run where it stopped (Airflow calls this; the trigger only waited)."""
        return self.execute(context, resume=carried_state(event, resume))

    def execute(self, context: Any, resume: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
        raise NotImplementedError

    def send_all(
        self, context: Any, hook: CronofyHook, items: Sequence[Any], resume: Mapping[str, Any] | None
    ) -> dict[str, list[Any]]:
        """Send ``items``: at once, or in segments when deferrable (deferring between them); log
        the done line; return the outcomes, or push the XComs and raise the run's error."""
        noun, nouns = self.noun()
        name = nouns or f"{noun}s"
        clock = RunClock()
        list_fingerprint = fingerprint(self.subject(), items)
        tally = Tally(len(items))
        if resume is not None:
            tally = self._resume(hook, items, resume, list_fingerprint, clock, name)
        from airflow_provider_cronofy.hooks.runner import Report

        segmented = self.deferrable or resume is not None
        job = self.unit(hook) if segmented else None  # its unit size and pacer cost size a segment
        try:
            while tally.position < len(items) and not tally.stopped:
                start = tally.position
                left = len(items) - start
                budget = left
                if segmented:
                    slots = hook.pacer.sends_before_wait(self.defer_after, slots_for(job, left))
                    budget = min(left, items_for(job, slots))
                    if budget == 0:
                        self._defer(hook, tally, clock, list_fingerprint, name)
                report = Report(self.log, noun, nouns, len(items), start, len(tally.failures))
                run = self.start(hook, items[start : start + budget], tally, report)
                try:
                    run.run()
                finally:  # an interruption keeps what was answered
                    tally.add(run.result, start)
                self.after_segment(tally)
        except TaskDeferred:
            raise
        except BaseException as error:  # an execution_timeout mid-run
            self._push(context, self.results(items, tally), error)
            raise
        self.log.info(self.done_line(items, tally, clock))
        return self.end(context, items, tally)

    def unit(self, hook: CronofyHook) -> Any:
        """The job of a segment, for its unit size and pacer cost (per-request jobs by default)."""
        return None

    def _resume(
        self,
        hook: CronofyHook,
        items: Sequence[Any],
        resume: Mapping[str, Any],
        list_fingerprint: str,
        clock: RunClock,
        name: str,
    ) -> Tally:
        state = CarriedState.decode(resume, list_fingerprint, name=name)
        if not 0 <= state.position <= len(items):
            raise CronofyInputError(
                f"Cannot resume: the carried position {state.position} is outside the list of "
                f"{len(items)} {name}. Clear the task to start the run again."
            )
        tally = Tally.resumed(state, items, self.outcome_names[0])
        hook.pacer.count_sends_from(state.sent_at, state.pacer)
        waited = None
        if state.started_at is not None:  # a state of 0.2.0 has none: the time counts from here
            waited = max(0.0, clock.wall() - state.deferred_at) if state.deferred_at is not None else 0.0
            clock.resumed(state.started_at, state.deferred + waited, state.deferrals)
        self.log.info(
            "Resumed after deferral %d%s: %d of %d %s already done (%d failed), %d to go.",
            state.deferrals,
            "" if waited is None else f" ({waited:.1f} s deferred)",
            state.position,
            len(items),
            name,
            len(state.failures),
            len(items) - state.position,
        )
        return tally

    def _defer(
        self, hook: CronofyHook, tally: Tally, clock: RunClock, list_fingerprint: str, name: str
    ) -> NoReturn:
        wait = hook.pacer.next_slot_in()
        now = clock.wall()
        clock.deferrals += 1
        state = tally.carried(
            hook.pacer.recent_send_times(), hook.pacer.identity, clock, self.outcome_names[0]
        )
        state.failures = {i: (s, hook.redact(r), sent) for i, (s, r, sent) in state.failures.items()}
        state.deferred_at = now
        total = len(tally.outcomes)
        self.log.info(
            "Deferring until %s UTC, %.1f s from now (deferral %d): the rate limit's next slot is "
            "more than %g s away; %d of %d %s done, %d left. The worker slot is free until then.",
            datetime.fromtimestamp(now + wait, timezone.utc).strftime("%H:%M:%S"),
            wait,
            clock.deferrals,
            self.defer_after,
            tally.position,
            total,
            name,
            total - tally.position,
        )
        defer_for(self, wait, state.encode(list_fingerprint))

    # ------------------------------------------------------------------ the end of a run

    def results(self, items: Sequence[Any], tally: Tally) -> dict[str, list[Any]]:
        """``{outcome: [items]}`` in input order, every outcome named (the return value)."""
        results: dict[str, list[Any]] = {name: [] for name in self.outcome_names}
        for item, outcome in zip(items, tally.outcomes, strict=True):
            if outcome is not None:
                results[outcome].append(self.present(item))
        return results

    def done_line(self, items: Sequence[Any], tally: Tally, clock: RunClock) -> str:
        """``Done: 4 scheduling keys in 0.4 s: 3 cancelled, 1 not found, 0 failed.``"""
        unsent = f", {len(tally.not_attempted)} not attempted" if tally.not_attempted else ""
        return (
            f"Done: {plural(len(items), *self.noun())} in {clock.took()}: "
            f"{_summary(self.results(items, tally))}, {len(tally.failures)} failed{unsent}."
        )

    def end(self, context: Any, items: Sequence[Any], tally: Tally) -> dict[str, list[Any]]:
        """The return value; or, when an item failed, the XComs pushed and the run's error raised."""
        results = self.results(items, tally)
        if not tally.failures:
            return results
        failures = [
            ItemFailure(self.present(f.item), f.status_code, f.reason, f.sent)
            for _, f in sorted(tally.failures.items())
        ]
        lines = [f"{len(failures)} of {plural(len(items), *self.noun())} failed ({_summary(results)}):"]
        lines += self.cause_lines(failures)
        if tally.stopped and len(items) > 1:  # a run of one item has no other item to stop for
            lines.append(stopped_line(len(tally.not_attempted), self.stopped_noun))
        message = "\n".join(lines)
        error = CronofyBulkError.of(
            message,
            failures=failures,
            results=results,
            not_attempted=[self.present(items[i]) for i in tally.not_attempted],
            fatal=tally.stopped,
        )
        self._push(context, results, error)
        raise error

    def _push(self, context: Any, results: Mapping[str, list[Any]], error: BaseException) -> None:
        """Push ``partial_result`` and, for a :class:`CronofyBulkError`, ``failures`` and
        ``not_attempted`` (a failed task pushes no return value; an audit task reads these)."""
        ti = context.get("ti") if context else None
        if ti is None:
            return
        try:
            ti.xcom_push(key="partial_result", value=results)
            if isinstance(error, CronofyBulkError):
                failures = [
                    {**self.failure_fields(f.item), "status_code": f.status_code, "reason": f.reason}
                    for f in error.failures
                ]
                ti.xcom_push(key="failures", value=failures)
                ti.xcom_push(key="not_attempted", value=list(error.not_attempted))
        except Exception:  # the original error matters more than a lost XCom
            self.log.warning("Could not push the partial_result XCom.", exc_info=True)

    def log_dry_run(
        self, hook: CronofyHook, items: Sequence[Any], sends: str, notes: Sequence[str]
    ) -> dict[str, list[Any]]:
        """Log what a real run would send (``sends``), each item, the pacing estimate and ``notes``;
        return ``{"would_cancel": [items]}``. No credential is in any line."""
        shown = [self.show(item) for item in items[:DRY_RUN_ITEMS_LOGGED]]
        self.log.info(
            "Dry run: nothing is sent. A real run would send %s, one %s each:", sends, self.dry_run_field
        )
        for line in shown:
            self.log.info("Dry run: would %s %s", self.dry_run_verb, line)
        if len(items) > DRY_RUN_ITEMS_LOGGED:
            self.log.info("Dry run: ... and %d more.", len(items) - DRY_RUN_ITEMS_LOGGED)
        estimate = pacing_estimate_line(
            hook.settings,
            self.unit(hook),
            len(items),
            deferrable=self.deferrable,
            defer_after=self.defer_after,
        )
        for note in [estimate, *notes]:
            self.log.info("Dry run: %s", note)
        return {f"would_{self.dry_run_verb}": [self.present(item) for item in items]}

    dry_run_field = "item"
    dry_run_verb = "cancel"

    def show(self, item: Any) -> str:
        """An item in a dry run's line."""
        return f"{self.dry_run_field}={self.present(item)!r}"


def _summary(results: Mapping[str, list[Any]]) -> str:
    return ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in results.items())

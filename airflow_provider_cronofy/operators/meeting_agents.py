"""Operators that cancel Cronofy Meeting Agents from a DAG.

Both take one item or a list (typically an upstream task's XCom), check every argument before
the first request, send the list through the hook's bulk engine (one HTTP session, several
requests in flight under the one pacer), log progress on long runs, and fail with one error
listing every failed item after attempting all the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_cronofy._compat import BaseOperator, TaskDeferred, conf
from airflow_provider_cronofy.exceptions import CronofyBulkError, CronofyInputError
from airflow_provider_cronofy.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_cronofy.operators.bulk import (
    DRY_RUN_ITEMS_LOGGED,
    RunClock,
    log_dry_run,
    normalise_items,
    run_bulk,
)
from airflow_provider_cronofy.operators.deferral import (
    DEFAULT_DEFER_AFTER,
    carried_state,
    check_deferral_args,
    pacing_estimate_line,
    segmented_if_deferrable,
)
from airflow_provider_cronofy.operators.integrated_events import (
    dry_run_events,
    event_requests,
    normalise_events,
    present_error,
    present_results,
    remember_unknown_calendars,
    unknowable_calendars,
)
from airflow_provider_cronofy.validation import calendar_path_segment, check_bool, check_max_concurrency
from airflow_provider_cronofy.wording import plural

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_cronofy.hooks.cronofy import CronofyHook
    from airflow_provider_cronofy.hooks.engine import Job

log = logging.getLogger(__name__)


def _hook(conn_id: str, max_concurrency: int | None = None) -> CronofyHook:
    # Imported when a task runs, not when a DAG file is parsed: the hook pulls in requests.
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    return CronofyHook(conn_id, max_concurrency=max_concurrency)


def _keep_partial_results(
    context: Mapping[str, Any], results: Mapping[str, list[Any]], error: BaseException
) -> None:
    """Push what succeeded (XCom ``partial_result``) and, for a :class:`CronofyBulkError`, each
    failed item (XCom ``failures``: ``[{"item", "status_code", "reason"}]``, reasons redacted;
    for ``events``, ``[{"calendar_id", "event_id", "status_code", "reason"}]``) and the items a
    fatal error kept from being sent (XCom ``not_attempted``, in input order; ``[]`` when none),
    so that every item is in one of the three.

    ``error`` is what stopped the run; anything but a bulk error (an ``execution_timeout``)
    pushes ``partial_result`` only.
    """
    # A failed task pushes no return value; keep what succeeded where a retry or a person sees it,
    # and why the rest failed, where a downstream task (an audit, an alert) can read it.
    ti = context.get("ti") if context else None
    if ti is None:
        return
    try:
        ti.xcom_push(key="partial_result", value=results)
        if isinstance(error, CronofyBulkError):
            failures = [
                {**_failed_item(f.item), "status_code": f.status_code, "reason": f.reason}
                for f in error.failures
            ]
            ti.xcom_push(key="failures", value=failures)
            ti.xcom_push(key="not_attempted", value=list(error.not_attempted))
    except Exception:  # the original error matters more than a lost XCom
        log.warning("Could not push the partial_result XCom.", exc_info=True)


def _failed_item(item: Any) -> dict[str, Any]:
    # An event of ``events`` is already a {"calendar_id", "event_id"} dict: its keys lead.
    return dict(item) if isinstance(item, dict) else {"item": item}


def _dry_run(
    task_log: logging.Logger | Any, sends: str, field: str, items: list[str], notes: Sequence[str]
) -> dict[str, list[str]]:
    """Log what a run would send (see :func:`~.bulk.log_dry_run`); return the items."""
    shown = [f"{field}={item!r}" for item in items[:DRY_RUN_ITEMS_LOGGED]]
    log_dry_run(task_log, sends, field, shown, len(items), notes)
    return {"would_cancel": items}


class _MeetingAgentOperator(BaseOperator):
    """What both operators share: the connection, concurrency, dry run and deferral arguments
    (documented on each operator), their checks, and resuming a deferred run."""

    ui_color = "#d6f0ff"

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

    def _check_shared_arguments(self) -> bool:
        """Check the shared arguments (before any request); return whether this is a dry run."""
        dry_run = check_bool("dry_run", self.is_dry_run)
        check_max_concurrency(self.max_concurrency)
        check_deferral_args(self.deferrable, self.defer_after)
        return dry_run

    def execute(self, context: Any, resume: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
        raise NotImplementedError

    def _estimate(self, hook: CronofyHook, job: Job, count: int) -> str:
        """The dry run's line on the pacing a real run of ``count`` items of ``job`` would meet."""
        return pacing_estimate_line(
            hook.settings, job, count, deferrable=self.deferrable, defer_after=self.defer_after
        )

    def _cancel_all(
        self,
        context: Any,
        hook: CronofyHook,
        job: Job,
        items: Sequence[Any],
        *,
        resume: Mapping[str, Any] | None,
        result_values: Mapping[str, Any],
        subject: str,
        name: str,
        noun: str,
        noun_plural: str | None = None,
        events: bool = False,
    ) -> dict[str, list[Any]]:
        """Send ``items`` with ``job`` through the hook's bulk engine (in segments when deferrable).

        ``result_values`` maps each outcome, in the order the return value lists them, to the
        result the hook's call gives for it. What succeeded is pushed as ``partial_result`` (and
        the failures as ``failures``) when the run fails or is interrupted; a deferral is not a
        failure. With ``events`` the items are ``(calendar_id, event_id)`` keys, shown as dicts
        in the return value, the XComs and the error (see :mod:`.integrated_events`).
        """
        results: dict[str, list[Any]] = {outcome: [] for outcome in result_values}
        run_clock = RunClock()  # a resumed run sets the carried start on it
        run = segmented_if_deferrable(
            self,
            lambda batch, on_result: hook.run_many(batch, job, on_result),
            hook,
            job,
            resume=resume,
            subject=subject,
            name=name,
            result_values=result_values,
            run_clock=run_clock,
        )
        if events:  # a calendar that answered 404 before a deferral is not asked again after it
            run = remember_unknown_calendars(run, job)
        try:
            done = run_bulk(
                items,
                run,
                outcome_of=lambda result: next(o for o, v in result_values.items() if v == result),
                noun=noun,
                noun_plural=noun_plural,
                outcomes=tuple(result_values),
                log=self.log,
                redact=hook.redact,
                results=results,
                run_clock=run_clock,
            )
        except TaskDeferred:  # a deferrable run waits for the rate limit's next window
            raise
        except BaseException as error:  # CronofyBulkError, or an execution_timeout mid-run
            if not events:
                _keep_partial_results(context, results, error)
                raise
            shown = present_error(error, len(items))
            _keep_partial_results(context, present_results(results), shown)
            if shown is error:
                raise
            raise shown from None  # the same error, its items as dicts and its message by calendar
        return present_results(done) if events else done

    def execute_complete(
        self, context: Any, event: Any = None, resume: Mapping[str, Any] | None = None
    ) -> dict[str, list[Any]]:
        """Resume a deferred run where it stopped (Airflow calls this; the trigger only waited)."""
        return self.execute(context, resume=carried_state(event, resume))


class CancelScheduledMeetingAgentOperator(_MeetingAgentOperator):
    """Cancel scheduled Meeting Agents by their ``scheduling_key``.

    Sends ``DELETE /v1/meeting_agents`` once per distinct key, authorised by the connection's API
    key (its password), with up to ``max_concurrency`` requests in flight under the pacer.

    :param scheduling_key: one key, or a list or tuple of keys (templated). Keys are sent exactly
        as given; duplicates once; an empty list sends nothing and succeeds. One string holding a
        comma (``"k1,k2"``) is refused as several keys joined together: pass a list (a key that
        really holds a comma goes in a one-item list).
    :param cronofy_conn_id: the ``cronofy`` connection to use (templated).
    :param max_concurrency: requests in flight at once, 1 to 100; ``None`` (default) uses the
        connection's ``max_concurrency`` extra, or the
        per-second rate limit (50 by default; 20 with pacing per second off).
    :param dry_run: check the input and the connection (its settings and its API key) exactly as
        a real run would, log what would be sent and an estimate of its pacing (and deferrals),
        and send nothing; the return value is then ``{"would_cancel": [keys in input order,
        duplicates once]}``.
    :param deferrable: free the worker slot while the run waits for the rate limit's next window
        (the triggerer waits instead); default: the ``[operators] default_deferrable`` setting.
        See :mod:`airflow_provider_cronofy.operators.deferral`.
    :param defer_after: seconds (a number above 0, default 10): a deferrable run defers when its
        next allowed send is further away than this, and sends on in the worker otherwise.

    :return: (the XCom) ``{"cancelled": [...], "not_found": [...]}`` in input order; ``not_found``
        holds the keys Cronofy answered 404 for (already cancelled, or never scheduled).
    :raises CronofyInputError: an argument is invalid (nothing is sent).
    :raises CronofyBulkError: some keys failed after retries; every other key was attempted
        (unless a 401/402/403/423 stopped the run: then a ``CronofyFatalBulkError``), and the
        error lists each failure. What did succeed is in the error's ``results`` and in the XCom
        ``partial_result``; each failure (item, status, reason) is in the XCom ``failures``.
    """

    template_fields: Sequence[str] = ("scheduling_key", "cronofy_conn_id")
    # A list of thousands of keys renders one per line in the UI's "Rendered Template" view.
    template_fields_renderers = {"scheduling_key": "json"}  # noqa: RUF012 - as BaseOperator declares it

    def __init__(
        self,
        *,
        scheduling_key: str | Sequence[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scheduling_key = scheduling_key

    def execute(self, context: Any, resume: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
        """Cancel every key; return ``{"cancelled": [...], "not_found": [...]}``.

        ``resume`` is the state a deferred run carries (see :meth:`execute_complete`).
        """
        dry_run = self._check_shared_arguments()
        keys = normalise_items("scheduling_key", self.scheduling_key)
        if not keys and not dry_run:
            self.log.info("No scheduling keys given: nothing to cancel.")
            return {"cancelled": [], "not_found": []}
        with _hook(self.cronofy_conn_id, self.max_concurrency) as hook:
            hook.validate()  # the connection, before the first request
            hook.require_api_key()
            job = hook.per_item_job(hook.scheduled_cancellation_call)
            if dry_run:
                sends = f"DELETE {hook.base_url}/v1/meeting_agents for {plural(len(keys), 'item')}"
                unknowable = (
                    "nothing was sent, so it cannot tell which of these keys are scheduled: "
                    "would_cancel lists every key given; a real run reports those Cronofy answers "
                    "404 for as not_found."
                )
                return _dry_run(
                    self.log,
                    sends,
                    "scheduling_key",
                    keys,
                    [self._estimate(hook, job, len(keys)), unknowable],
                )
            results = self._cancel_all(
                context,
                hook,
                job,
                keys,
                resume=resume,
                result_values={"cancelled": True, "not_found": False},
                subject="scheduling_key",
                name="scheduling keys",
                noun="scheduling key",
            )
            if len(results["not_found"]) == len(keys):
                # A host or proxy route pointing at the wrong place 404s too; say so, but a re-run
                # of a finished job legitimately finds nothing left to cancel.
                self.log.warning(
                    "Cronofy answered 404 for %s%s: cancelled before or never scheduled, or "
                    "connection '%s' points at the wrong host or data center.",
                    "all " if len(keys) > 1 else "",
                    plural(len(keys), "scheduling key"),
                    self.cronofy_conn_id,
                )
            return results


class CancelIntegratedMeetingAgentOperator(_MeetingAgentOperator):
    """Cancel the Meeting Agents of calendar events: of one calendar, or of many in one task.

    By default removes the agent and keeps the event: ``POST /v1/calendars/{calendar_id}/events``
    with ``{"event_id": ..., "meeting_agent": {"profile_id": "none"}}``. With
    ``delete_event=True`` deletes the event instead (``DELETE /v1/calendars/{calendar_id}/events``
    with ``{"event_id": ...}``), which cancels its agent too. Authorised by the connection's access
    token, refreshed by the hook when the connection has ``client_id`` and ``refresh_token``.

    Give either ``calendar_id`` + ``event_id`` (one calendar) or ``events`` (any calendars of the
    connection's account); both, or neither, is refused before anything is sent.

    :param calendar_id: the calendar holding the events (templated).
    :param event_id: one event id, or a list or tuple of them (templated); duplicates once; an
        empty list sends nothing and succeeds. One string holding a comma is refused, as for
        ``scheduling_key`` of the other operator.
    :param events: a list of ``{"calendar_id": ..., "event_id": ...}`` dicts (templated; an
        upstream task's XCom of warehouse rows is the everyday case; other keys of a dict are
        ignored). Every entry is checked before the first request, and the error names each bad
        one by its position; the same calendar and event twice are sent once; an empty list sends
        nothing and succeeds. The events go 50 to a ``POST /v1/batch`` whatever their calendars
        (with ``use_batch=False``, one request per event to its own calendar). An unknown
        calendar (Cronofy answers 404) fails that calendar's events only: each is listed, and
        those not sent yet when the 404 came back fail without being sent (their reason begins
        ``not sent:``); the other calendars' events go on. A 401, 402, 403, 423 or a refused
        refresh token still stops the whole run: the token is the account's.
    :param delete_event: delete the events instead of removing their agents (a bool).
    :param cronofy_conn_id: the ``cronofy`` connection to use (templated): one per Cronofy
        account; map the operator over it to cancel for many accounts.
    :param max_concurrency: requests in flight at once, 1 to 100; ``None`` (default) uses the
        connection's ``max_concurrency`` extra, or the
        per-second rate limit (50 by default; 20 with pacing per second off).
    :param use_batch: send the events 50 to a ``POST /v1/batch`` (default), each entry the same
        request as above; ``False`` sends one request per event.
    :param dry_run: check the input and the connection (its settings, and an access token or
        what refreshing one needs) exactly as a real run would, log what would be sent (the
        batches, or one request per event) and an estimate of its pacing (and deferrals), and
        send nothing (no token refresh either); the return value is then ``{"would_cancel": [event ids
        in input order, duplicates once]}`` (with ``events``: ``[{"calendar_id", "event_id"}]``).
    :param deferrable: free the worker slot while the run waits for the rate limit's next window
        (the triggerer waits instead); default: the ``[operators] default_deferrable`` setting.
        See :mod:`airflow_provider_cronofy.operators.deferral`.
    :param defer_after: seconds (a number above 0, default 10): a deferrable run defers when its
        next allowed send is further away than this, and sends on in the worker otherwise.

    :return: (the XCom) ``{"cancelled": [event ids]}`` in input order; with ``events``,
        ``{"cancelled": [{"calendar_id", "event_id"}, ...]}`` in input order.
    :raises CronofyInputError: an argument is invalid (nothing is sent).
    :raises CronofyBulkError: some events failed after retries; the error lists each one. With
        ``calendar_id``, a 404 (the calendar is unknown or not accessible to the token), 401, 402,
        403 or 423 stops the run (a ``CronofyFatalBulkError``); with ``events``, a 404 fails only
        its calendar's events. What did succeed is in the error's ``results`` and the XCom
        ``partial_result``, each failure (item, status, reason) in the error's ``failures`` and
        the XCom ``failures``; with ``events`` these hold ``{"calendar_id", "event_id"}`` dicts
        (the XCom ``failures``: ``{"calendar_id", "event_id", "status_code", "reason"}``).
    """

    template_fields: Sequence[str] = ("calendar_id", "event_id", "events", "cronofy_conn_id")
    template_fields_renderers = {"event_id": "json", "events": "json"}  # noqa: RUF012 - as BaseOperator declares it

    def __init__(
        self,
        *,
        calendar_id: str | None = None,
        event_id: str | Sequence[str] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
        delete_event: bool = False,
        use_batch: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.calendar_id = calendar_id
        self.event_id = event_id
        self.events = events
        self.delete_event = delete_event
        self.use_batch = use_batch

    def execute(self, context: Any, resume: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
        """Remove the agent from (or delete) every event; return ``{"cancelled": [...]}``.

        ``resume`` is the state a deferred run carries (see :meth:`execute_complete`).
        """
        delete_event = check_bool("delete_event", self.delete_event)
        use_batch = check_bool("use_batch", self.use_batch)
        dry_run = self._check_shared_arguments()
        if self._check_form():
            return self._execute_events(context, resume, delete_event, use_batch, dry_run)
        segment = calendar_path_segment(self.calendar_id)
        event_ids = normalise_items("event_id", self.event_id)
        if not event_ids and not dry_run:
            self.log.info("No event ids given: nothing to cancel.")
            return {"cancelled": []}
        calendar_id = self.calendar_id
        assert isinstance(calendar_id, str)  # calendar_path_segment checked it
        with _hook(self.cronofy_conn_id, self.max_concurrency) as hook:
            hook.validate()  # the connection, before the first request
            hook.require_calendar_credentials()
            job = hook.event_cancellation_job(calendar_id, delete_event=delete_event, use_batch=use_batch)
            if dry_run:
                sends = event_requests(
                    job, hook.base_url, f"/v1/calendars/{segment}/events", len(event_ids), "item"
                )
                notes = [
                    self._estimate(hook, job, len(event_ids)),
                    unknowable_calendars([calendar_id], across=False),
                ]
                return _dry_run(self.log, sends, "event_id", event_ids, notes)
            return self._cancel_all(
                context,
                hook,
                job,
                event_ids,
                resume=resume,
                result_values={"cancelled": None},
                # The outcomes carried belong to this calendar and this action too.
                subject=f"event_id of {calendar_id} delete_event={delete_event}",
                name="event ids",
                noun=f"event of calendar {calendar_id!r}",
                noun_plural=f"events of calendar {calendar_id!r}",
            )

    def _check_form(self) -> bool:
        """Whether ``events`` is given; raise :class:`CronofyInputError` for both forms or neither.

        Without ``events``, ``calendar_id`` and ``event_id`` are checked as they always were.
        """
        given = [name for name in ("calendar_id", "event_id") if getattr(self, name) is not None]
        if self.events is not None and given:
            raise CronofyInputError(
                f"Give either events or calendar_id + event_id, not both (got events and "
                f"{' and '.join(given)}); nothing was sent."
            )
        if self.events is None and not given:
            raise CronofyInputError(
                'Give events (a list of {"calendar_id": ..., "event_id": ...} dicts) or calendar_id '
                "+ event_id; none of them was given. Nothing was sent."
            )
        return self.events is not None

    def _execute_events(
        self,
        context: Any,
        resume: Mapping[str, Any] | None,
        delete_event: bool,
        use_batch: bool,
        dry_run: bool,
    ) -> dict[str, list[Any]]:
        events = normalise_events(self.events)
        if not events and not dry_run:
            self.log.info("No events given: nothing to cancel.")
            return {"cancelled": []}
        with _hook(self.cronofy_conn_id, self.max_concurrency) as hook:
            hook.validate()  # the connection, before the first request
            hook.require_calendar_credentials()
            job = hook.cross_calendar_cancellation_job(delete_event=delete_event, use_batch=use_batch)
            if dry_run:
                calendars = list(dict.fromkeys(calendar_id for calendar_id, _ in events))
                sends = event_requests(
                    job,
                    hook.base_url,
                    "/v1/calendars/{calendar_id}/events",
                    len(events),
                    "event",
                    calendars=len(calendars),
                )
                notes = [
                    self._estimate(hook, job, len(events)),
                    unknowable_calendars(calendars, across=True),
                ]
                return dry_run_events(self.log, sends, events, notes)
            return self._cancel_all(
                context,
                hook,
                job,
                events,
                resume=resume,
                result_values={"cancelled": None},
                # The fingerprint covers each (calendar_id, event_id); the action counts too.
                subject=f"events delete_event={delete_event}",
                name="events",
                noun="event",
                events=True,
            )

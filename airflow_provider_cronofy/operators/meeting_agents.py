"""Operators that schedule and cancel Cronofy Meeting Agents from a DAG.

Each checks every argument before the first request, sends the whole list through the hook's bulk
runner and fails with one error listing every failed item after attempting all the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_cronofy.agent_rows import normalise_agents
from airflow_provider_cronofy.exceptions import CronofyInputError, ItemFailure, cause_lines, event_cause_lines
from airflow_provider_cronofy.operators.bulk import BulkOperator, Tally
from airflow_provider_cronofy.validation import (
    EventKey,
    calendar_path_segment,
    check_bool,
    normalise_events,
    normalise_items,
)
from airflow_provider_cronofy.wording import plural

if TYPE_CHECKING:
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook
    from airflow_provider_cronofy.hooks.runner import BulkRun, Report

UNKNOWABLE_CALENDARS_NAMED = 5
"""A dry run's note names this many calendars, then says how many more."""


class CancelScheduledMeetingAgentOperator(BulkOperator):
    """Cancel scheduled Meeting Agents by their ``scheduling_key``.

    Sends ``DELETE /v1/meeting_agents`` once per distinct key, authorised by the connection's API
    key (its password), with up to ``max_concurrency`` requests in flight under the pacer.

    :param scheduling_key: one key, or a list or tuple of keys (templated). Keys are sent exactly
        as given; duplicates once; an empty list sends nothing and succeeds. One string holding a
        comma (``"k1,k2"``) is refused as several keys joined together: pass a list (a key that
        really holds a comma goes in a one-item list).
    :param cronofy_conn_id: the ``cronofy`` connection to use (templated).
    :param max_concurrency: requests in flight at once, 1 to 100; ``None`` (default) uses the
        connection's ``max_concurrency`` extra, or the per-second rate limit (50 by default; 20
        with pacing per second off).
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
    outcome_names = ("cancelled", "not_found")
    dry_run_field = "scheduling_key"

    def __init__(self, *, scheduling_key: str | Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scheduling_key = scheduling_key

    def noun(self) -> tuple[str, str | None]:
        return "scheduling key", None

    def subject(self) -> str:
        return "scheduling_key"

    def start(self, hook: CronofyHook, items: Sequence[Any], tally: Tally, report: Report) -> BulkRun:
        return hook.scheduled_cancellation(items, report)

    def execute(self, context: Any, resume: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
        """Cancel every key; return ``{"cancelled": [...], "not_found": [...]}``.

        ``resume`` is the state a deferred run carries (see :meth:`execute_complete`).
        """
        dry_run = self.check_shared_arguments()
        keys = normalise_items("scheduling_key", self.scheduling_key)
        if not keys and not dry_run:
            self.log.info("No scheduling keys given: nothing to cancel.")
            return {"cancelled": [], "not_found": []}
        with self.hook() as hook:
            hook.validate()  # the connection, before the first request
            hook.require_api_key()
            if dry_run:
                unknowable = (
                    "nothing was sent, so it cannot tell which of these keys are scheduled: "
                    "would_cancel lists every key given; a real run reports those Cronofy answers "
                    "404 for as not_found."
                )
                sends = f"DELETE {hook.base_url}/v1/meeting_agents for {plural(len(keys), 'item')}"
                return self.log_dry_run(hook, keys, sends, [unknowable])
            results = self.send_all(context, hook, keys, resume)
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


class CancelIntegratedMeetingAgentOperator(BulkOperator):
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
        those not sent yet when the 404 came back fail without being sent (``sent`` is ``False``
        in their :class:`~airflow_provider_cronofy.exceptions.ItemFailure`); the other calendars'
        events go on. A 401, 402, 403, 423 or a refused refresh token (the account's) stops the run.
    :param delete_event: delete the events instead of removing their agents (a bool).
    :param cronofy_conn_id: the ``cronofy`` connection to use (templated): one per Cronofy
        account; map the operator over it to cancel for many accounts.
    :param max_concurrency: requests in flight at once, 1 to 100; ``None`` (default) uses the
        connection's ``max_concurrency`` extra, or the per-second rate limit (50 by default; 20
        with pacing per second off).
    :param use_batch: send the events 50 to a ``POST /v1/batch`` (default), each entry the same
        request as above; ``False`` sends one request per event.
    :param dry_run: check the input and the connection (its settings, and an access token or
        what refreshing one needs) exactly as a real run would, log what would be sent (the
        batches, or one request per event) and an estimate of its pacing (and deferrals), and
        send nothing (no token refresh either); the return value is then ``{"would_cancel": [event
        ids in input order, duplicates once]}`` (with ``events``: ``[{"calendar_id", "event_id"}]``).
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
    dry_run_field = "event_id"

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
        self._one_calendar: str | None = None  # set by execute: the calendar_id form's calendar

    # The calendar_id + event_id form is the events form of one calendar, but for its edges: its
    # items read as event ids, and a 404 (the calendar is unknown) stops the run.

    def noun(self) -> tuple[str, str | None]:
        if self._one_calendar is None:
            return "event", None
        return f"event of calendar {self._one_calendar!r}", f"events of calendar {self._one_calendar!r}"

    def subject(self) -> str:
        return f"events delete_event={check_bool('delete_event', self.delete_event)}"

    def present(self, item: EventKey) -> Any:
        calendar_id, event_id = item
        return (
            event_id if self._one_calendar is not None else {"calendar_id": calendar_id, "event_id": event_id}
        )

    @property
    def stopped_noun(self) -> str:  # type: ignore[override]
        return "item" if self._one_calendar is not None else "event"

    def cause_lines(self, failures: list[ItemFailure]) -> list[str]:
        return cause_lines(failures) if self._one_calendar is not None else event_cause_lines(failures)

    def show(self, item: EventKey) -> str:
        if self._one_calendar is not None:
            return f"event_id={item[1]!r}"
        return f"calendar_id={item[0]!r} event_id={item[1]!r}"

    def unit(self, hook: CronofyHook) -> Any:
        return hook.event_cancellation_job(delete_event=self.delete_event, use_batch=self.use_batch)

    def start(self, hook: CronofyHook, items: Sequence[Any], tally: Tally, report: Report) -> BulkRun:
        # A calendar that answered 404 earlier in the run (before a deferral too) is not asked again.
        unknown = {f.item[0] for f in tally.failures.values() if f.status_code == 404}
        return hook.event_cancellation(
            items,
            delete_event=self.delete_event,
            use_batch=self.use_batch,
            unknown_calendars=unknown,
            report=report,
        )

    def after_segment(self, tally: Tally) -> None:
        if self._one_calendar is None or not any(f.status_code == 404 for f in tally.failures.values()):
            return
        # One calendar: its 404 is every other event's answer too, so the run stops; the events
        # failed without being sent were not attempted.
        unsent = sorted(index for index, failure in tally.failures.items() if not failure.sent)
        for index in unsent:
            del tally.failures[index]
        tally.not_attempted = sorted(
            {*tally.not_attempted, *unsent, *range(tally.position, len(tally.outcomes))}
        )
        tally.stopped = True
        tally.position = len(tally.outcomes)

    def execute(self, context: Any, resume: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
        """Remove the agent from (or delete) every event; return ``{"cancelled": [...]}``.

        ``resume`` is the state a deferred run carries (see :meth:`execute_complete`).
        """
        self.delete_event = check_bool("delete_event", self.delete_event)
        self.use_batch = check_bool("use_batch", self.use_batch)
        dry_run = self.check_shared_arguments()
        events = self._events()
        if not events and not dry_run:
            self.log.info(
                "No %s given: nothing to cancel.", "event ids" if self._one_calendar is not None else "events"
            )
            return {"cancelled": []}
        with self.hook() as hook:
            hook.validate()  # the connection, before the first request
            hook.require_calendar_credentials()
            if dry_run:
                return self._dry_run(hook, events)
            return self.send_all(context, hook, events, resume)

    def _events(self) -> list[EventKey]:
        """The events to cancel, of either form; raise :class:`CronofyInputError` for both forms or neither."""
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
        if self.events is not None:
            self._one_calendar = None
            return normalise_events(self.events)
        calendar_path_segment(self.calendar_id)
        assert isinstance(self.calendar_id, str)  # calendar_path_segment checked it
        self._one_calendar = self.calendar_id
        return [(self.calendar_id, event_id) for event_id in normalise_items("event_id", self.event_id)]

    def _dry_run(self, hook: CronofyHook, events: list[EventKey]) -> dict[str, list[Any]]:
        calendars = list(dict.fromkeys(calendar_id for calendar_id, _ in events))
        one = self._one_calendar
        method = "DELETE" if self.delete_event else "POST"
        path = (
            f"/v1/calendars/{calendar_path_segment(one)}/events"
            if one is not None
            else "/v1/calendars/{calendar_id}/events"
        )
        what = plural(len(events), "item" if one is not None else "event")
        if one is None:
            what += f" across {plural(len(calendars), 'calendar')}"
        job = self.unit(hook)
        if self.use_batch:
            batches = -(-len(events) // job.unit_size)
            mixed = ", calendars mixed" if one is None and len(calendars) > 1 else ""
            sends = (
                f"POST {hook.base_url}/v1/batch for {what} ({plural(batches, 'batch', 'batches')} of up to "
                f"{job.unit_size} events{mixed}, each entry a {method} {path})"
            )
        else:
            sends = f"{method} {hook.base_url}{path} for {what} (one request per event)"
        named = ", ".join(repr(calendar_id) for calendar_id in calendars[:UNKNOWABLE_CALENDARS_NAMED])
        if len(calendars) > UNKNOWABLE_CALENDARS_NAMED:
            named += f" and {len(calendars) - UNKNOWABLE_CALENDARS_NAMED} more"
        subject = f"calendar {named} exists" if len(calendars) == 1 else f"calendars {named} exist"
        outcome = (
            "stops at an unknown calendar"
            if one is not None
            else "fails the events of an unknown calendar and goes on with the others"
        )
        unknowable = (
            f"nothing was sent, so it cannot tell whether {subject} or the events are there: "
            f"would_cancel lists every event given; a real run {outcome} (Cronofy answers 404)."
        )
        return self.log_dry_run(hook, events, sends, [unknowable])


class ScheduleMeetingAgentOperator(BulkOperator):
    """Schedule Meeting Agents to join meetings, each cancellable later by its ``scheduling_key``.

    Sends, per agent, ``DELETE /v1/meeting_agents`` for its key and then ``POST
    /v1/meeting_agents`` with ``scheduling_key``, ``join_url``, ``join_time`` (in UTC) and the
    optional fields, authorised by the connection's API key, with up to ``max_concurrency``
    agents in flight under the pacer. Cancelling first means a key never has two agents, whatever
    Cronofy does with a repeated key and however often the task runs, one writer per key at a
    time (``max_active_runs=1``); an agent whose answer was lost is retried as the same pair (see
    :mod:`airflow_provider_cronofy.hooks.meeting_agents` and docs/howto/scheduling.md).

    :param agents: a list of dicts (templated; an upstream task's XCom of warehouse rows is the
        everyday case), each with ``scheduling_key``, ``join_url`` (``https://``), ``join_time``
        (an ISO 8601 string with a zone, or an aware ``datetime``, in the future) and optionally
        ``on_behalf_of_attendee`` (``{"email": ...}``) and ``subscriptions``. Other keys of a row
        are ignored and never sent. Every entry is checked before the first request and each bad
        one is named by position and field; a key given twice for the same meeting is sent once,
        for two different meetings refused. An empty list sends nothing and succeeds.
    :param cronofy_conn_id: the ``cronofy`` connection to use (templated).
    :param max_concurrency: agents in flight at once, 1 to 100; ``None`` (default) uses the
        connection's ``max_concurrency`` extra, or the per-second rate limit.
    :param dry_run: check the input and the connection as a real run would, log what would be
        sent (two requests per agent) and an estimate of its pacing, and send nothing; the return
        value is then ``{"would_schedule": [keys in input order]}``.
    :param deferrable: free the worker slot while the run waits for the rate limit's next window.
    :param defer_after: seconds (above 0, default 10): a deferrable run defers when its next
        allowed send is further away than this.

    :return: (the XCom) ``{"scheduled": [keys in input order]}``.
    :raises CronofyInputError: an argument is invalid (nothing is sent).
    :raises CronofyBulkError: some agents failed after retries; every other agent was attempted
        (unless a 401/402/403/423 stopped the run: then a ``CronofyFatalBulkError``). What did
        succeed is in the XCom ``partial_result`` (``{"scheduled": [...]}``); each failure in
        the XCom ``failures`` (``{"scheduling_key", "status_code", "reason"}``); keys never sent
        in ``not_attempted``. A key whose answer was lost is failed with its state unknown: it
        has at most one agent; re-running the task settles it.
    """

    template_fields: Sequence[str] = ("agents", "cronofy_conn_id")
    template_fields_renderers = {"agents": "json"}  # noqa: RUF012 - as BaseOperator declares it
    outcome_names = ("scheduled",)
    dry_run_field = "scheduling_key"
    dry_run_verb = "schedule"

    def __init__(self, *, agents: Sequence[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.agents = agents

    def noun(self) -> tuple[str, str | None]:
        return "agent", None

    def subject(self) -> str:
        return "agents"

    def present(self, item: Mapping[str, Any]) -> Any:
        return item["scheduling_key"]

    def failure_fields(self, item: Any) -> dict[str, Any]:
        return {"scheduling_key": item}

    def show(self, item: Mapping[str, Any]) -> str:
        # The join_url's path and query may hold the meeting's passcode: the host only.
        host = urlsplit(item["join_url"]).hostname
        return f"scheduling_key={item['scheduling_key']!r} join_time={item['join_time']} join_url=https://{host}/..."

    def unit(self, hook: CronofyHook) -> Any:
        return hook.agent_scheduling_job()

    def start(self, hook: CronofyHook, items: Sequence[Any], tally: Tally, report: Report) -> BulkRun:
        return hook.agent_scheduling(items, report)

    def execute(self, context: Any, resume: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
        """Schedule every agent; return ``{"scheduled": [keys]}``.

        ``resume`` is the state a deferred run carries (see :meth:`execute_complete`).
        """
        dry_run = self.check_shared_arguments()
        # A resumed run checks the list against the carried fingerprint, not against the clock.
        now = datetime.fromtimestamp(0, timezone.utc) if resume is not None else datetime.now(timezone.utc)
        agents = normalise_agents(self.agents, now=now)
        if not agents and not dry_run:
            self.log.info("No agents given: nothing to schedule.")
            return {"scheduled": []}
        with self.hook() as hook:
            hook.validate()  # the connection, before the first request
            hook.require_api_key()
            if dry_run:
                sends = (
                    f"DELETE then POST {hook.base_url}/v1/meeting_agents for {plural(len(agents), 'agent')} "
                    "(its key cancelled first, so that it never has two agents)"
                )
                return self.log_dry_run(hook, agents, sends, [])
            return self.send_all(context, hook, agents, resume)

"""CronofyHook: the Cronofy calls (Meeting Agents, events, any endpoint) on an Airflow connection.

Each action is a method for one item and one for a whole list (a :class:`~.runner.BulkRun`). No
API key or token is ever put into a log line or an exception message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_cronofy.agent_rows import normalise_agents
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyFatalAPIError
from airflow_provider_cronofy.hooks.connection import CronofyConnection
from airflow_provider_cronofy.hooks.connection_form import connection_form_widgets, ui_field_behaviour
from airflow_provider_cronofy.hooks.error_messages import json_or_none
from airflow_provider_cronofy.hooks.events import (
    EventCancellation,
    event_cancellation_job,
    events_path,
)
from airflow_provider_cronofy.hooks.meeting_agents import AgentScheduling, ScheduledCancellation
from airflow_provider_cronofy.hooks.runner import BulkRun, Job, PerItem, Report, RunResult, RunSettings
from airflow_provider_cronofy.hooks.tokens import Sender
from airflow_provider_cronofy.hooks.transport import Reply, Request, RetryLater
from airflow_provider_cronofy.validation import (
    EventKey,
    check_choice,
    check_json_body,
    check_method,
    check_request_path,
    validate_item,
)

AUTH_MODES = ("api_key", "access_token")

log = logging.getLogger(__name__)


class CronofyHook(CronofyConnection):
    """Talk to Cronofy's API with the credentials of an Airflow connection of type ``cronofy``.

    The connection: ``password`` is the application's API key (its client secret); extras
    ``data_center`` (``us`` default, ``au``, ``ca``, ``de``, ``sg``, ``uk``), ``access_token``,
    ``client_id`` + ``refresh_token`` (to refresh access tokens), ``timeout``, ``max_retries``,
    ``rate_limit_per_second``, ``rate_limit_per_minute``, ``max_concurrency``,
    ``batch_rate_cost``; ``host`` optionally replaces the data center's base URL (``https://``
    only, ``http://`` for loopback hosts).

    :param cronofy_conn_id: the Airflow connection to use.
    :param data_center: overrides the connection's ``data_center`` extra.
    :param timeout: seconds, overrides the connection's ``timeout`` extra (connect and read).
    :param max_retries: retries after the first attempt, overrides the ``max_retries`` extra.
    :param rate_limit_per_second: overrides the extra of that name (``0`` turns pacing off).
    :param rate_limit_per_minute: overrides the extra of that name (``0`` turns pacing off).
    :param max_concurrency: requests a bulk run keeps in flight, overrides the extra of that name.

    Use it as a context manager, or call :meth:`close`, to close its HTTP session. A hook may be
    shared by threads: the session, the pacer, token refreshes and the counters are thread-safe.
    The connection side (settings, credentials, session, counters, connection test) is
    :class:`~airflow_provider_cronofy.hooks.connection.CronofyConnection`'s.
    """

    def __enter__(self) -> CronofyHook:
        return self

    # Airflow 2.11's ProvidersManager reads these two only from the hook class's own __dict__.

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields for Airflow 2.11, 3.0 and 3.1 (3.2+ reads the provider info)."""
        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields of the form, for Airflow 2.11, 3.0 and 3.1."""
        return ui_field_behaviour()

    # ------------------------------------------------------------------ any endpoint

    def request(self, method: str, path: str, *, json: Any = None, auth: str = "api_key") -> Any:
        """Call any Cronofy endpoint with the hook's pacing, retries, timeouts and masking.

        Sends ``method`` to ``base_url + path`` with ``json`` as the body (none when ``None``),
        authorised by the connection's API key (``auth="api_key"``) or its access token
        (``auth="access_token"``; refreshed once on a 401 when the connection can refresh).
        429, 5xx, timeouts and dropped connections are retried (``Retry-After`` honoured).

        :param method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE`` (any case).
        :param path: the path from the base URL, e.g. ``/v1/userinfo`` or ``/v1/events?tzid=Etc/UTC``.
        :return: the decoded JSON body of a 2xx answer, ``None`` when it is empty.
        :raises CronofyInputError: ``method``, ``path``, ``json`` or ``auth`` is unusable (nothing sent).
        :raises CronofyConfigError: the connection lacks the credential ``auth`` names.
        :raises CronofyAPIError: any other answer (a :class:`CronofyFatalAPIError` for 401, 402,
            403 and 423), or no answer after every retry.
        """
        verb = check_method(method)
        check_request_path(path)
        check_choice("auth", auth, AUTH_MODES)
        check_json_body(json)
        sender = self.sender(auth)
        sender.token()  # the credential, before anything is sent
        return self.call(EndpointCall(sender, Request(verb, path, json, None)), None)

    def call(self, job: Job, item: Any) -> Any:
        """Run ``job`` for one ``item`` with the hook's retries (sleeping :attr:`sleep` between
        them); return its outcome, or raise its error."""
        policy = self.retry_policy()
        never = threading.Event()
        attempts = 1
        while True:
            (result,) = job([item], never)
            if not isinstance(result, RetryLater):
                break
            if not policy.may_retry(attempts):
                result = result.give_up(attempts)
                break
            delay = policy.delay(attempts, result)
            attempts += 1
            self.transport.note_retry(result.what, result, delay, attempts)
            self.sleep(delay)
        if isinstance(result, CronofyAPIError):
            # The last guard: Cronofy's detail is kept as it answered, and may echo a credential.
            result.args = (self.redact(str(result)),)
            result.errors = self.tokens().redact_all(result.errors)
        if isinstance(result, BaseException):
            raise result
        return result

    def _bulk_run(self, items: Sequence[Any], job: Job, unit_size: int, report: Report) -> BulkRun:
        policy = self.retry_policy()  # its sleep: a replaced one (tests), or None (the run's stop event)
        settings = RunSettings(self.settings.max_concurrency, policy, unit_size, self.clock, policy.sleep)
        run = BulkRun(items, job, settings, report)
        self._runs.append(run)
        return run

    # ------------------------------------------------------------------ the Meeting Agent calls

    def cancel_scheduled_meeting_agent(self, scheduling_key: str) -> bool:
        """Cancel the Meeting Agent scheduled with ``scheduling_key``.

        Sends ``DELETE /v1/meeting_agents`` with ``{"scheduling_key": ...}``, authorised by the
        connection's API key.

        :return: ``True`` when Cronofy accepted the cancellation (202), ``False`` when it answered
            404 (no such agent: never scheduled, or already cancelled).
        :raises CronofyInputError: ``scheduling_key`` is not a non-blank string (nothing is sent).
        :raises CronofyConfigError: the connection has no API key (nothing is sent).
        :raises CronofyAPIError: any other answer, after retries where they apply.
        """
        validate_item("scheduling_key", scheduling_key)
        return self.call(ScheduledCancellation(self._api_key_sender()), scheduling_key) == "cancelled"

    def scheduled_cancellation(self, keys: Sequence[str], report: Report | None = None) -> BulkRun:
        """The bulk run cancelling the agents of ``keys`` (checked by the caller); :meth:`~.runner.BulkRun.run`
        sends it. Each outcome is ``"cancelled"`` (202) or ``"not_found"`` (404).

        :raises CronofyConfigError: the connection has no API key (nothing is sent).
        """
        job = ScheduledCancellation(self._api_key_sender())
        return self._bulk_run(keys, job, 1, report or Report(log, "scheduling key"))

    def cancel_scheduled(self, keys: Sequence[str]) -> RunResult:
        """Cancel the agents of every key of ``keys``; return the run's result (see :meth:`scheduled_cancellation`)."""
        return self.scheduled_cancellation(keys).run()

    def schedule_meeting_agent(
        self,
        scheduling_key: str,
        join_url: str,
        join_time: str | datetime,
        *,
        on_behalf_of_attendee: Mapping[str, Any] | None = None,
        subscriptions: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Schedule a Meeting Agent to join ``join_url`` at ``join_time``, cancellable by ``scheduling_key``.

        Sends ``DELETE /v1/meeting_agents`` for the key, then ``POST /v1/meeting_agents``,
        authorised by the connection's API key, so that the key never has two agents (see
        :mod:`.scheduling`). The arguments are checked as
        :func:`~airflow_provider_cronofy.agent_rows.normalise_agents` checks a row.

        :raises CronofyInputError: an argument is invalid (nothing is sent).
        :raises CronofyConfigError: the connection has no API key (nothing is sent).
        :raises CronofyAPIError: Cronofy refused, or its answer was lost after every retry (the
            message says the agent's state is then unknown).
        """
        row: dict[str, Any] = {"scheduling_key": scheduling_key, "join_url": join_url, "join_time": join_time}
        row.update(on_behalf_of_attendee=on_behalf_of_attendee, subscriptions=subscriptions)
        (agent,) = normalise_agents([row], now=datetime.now(timezone.utc))
        self.call(self.agent_scheduling_job(), agent)

    def agent_scheduling(self, agents: Sequence[Mapping[str, Any]], report: Report | None = None) -> BulkRun:
        """The bulk run scheduling ``agents`` (bodies checked by
        :func:`~airflow_provider_cronofy.agent_rows.normalise_agents`); :meth:`~.runner.BulkRun.run`
        sends it. Each outcome is ``"scheduled"``. See :mod:`.scheduling`.

        :raises CronofyConfigError: the connection has no API key (nothing is sent).
        """
        return self._bulk_run(agents, self.agent_scheduling_job(), 1, report or Report(log, "agent"))

    def schedule_agents(self, agents: Sequence[Mapping[str, Any]]) -> RunResult:
        """Schedule every agent of ``agents`` (see :meth:`agent_scheduling`); return the run's result."""
        return self.agent_scheduling(agents).run()

    def agent_scheduling_job(self) -> AgentScheduling:
        """The runner's job scheduling agents, cancel then schedule (see :mod:`.scheduling`)."""
        return AgentScheduling(self._api_key_sender())

    def _api_key_sender(self) -> Sender:
        sender = self.sender("api_key")
        sender.token()  # the API key, before anything is sent
        return sender

    def remove_meeting_agent_from_event(self, calendar_id: str, event_id: str) -> None:
        """Remove the Meeting Agent from an event, keeping the event.

        Sends ``POST /v1/calendars/{calendar_id}/events`` with
        ``{"event_id": ..., "meeting_agent": {"profile_id": "none"}}``, authorised by the
        connection's access token (refreshed first when the connection can refresh and has none).

        :raises CronofyInputError: an argument is not a usable string (nothing is sent).
        :raises CronofyConfigError: the connection has no access token and cannot get one.
        :raises CronofyAPIError: Cronofy refused (404: the calendar is unknown or not accessible
            to the token; 403: the token lacks the ``create_event`` scope), after retries.
        """
        self._cancel_event(calendar_id, event_id, delete_event=False)

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Delete an event, which also cancels its Meeting Agent.

        Sends ``DELETE /v1/calendars/{calendar_id}/events`` with ``{"event_id": ...}``, authorised
        by the connection's access token.

        :raises CronofyInputError: an argument is not a usable string (nothing is sent).
        :raises CronofyConfigError: the connection has no access token and cannot get one.
        :raises CronofyAPIError: Cronofy refused (404: the calendar is unknown or not accessible
            to the token; 403: the token lacks the ``delete_event`` scope), after retries.
        """
        self._cancel_event(calendar_id, event_id, delete_event=True)

    def _cancel_event(self, calendar_id: str, event_id: str, *, delete_event: bool) -> None:
        events_path(calendar_id)  # the calendar is checked first
        validate_item("event_id", event_id)
        job = self.event_cancellation_job(delete_event=delete_event, use_batch=False)
        try:
            self.call(job, (calendar_id, event_id))
        except CronofyAPIError as error:
            if error.status_code == 404:  # the calendar is unknown: every call would meet it
                raise CronofyFatalAPIError(
                    str(error), status_code=404, errors=error.errors, item=error.item
                ) from None
            raise

    def event_cancellation(
        self,
        events: Sequence[EventKey],
        *,
        delete_event: bool = False,
        use_batch: bool = True,
        unknown_calendars: Iterable[str] = (),
        report: Report | None = None,
    ) -> BulkRun:
        """The bulk run cancelling the agents of ``events`` (``(calendar_id, event_id)``, checked by
        the caller) of any calendars; :meth:`~.runner.BulkRun.run` sends it. See :mod:`.events`.

        Each outcome is ``"cancelled"``; a 404 fails only its calendar's events, and
        ``unknown_calendars`` (known to answer 404) fail without being sent.

        :raises CronofyConfigError: the connection has no access token and cannot get one.
        """
        job = self.event_cancellation_job(
            delete_event=delete_event, use_batch=use_batch, unknown_calendars=unknown_calendars
        )
        return self._bulk_run(events, job, job.unit_size, report or Report(log, "event"))

    def cancel_events(
        self, events: Sequence[EventKey], *, delete_event: bool = False, use_batch: bool = True
    ) -> RunResult:
        """Cancel the agents of ``events`` (see :meth:`event_cancellation`); return the run's result."""
        return self.event_cancellation(events, delete_event=delete_event, use_batch=use_batch).run()

    def event_cancellation_job(
        self, *, delete_event: bool, use_batch: bool, unknown_calendars: Iterable[str] = ()
    ) -> EventCancellation:
        self.require_calendar_credentials()
        return event_cancellation_job(
            self.sender("access_token"),
            self.settings,
            delete_event=delete_event,
            use_batch=use_batch,
            unknown_calendars=unknown_calendars,
        )


class EndpointCall(PerItem):
    """The job of :meth:`CronofyHook.request`: one ``request``; a 2xx's JSON body (``None`` when
    empty) is its outcome."""

    def __init__(self, sender: Sender, request: Request) -> None:
        super().__init__(sender)
        self._request = request

    def request(self, item: Any) -> Request:
        return self._request

    def read(self, reply: Reply, item: Any) -> Any:
        if not 200 <= reply.status < 300:
            return self.sender.error(reply, None)
        if not reply.body.strip():
            return None
        payload = json_or_none(reply.body)
        if payload is None:
            request = self._request
            return CronofyAPIError(
                f"Cronofy answered {reply.status} to {request.method} {request.path} with a body that is not JSON.",
                status_code=reply.status,
            )
        return payload

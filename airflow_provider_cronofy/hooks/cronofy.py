"""CronofyHook: the Cronofy calls (Meeting Agents, tokens, any endpoint) on an Airflow connection.

One method per Cronofy action, for one item and for a whole list: the list methods hand the
items to the bulk runner (:mod:`.runner`) with the action's job and return its
:class:`~.runner.RunResult`. The connection's settings live in :mod:`.settings`, the HTTP
machinery in :mod:`.transport`, the credentials in :mod:`.tokens`, the event calls in
:mod:`.events`. No API key or token is ever put into a log line or an exception message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import requests

from airflow_provider_cronofy._compat import BaseHook, mask_secret
from airflow_provider_cronofy.agent_rows import normalise_agents
from airflow_provider_cronofy.exceptions import (
    CronofyAPIError,
    CronofyConfigError,
    CronofyError,
    CronofyFatalAPIError,
)
from airflow_provider_cronofy.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_cronofy.hooks import connection_check, error_messages
from airflow_provider_cronofy.hooks.connection_form import connection_form_widgets, ui_field_behaviour
from airflow_provider_cronofy.hooks.error_messages import Where, json_or_none
from airflow_provider_cronofy.hooks.events import BATCH_MAX_ENTRIES, EventCancellation, EventKey, events_path
from airflow_provider_cronofy.hooks.pacing import RequestPacer, shared_pacer
from airflow_provider_cronofy.hooks.runner import (
    BulkRun,
    Job,
    PerItem,
    Report,
    RunResult,
    RunSettings,
)
from airflow_provider_cronofy.hooks.scheduling import AgentScheduling
from airflow_provider_cronofy.hooks.settings import CronofySettings, read_credentials, resolve_settings
from airflow_provider_cronofy.hooks.tokens import AccessTokens, Sender
from airflow_provider_cronofy.hooks.transport import (
    Reply,
    Request,
    RetryLater,
    RetryPolicy,
    Transport,
    open_session,
)
from airflow_provider_cronofy.validation import (
    check_choice,
    check_json_body,
    check_method,
    check_request_path,
    validate_item,
)

AUTH_MODES = ("api_key", "access_token")

log = logging.getLogger(__name__)


class CronofyHook(BaseHook):
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
    """

    conn_name_attr = "cronofy_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "cronofy"
    hook_name = "Cronofy"

    retry_backoff = 0.5
    """First back-off in seconds when Cronofy gives no ``Retry-After``; doubles on each retry."""
    retry_backoff_max = 30.0
    """Longest back-off in seconds between two attempts when Cronofy gives no ``Retry-After``."""
    max_retry_after = 300.0
    """A ``Retry-After`` longer than this many seconds fails the item instead of sleeping."""

    def __init__(
        self,
        cronofy_conn_id: str = default_conn_name,
        *,
        data_center: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        rate_limit_per_second: int | None = None,
        rate_limit_per_minute: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        super().__init__()
        self.cronofy_conn_id = cronofy_conn_id
        self._overrides: dict[str, Any] = {
            "data_center": data_center,
            "timeout": timeout,
            "max_retries": max_retries,
            "rate_limit_per_second": rate_limit_per_second,
            "rate_limit_per_minute": rate_limit_per_minute,
            "max_concurrency": max_concurrency,
        }
        self._tokens: AccessTokens | None = None
        self._counted = (0, 0)  # requests sent and retries spent by transports of closed sessions
        self.sleep: Callable[[float], None] = time.sleep
        """How the hook waits between retries (and a bulk run for its earliest retry); tests replace it."""
        self.clock: Callable[[], float] = time.monotonic
        """The bulk runner's clock (monotonic seconds); tests replace it together with :attr:`sleep`."""
        self._runs: list[BulkRun] = []

    # ------------------------------------------------------------------ connection and settings

    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.cronofy_conn_id)

    @cached_property
    def settings(self) -> CronofySettings:
        """The connection's settings, resolved and validated (raises :class:`CronofyConfigError`)."""
        try:
            return resolve_settings(self._connection, self._overrides)
        except CronofyConfigError as error:
            # A message names the bad value; a credential pasted into the wrong field stays hidden.
            raise CronofyConfigError(self.redact(str(error))) from None

    @property
    def base_url(self) -> str:
        """The API base URL in use, e.g. ``https://api-uk.cronofy.com`` (no trailing slash)."""
        return self.settings.base_url

    def validate(self) -> CronofySettings:
        """Read and check the connection (settings and credentials) before any request; return the settings.

        Registers the connection's secrets with Airflow's masker.

        :raises CronofyConfigError: a setting or a credential is unusable (named, value hidden).
        """
        self.tokens()
        return self.settings

    def tokens(self) -> AccessTokens:
        """The connection's credentials and the hook's access token state (read on first use)."""
        if self._tokens is None:
            creds = read_credentials(self._connection)
            for secret in (creds.api_key, creds.access_token, creds.refresh_token):
                if secret:
                    mask_secret(secret)
            self._tokens = AccessTokens(creds, self.cronofy_conn_id)
        return self._tokens

    def sender(self, auth: str) -> Sender:
        """Sends this hook's requests with the credential ``auth`` names (``api_key``, ``access_token``)."""
        settings = self.settings
        where = Where(self.cronofy_conn_id, settings.base_url, settings.data_center)
        return Sender(self.transport, self.tokens(), where, auth)

    @property
    def _where(self) -> Where:
        settings = self.settings
        return Where(self.cronofy_conn_id, settings.base_url, settings.data_center)

    @property
    def can_refresh(self) -> bool:
        """Whether the connection has what refreshing an access token needs."""
        return self.tokens().can_refresh

    @cached_property
    def pacer(self) -> RequestPacer:
        """The process-wide pacer for this base URL and these limits."""
        s = self.settings
        return shared_pacer(s.base_url, s.rate_limit_per_second, s.rate_limit_per_minute)

    @cached_property
    def session(self) -> requests.Session:
        """The hook's one HTTP session, reused (keep-alive) for every call until :meth:`close`.

        Its connection pool holds ``max_concurrency`` connections: one per request in flight.
        """
        return open_session(self.base_url, self.settings.max_concurrency)

    def get_conn(self) -> requests.Session:
        """The hook's configured HTTP session (Airflow's hook convention); see :attr:`session`."""
        return self.session

    def retry_policy(self) -> RetryPolicy:
        """The retry policy of this hook's calls: the class's back-off knobs, the connection's ``max_retries``."""
        return RetryPolicy(
            max_retries=self.settings.max_retries,
            backoff=self.retry_backoff,
            backoff_max=self.retry_backoff_max,
            max_retry_after=self.max_retry_after,
            # A replaced sleep (tests) is called as is; the real one waits on a run's stop event.
            sleep=None if self.sleep is time.sleep else self.sleep,
        )

    @cached_property
    def transport(self) -> Transport:
        """Sends this hook's requests: paced, counted, retried (see :mod:`.transport`)."""
        return Transport(self.settings, self.pacer, self.retry_policy(), self.session)

    @property
    def requests_sent(self) -> int:
        """Requests sent by this hook (every attempt, token refreshes included)."""
        transport = self.__dict__.get("transport")
        return self._counted[0] + (transport.requests_sent if transport is not None else 0)

    @property
    def retries_spent(self) -> int:
        """Attempts beyond the first, over all calls of this hook."""
        transport = self.__dict__.get("transport")
        runs = sum(run.retries for run in self._runs)
        return self._counted[1] + runs + (transport.retries_spent if transport is not None else 0)

    def close(self) -> None:
        """Close the HTTP session (its keep-alive connections). The hook can be used again after."""
        session = self.__dict__.pop("session", None)
        transport = self.__dict__.pop("transport", None)  # it holds the session: made anew on reuse
        if transport is not None:
            self._counted = (
                self._counted[0] + transport.requests_sent,
                self._counted[1] + transport.retries_spent,
            )
        if session is not None:
            session.close()

    def __enter__(self) -> CronofyHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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

        def read(reply: Reply, _: Any) -> Any:
            if not 200 <= reply.status < 300:
                return sender.error(reply, None)
            if not reply.body.strip():
                return None
            payload = json_or_none(reply.body)
            if payload is None:
                return CronofyAPIError(
                    f"Cronofy answered {reply.status} to {verb} {path} with a body that is not JSON.",
                    status_code=reply.status,
                )
            return payload

        return self.call(PerItem(sender, lambda _: Request(verb, path, json, None), read), None)

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
                raise result.give_up(attempts)
            delay = policy.delay(attempts, result)
            attempts += 1
            self.transport.note_retry(result.what, result, delay, attempts)
            self.sleep(delay)
        if isinstance(result, BaseException):
            raise result
        return result

    def run_settings(self, unit_size: int = 1) -> RunSettings:
        """How this hook's bulk runs send: its ``max_concurrency``, retry policy, clock and sleep."""
        return RunSettings(
            max_concurrency=self.settings.max_concurrency,
            policy=self.retry_policy(),
            unit_size=unit_size,
            clock=self.clock,
            # A replaced sleep (tests) waits for the earliest retry; the real one waits on the
            # run's stop event, so that a stop ends the wait.
            sleep=None if self.sleep is time.sleep else self.sleep,
        )

    def _bulk_run(self, items: Sequence[Any], job: Job, unit_size: int, report: Report) -> BulkRun:
        run = BulkRun(items, job, self.run_settings(unit_size), report)
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
        return self.call(self._scheduled_cancellation_job(), scheduling_key) == "cancelled"

    def scheduled_cancellation(self, keys: Sequence[str], report: Report | None = None) -> BulkRun:
        """The bulk run cancelling the agents of ``keys`` (checked by the caller); :meth:`~.runner.BulkRun.run`
        sends it. Each outcome is ``"cancelled"`` (202) or ``"not_found"`` (404).

        :raises CronofyConfigError: the connection has no API key (nothing is sent).
        """
        job = self._scheduled_cancellation_job()
        return self._bulk_run(keys, job, 1, report or Report(log, "scheduling key"))

    def cancel_scheduled(self, keys: Sequence[str]) -> RunResult:
        """Cancel the agents of every key of ``keys``; return the run's result (see :meth:`scheduled_cancellation`)."""
        return self.scheduled_cancellation(keys).run()

    def _scheduled_cancellation_job(self) -> PerItem:
        sender = self.sender("api_key")
        sender.token()  # the API key, before anything is sent

        def read(reply: Reply, key: str) -> Any:
            if reply.status == 404:
                return "not_found"
            return "cancelled" if 200 <= reply.status < 300 else sender.error(reply, key)

        request = lambda key: Request("DELETE", "/v1/meeting_agents", {"scheduling_key": key}, None, key)  # noqa: E731
        return PerItem(sender, request, read)

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
        sender = self.sender("api_key")
        sender.token()  # the API key, before anything is sent
        return AgentScheduling(sender)

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
        settings = self.settings
        # A batch counts as one request against the pacer, or as one per entry when the
        # connection's batch_rate_cost is "entries" (then it holds no more than the smallest limit).
        per_entry = settings.batch_rate_cost == "entries"
        limits = [
            limit for limit in (settings.rate_limit_per_second, settings.rate_limit_per_minute) if limit
        ]
        return EventCancellation(
            self.sender("access_token"),
            delete_event=delete_event,
            use_batch=use_batch,
            unit_size=min([BATCH_MAX_ENTRIES, *limits]) if per_entry else BATCH_MAX_ENTRIES,
            cost_per_entry=per_entry,
            unknown_calendars=unknown_calendars,
        )

    # ------------------------------------------------------------------ access tokens

    def refresh_access_token(self) -> None:
        """Get a new access token with the connection's ``client_id`` and ``refresh_token``.

        Sends ``POST /oauth/token`` (grant ``refresh_token``, the API key as client secret). The
        new token is registered with Airflow's secret masker and used for the rest of the hook's
        life. When Cronofy also returns a new refresh token, the hook uses it from then on and
        logs (without the token) that the connection should be updated.

        :raises CronofyConfigError: the connection lacks client_id, refresh_token or API key.
        :raises CronofyFatalAPIError: Cronofy refused (``invalid_grant``: the refresh token was
            revoked); later calls of this hook raise it again without asking Cronofy.
        """
        self.tokens().refresh(self.transport, self._where)

    # ------------------------------------------------------------------ connection test and form

    def test_connection(self) -> tuple[bool, str]:
        """Check what a run will use; return ``(ok, what was checked)``.

        Validates the settings, then sends one request per credential, one attempt each: the API
        key cancels a scheduling key nobody can have scheduled (``DELETE /v1/meeting_agents``,
        which changes nothing), the access token reads ``GET /v1/userinfo``; never a token
        refresh. See :mod:`.connection_check`.
        """
        try:
            ok, message = connection_check.check_connection(
                self.settings,
                self.tokens().credentials,
                self.transport,
                self._where,
                can_refresh=self.can_refresh,
                redact=self.redact,
            )
        except CronofyError as error:
            ok, message = False, self.redact(str(error))
        finally:
            self.close()
        connection_check.show_on_airflow_cli(ok, message)
        return ok, message

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields for Airflow 2.11, 3.0 and 3.1 (3.2+ reads the provider info)."""
        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields of the form, for Airflow 2.11, 3.0 and 3.1."""
        return ui_field_behaviour()

    # ------------------------------------------------------------------ credentials and errors

    def require_api_key(self) -> str:
        """Return the API key, or raise :class:`CronofyConfigError` saying where it belongs."""
        api_key = self.tokens().credentials.api_key
        if not api_key:
            raise error_messages.api_key_missing(self.cronofy_conn_id)
        return api_key

    def require_calendar_credentials(self) -> None:
        """Raise :class:`CronofyConfigError` unless the connection has, or can get, an access token."""
        if self.tokens().access_token is None and not self.can_refresh:
            raise error_messages.access_token_missing(self.cronofy_conn_id)

    def redact(self, text: str) -> str:
        """Return ``text`` with every credential of the connection replaced by ``***``."""
        return self.tokens().redact(text)

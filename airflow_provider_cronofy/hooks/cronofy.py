"""CronofyHook: the Cronofy calls (Meeting Agents, tokens, any endpoint) on an Airflow connection.

The connection's settings live in :mod:`.settings`, the HTTP machinery (session, pacing, retries)
in :mod:`.transport`, and the wording of errors in :mod:`.error_messages`; this module holds what
is Cronofy-specific: which request each call sends, with which credential, and what each answer
means. No API key or token is ever put into a log line or an exception message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, NamedTuple

import requests

from airflow_provider_cronofy._compat import BaseHook, mask_secret
from airflow_provider_cronofy.exceptions import (
    CronofyAPIError,
    CronofyConfigError,
    CronofyError,
)
from airflow_provider_cronofy.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_cronofy.hooks import error_messages
from airflow_provider_cronofy.hooks.calendar_events import CalendarEventsJob
from airflow_provider_cronofy.hooks.concurrency import BulkEngine, Job, ResultHandler
from airflow_provider_cronofy.hooks.connection_form import connection_form_widgets, ui_field_behaviour
from airflow_provider_cronofy.hooks.error_messages import Where, json_or_none
from airflow_provider_cronofy.hooks.events import BATCH_MAX_ENTRIES, EventBatchJob, event_request, event_scope
from airflow_provider_cronofy.hooks.pacing import RequestPacer, shared_pacer
from airflow_provider_cronofy.hooks.settings import (
    Credentials,
    CronofySettings,
    read_credentials,
    resolve_settings,
)
from airflow_provider_cronofy.hooks.transport import Reply, Request, RetryLater, Transport, open_session
from airflow_provider_cronofy.validation import (
    calendar_path_segment,
    check_choice,
    check_json_body,
    check_method,
    check_request_path,
    validate_item,
)

AUTH_MODES = ("api_key", "access_token")

log = logging.getLogger(__name__)


class Call(NamedTuple):
    """One Cronofy call: what to send, with which credential, and what its final answer means.

    ``interpret`` turns a final (non-retryable, or budget-spent) reply into the call's result, or
    raises the call's :class:`CronofyAPIError`.
    """

    request: Request
    auth: str
    interpret: Callable[[Reply], Any]


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
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self._refresh_lock = threading.Lock()
        self._refresh_error: CronofyError | None = None
        self.sleep: Callable[[float], None] = time.sleep
        """How the hook waits between retries of a single call; tests replace it."""

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

    @cached_property
    def _credentials(self) -> Credentials:
        creds = read_credentials(self._connection)
        for secret in (creds.api_key, creds.access_token, creds.refresh_token):
            if secret:
                mask_secret(secret)
        self._access_token = creds.access_token
        self._refresh_token = creds.refresh_token
        return creds

    @property
    def _where(self) -> Where:
        settings = self.settings
        return Where(self.cronofy_conn_id, settings.base_url, settings.data_center)

    @property
    def can_refresh(self) -> bool:
        """Whether the connection has what refreshing an access token needs."""
        creds = self._credentials
        return bool(creds.client_id and self._refresh_token and creds.api_key)

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

    @cached_property
    def transport(self) -> Transport:
        """Sends this hook's requests: paced, counted, retried (see :mod:`.transport`)."""
        return Transport(self.settings, self.pacer, self, lambda: self.session)

    @property
    def requests_sent(self) -> int:
        """Requests sent by this hook (every attempt, token refreshes included)."""
        transport = self.__dict__.get("transport")
        return transport.requests_sent if transport is not None else 0

    @property
    def retries_spent(self) -> int:
        """Attempts beyond the first, over all calls of this hook."""
        transport = self.__dict__.get("transport")
        return transport.retries_spent if transport is not None else 0

    def close(self) -> None:
        """Close the HTTP session (its keep-alive connections). The hook can be used again after."""
        session = self.__dict__.pop("session", None)
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
        self._require(auth)
        credential = "API key" if auth == "api_key" else "access token"

        def interpret(reply: Reply) -> Any:
            if 200 <= reply.status < 300:
                if not reply.body.strip():
                    return None
                payload = json_or_none(reply.body)
                if payload is None:
                    raise CronofyAPIError(
                        f"Cronofy answered {reply.status} to {verb} {path} with a body that is not JSON.",
                        status_code=reply.status,
                    )
                return payload
            raise self._api_error(reply, None, credential=credential)

        return self.run(Call(Request(verb, path, json, None), auth, interpret))

    def run(self, call: Call) -> Any:
        """Make ``call`` with retries (sleeping :attr:`sleep` between them); return its result."""
        reply = self.transport.with_retries(lambda: self.attempt(call.request, call.auth), call.request)
        return call.interpret(reply)

    def attempt(self, request: Request, auth: str, cost: int = 1) -> Reply:
        """Send ``request`` once with the credential ``auth`` names; return the reply.

        With ``auth="access_token"`` a 401 refreshes the token (once per expiry however many
        threads meet it) and sends once more. Retryable failures are raised as
        :class:`~.transport.RetryLater` for the caller to wait on. ``cost`` is how many requests
        the pacer counts it as.
        """
        token = self._require(auth)
        reply = self.transport.exchange(request._replace(token=token), cost=cost)
        if reply.status == 401 and auth == "access_token" and self.can_refresh:
            self._refresh_after_401(token)
            reply = self.transport.exchange(request._replace(token=self._require(auth)), cost=cost)
        return reply

    def run_many(self, items: Sequence[str], job: Job, on_result: ResultHandler) -> list[str]:
        """Run ``job`` over ``items`` with ``max_concurrency`` requests in flight (the bulk engine).

        ``on_result(index, item, result)`` is called once per item that was sent, in the calling
        thread: ``result`` is the call's value or its exception. Returns the items never sent
        (a fatal error stopped the run), in input order. See :mod:`.concurrency`.
        """
        engine = BulkEngine(self.transport, job, max_concurrency=self.settings.max_concurrency)
        return engine.run(items, on_result)

    def call_job(self, make_call: Callable[[str], Call]) -> Job:
        """A bulk job sending one request per item: ``make_call(item)``'s."""
        return _PerItemJob(self, make_call)

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
        self.require_api_key()
        return bool(self.run(self.scheduled_cancellation(scheduling_key)))

    def scheduled_cancellation(self, scheduling_key: str) -> Call:
        """The call that cancels one scheduled agent; its result is ``True`` (202) or ``False`` (404)."""

        def interpret(reply: Reply) -> bool:
            if reply.status == 404:
                return False
            if 200 <= reply.status < 300:
                return True
            raise self._api_error(reply, scheduling_key, credential="API key")

        body = {"scheduling_key": scheduling_key}
        return Call(Request("DELETE", "/v1/meeting_agents", body, None, scheduling_key), "api_key", interpret)

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
        call = self.event_cancellation(calendar_id, event_id, delete_event=False)
        self.require_calendar_credentials()
        self.run(call)

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Delete an event, which also cancels its Meeting Agent.

        Sends ``DELETE /v1/calendars/{calendar_id}/events`` with ``{"event_id": ...}``, authorised
        by the connection's access token.

        :raises CronofyInputError: an argument is not a usable string (nothing is sent).
        :raises CronofyConfigError: the connection has no access token and cannot get one.
        :raises CronofyAPIError: Cronofy refused (404: the calendar is unknown or not accessible
            to the token; 403: the token lacks the ``delete_event`` scope), after retries.
        """
        call = self.event_cancellation(calendar_id, event_id, delete_event=True)
        self.require_calendar_credentials()
        self.run(call)

    def event_cancellation(self, calendar_id: str, event_id: str, *, delete_event: bool) -> Call:
        """The call that removes the agent from (or deletes) one event; its result is ``None``.

        :raises CronofyInputError: ``calendar_id`` or ``event_id`` is unusable.
        """
        return self._event_call(_events_path(calendar_id), calendar_id, event_id, delete_event)

    def _event_call(self, path: str, calendar_id: str, event_id: str, delete_event: bool) -> Call:
        validate_item("event_id", event_id)
        method, body, scope = event_request(event_id, delete_event=delete_event)

        def interpret(reply: Reply) -> None:
            self._event_outcome(reply, calendar_id, event_id, scope)

        return Call(Request(method, path, body, None, event_id), "access_token", interpret)

    def event_cancellations(self, calendar_id: str, *, delete_event: bool, use_batch: bool = True) -> Job:
        """The bulk job that cancels the agents of events of ``calendar_id`` (see :meth:`run_many`).

        With ``use_batch`` the events go 50 to a ``POST /v1/batch`` (see
        :class:`~.events.EventBatchJob`); a batch counts as one request against the pacer, or as
        one per entry when the connection's ``batch_rate_cost`` is ``entries`` (then a batch also
        holds no more entries than the smallest rate limit). Without, one request per event.
        Each result is ``None`` (cancelled) or the event's error.

        :raises CronofyInputError: ``calendar_id`` is unusable.
        """
        path = _events_path(calendar_id)
        if not use_batch:
            return self.call_job(lambda event_id: self._event_call(path, calendar_id, event_id, delete_event))
        settings = self.settings
        per_entry = settings.batch_rate_cost == "entries"
        limits = [
            limit for limit in (settings.rate_limit_per_second, settings.rate_limit_per_minute) if limit
        ]
        scope = event_scope(delete_event)
        return EventBatchJob(
            path,
            delete_event=delete_event,
            send=lambda request, cost: self.attempt(request, "access_token", cost),
            settle=self.transport.settle,
            outcome=lambda reply, event_id: self._event_outcome(reply, calendar_id, event_id, scope),
            unit_size=min([BATCH_MAX_ENTRIES, *limits]) if per_entry else BATCH_MAX_ENTRIES,
            cost_per_entry=per_entry,
        )

    def calendar_event_cancellations(self, *, delete_event: bool, use_batch: bool = True) -> Job:
        """The bulk job that cancels the agents of ``(calendar_id, event_id)`` items of any calendars.

        See :class:`~.calendar_events.CalendarEventsJob`: batches (with ``use_batch``) mix
        calendars and count against the pacer as :meth:`event_cancellations`' do; a 404 fails
        only the events of that calendar. Each result is ``None`` (cancelled) or the event's error.
        """
        settings = self.settings
        per_entry = settings.batch_rate_cost == "entries"
        limits = [
            limit for limit in (settings.rate_limit_per_second, settings.rate_limit_per_minute) if limit
        ]
        scope = event_scope(delete_event)
        return CalendarEventsJob(
            delete_event=delete_event,
            use_batch=use_batch,
            send=lambda request, cost: self.attempt(request, "access_token", cost),
            settle=self.transport.settle,
            api_error=lambda reply, event_id: self._api_error(
                reply, event_id, credential="access token", scope=scope
            ),
            unit_size=min([BATCH_MAX_ENTRIES, *limits]) if per_entry else BATCH_MAX_ENTRIES,
            cost_per_entry=per_entry,
        )

    def _event_outcome(self, reply: Reply, calendar_id: str, event_id: str, scope: str) -> None:
        if 200 <= reply.status < 300:
            return
        if reply.status == 404:
            raise error_messages.unknown_calendar_error(calendar_id, reply, item=event_id)
        raise self._api_error(reply, event_id, credential="access token", scope=scope)

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
        creds = self._credentials
        missing = [
            name
            for name, value in (
                ("extra client_id", creds.client_id),
                ("extra refresh_token", self._refresh_token),
                ("password (the API key, used as client secret)", creds.api_key),
            )
            if not value
        ]
        if missing:
            raise error_messages.refresh_settings_missing(missing, self.cronofy_conn_id)
        body = {
            "client_id": creds.client_id,
            "client_secret": creds.api_key,
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
        }
        request = Request("POST", "/oauth/token", body, None)
        reply = self.transport.with_retries(lambda: self.transport.exchange(request), request)
        if reply.status != 200:
            self._refresh_error = error_messages.token_error(reply, self._where)
            self._refresh_error.args = (self.redact(str(self._refresh_error)),)
            raise self._refresh_error
        payload = json_or_none(reply.body)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise error_messages.token_missing_error(reply.status)
        mask_secret(token)
        self._access_token = token
        new_refresh = payload.get("refresh_token") if isinstance(payload, dict) else None
        if isinstance(new_refresh, str) and new_refresh and new_refresh != self._refresh_token:
            mask_secret(new_refresh)
            self._refresh_token = new_refresh
            log.warning(
                "Cronofy issued a new refresh token. This run uses it, but it cannot be stored back "
                "into connection '%s': update the connection's refresh_token extra with a fresh "
                "authorisation, or the stored one may stop working.",
                self.cronofy_conn_id,
            )
        log.info("Refreshed the Cronofy access token of connection '%s'.", self.cronofy_conn_id)

    def _refresh_after_401(self, rejected: str) -> None:
        self._refresh_once(
            lambda: self._access_token == rejected,
            "Cronofy rejected the access token (401); refreshing it once.",
        )

    def _access_token_now(self) -> str:
        self.require_calendar_credentials()
        if self._access_token is None:
            self._refresh_once(lambda: self._access_token is None)
        assert self._access_token is not None
        return self._access_token

    def _refresh_once(self, still_needed: Callable[[], bool], why: str | None = None) -> None:
        # Single flight: the first thread that needs a token refreshes; the others wait for it and
        # find `still_needed()` false, so they use its token. A refused refresh is remembered, so
        # nobody asks again.
        with self._refresh_lock:
            if self._refresh_error is not None:
                raise self._refresh_error
            if not still_needed():
                return
            if why:
                log.info(why)
            self.refresh_access_token()

    def _require(self, auth: str) -> str:
        return self.require_api_key() if auth == "api_key" else self._access_token_now()

    # ------------------------------------------------------------------ connection test and form

    def test_connection(self) -> tuple[bool, str]:
        """Check what can be checked without side effects; return ``(ok, what was verified)``.

        The settings are validated; with an access token, ``GET /v1/userinfo`` proves the token
        and the data center. Cronofy has no read-only call that checks an API key alone, so the
        message says the key is only checked by the first real call.
        """
        try:
            settings = self.settings
            creds = self._credentials
            where = f"{settings.base_url}" + (
                f" (data center '{settings.data_center}')" if settings.data_center else ""
            )
            notes = [f"Settings are valid; the API is at {where}."]
            if creds.access_token:
                # One attempt: a person is waiting on the test button.
                request = Request("GET", "/v1/userinfo", None, creds.access_token)
                reply = self.transport.with_retries(
                    lambda: self.transport.exchange(request), request, retries=0
                )
                if reply.status != 200:
                    raise self._api_error(reply, None, credential="access token")
                notes.append("The access token was accepted (GET /v1/userinfo).")
            elif self.can_refresh:
                notes.append(
                    "No access token: one will be obtained with the refresh token at the first "
                    "calendar call (not tried now, as a refresh can rotate the refresh token)."
                )
            if creds.api_key:
                notes.append(
                    "An API key is set; Cronofy offers no read-only call to verify it, so it is "
                    "checked by the first cancellation."
                )
            if not creds.api_key and not creds.access_token:
                return False, " ".join([*notes, "But no API key (password) nor access token is set."])
            return True, " ".join(notes)
        except CronofyError as error:
            return False, str(error)
        finally:
            self.close()

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
        api_key = self._credentials.api_key
        if not api_key:
            raise error_messages.api_key_missing(self.cronofy_conn_id)
        return api_key

    def require_calendar_credentials(self) -> None:
        """Raise :class:`CronofyConfigError` unless the connection has, or can get, an access token."""
        self._credentials  # noqa: B018 - loads the stored tokens
        if self._access_token is None and not self.can_refresh:
            raise error_messages.access_token_missing(self.cronofy_conn_id)

    def _api_error(
        self, reply: Reply, item: str | None, *, credential: str, scope: str | None = None
    ) -> CronofyAPIError:
        error = error_messages.api_error(
            reply, self._where, item=item, credential=credential, can_refresh=self.can_refresh, scope=scope
        )
        error.args = (self.redact(str(error)),)
        return error

    def redact(self, text: str) -> str:
        """Return ``text`` with every credential of the connection replaced by ``***``."""
        # Messages are built from our own words and Cronofy's error keys; this is the last guard
        # against a server that echoes a credential back.
        creds = self._credentials
        for secret in {
            creds.api_key,
            self._access_token,
            creds.access_token,
            self._refresh_token,
            creds.refresh_token,
        }:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


class _PerItemJob:
    """A :class:`~.concurrency.Job` of one :class:`Call` per item."""

    unit_size = 1

    def __init__(self, hook: CronofyHook, make_call: Callable[[str], Call]) -> None:
        self._hook = hook
        self._make_call = make_call

    def attempt(self, items: list[str]) -> list[Any]:
        (item,) = items
        call = self._make_call(item)
        return [call.interpret(self._hook.attempt(call.request, call.auth))]

    def settle(self, item: str, retry: RetryLater, attempts: int) -> Any:
        call = self._make_call(item)
        return call.interpret(self._hook.transport.settle(call.request, retry, attempts))


def _events_path(calendar_id: str) -> str:
    """``/v1/calendars/{calendar_id}/events``, the id percent-encoded as one path segment.

    :raises CronofyInputError: ``calendar_id`` is unusable.
    """
    return f"/v1/calendars/{calendar_path_segment(calendar_id)}/events"

"""CronofyHook: the Cronofy calls (Meeting Agents, tokens, any endpoint) on an Airflow connection.

The connection's settings live in :mod:`.settings`, the HTTP machinery (session, pacing, retries)
in :mod:`.transport`, the access token and its refresh in :mod:`.tokens`, the bulk engine in
:mod:`.engine`, the event calls in :mod:`.events`, and the wording of errors in
:mod:`.error_messages`; this module holds what is Cronofy-specific: which request each call sends,
with which credential, and what each answer means. No API key or token is ever put into a log
line or an exception message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import requests

from airflow_provider_cronofy._compat import BaseHook, mask_secret
from airflow_provider_cronofy.exceptions import (
    CronofyAPIError,
    CronofyConfigError,
    CronofyError,
)
from airflow_provider_cronofy.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_cronofy.hooks import connection_check, error_messages, events
from airflow_provider_cronofy.hooks.connection_form import connection_form_widgets, ui_field_behaviour
from airflow_provider_cronofy.hooks.engine import BulkEngine, Job, ResultHandler, UnitGate
from airflow_provider_cronofy.hooks.error_messages import Where, json_or_none
from airflow_provider_cronofy.hooks.events import EventCancellationJob, event_scope
from airflow_provider_cronofy.hooks.pacing import RequestPacer, shared_pacer
from airflow_provider_cronofy.hooks.settings import (
    CronofySettings,
    read_credentials,
    resolve_settings,
)
from airflow_provider_cronofy.hooks.tokens import AccessTokens
from airflow_provider_cronofy.hooks.transport import (
    Call,
    Gate,
    Reply,
    Request,
    RetryLater,
    RetryPolicy,
    Transport,
    open_session,
    wait_out,
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
        """The bulk engine's clock (monotonic seconds); tests replace it together with :attr:`sleep`."""

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
            self._tokens = AccessTokens(creds, self.cronofy_conn_id, self.redact)
        return self._tokens

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
            sleep=self._retry_sleep,
        )

    def _retry_sleep(self, seconds: float, stop: threading.Event | None) -> None:
        # Read when called: tests replace self.sleep, which is then called as is; the real one
        # waits on the run's stop event, so that a stop ends the wait.
        if self.sleep is time.sleep:
            wait_out(seconds, stop)
        else:
            self.sleep(seconds)

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
        return self._counted[1] + (transport.retries_spent if transport is not None else 0)

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

    def attempt(self, request: Request, auth: str, cost: int = 1, gate: Gate | None = None) -> Reply:
        """Send ``request`` once with the credential ``auth`` names, through ``gate``; return the reply.

        With ``auth="access_token"`` a 401 refreshes the token (once per expiry however many
        threads meet it) and sends once more. Retryable failures are raised as
        :class:`~.transport.RetryLater` for the caller to wait on. ``cost`` is how many requests
        the pacer counts it as; ``gate`` is a bulk run's (``None`` for a single call).
        """
        token = self._require(auth, gate)
        reply = self.transport.exchange(request._replace(token=token), cost=cost, gate=gate)
        if reply.status == 401 and auth == "access_token" and self.can_refresh:
            self.tokens().after_401(token, self.transport, self._where, gate)
            reply = self.transport.exchange(
                request._replace(token=self._require(auth, gate)), cost=cost, gate=gate
            )
        return reply

    def run_many(self, items: Sequence[Any], job: Job, on_result: ResultHandler) -> list[Any]:
        """Run ``job`` over ``items`` with ``max_concurrency`` requests in flight (the bulk engine).

        ``on_result(index, item, result)`` is called once per item that was sent, in the calling
        thread: ``result`` is the call's value or its exception. Returns the items never sent
        (a fatal error stopped the run), in input order. See :mod:`.engine`.
        """
        transport = self.transport
        engine = BulkEngine(
            job,
            max_concurrency=self.settings.max_concurrency,
            policy=transport.policy,
            on_retry=transport.note_retry,
            clock=self.clock,
            # A replaced sleep (tests) waits for the earliest retry; the real one waits on the
            # run's gate, so that a stop ends the wait.
            wait=None if self.sleep is time.sleep else self.sleep,
        )
        return engine.run(items, on_result)

    def per_item_job(self, make_call: Callable[[Any], Call]) -> Job:
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
        return bool(self.run(self.scheduled_cancellation_call(scheduling_key)))

    def scheduled_cancellation_call(self, scheduling_key: str) -> Call:
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
        call = events.event_cancellation_call(
            calendar_id, event_id, delete_event=False, api_error=self._event_error(False)
        )
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
        call = events.event_cancellation_call(
            calendar_id, event_id, delete_event=True, api_error=self._event_error(True)
        )
        self.require_calendar_credentials()
        self.run(call)

    def event_cancellation_job(
        self, calendar_id: str | None, *, delete_event: bool, use_batch: bool = True
    ) -> EventCancellationJob:
        """The bulk job cancelling the agents of events of ``calendar_id`` (see :meth:`run_many`).

        Items are event ids of ``calendar_id``, or ``(calendar_id, event_id)`` of any calendars
        when it is ``None`` (see :func:`~.events.event_cancellation_job`). Each result is ``None``
        (cancelled) or the event's error.

        :raises CronofyInputError: ``calendar_id`` is unusable.
        """
        return events.event_cancellation_job(
            calendar_id,
            settings=self.settings,
            delete_event=delete_event,
            use_batch=use_batch,
            send=lambda request, cost, gate: self.attempt(request, "access_token", cost, gate),
            settle=self.transport.settle,
            api_error=self._event_error(delete_event),
        )

    def cross_calendar_cancellation_job(
        self, *, delete_event: bool, use_batch: bool = True
    ) -> EventCancellationJob:
        """The bulk job over ``(calendar_id, event_id)`` items of any calendars: a 404 fails only its calendar's."""
        return self.event_cancellation_job(None, delete_event=delete_event, use_batch=use_batch)

    def _event_error(self, delete_event: bool) -> Callable[[Reply, str], CronofyAPIError]:
        scope = event_scope(delete_event)
        return lambda reply, event_id: self._api_error(
            reply, event_id, credential="access token", scope=scope
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

    def _require(self, auth: str, gate: Gate | None = None) -> str:
        if auth == "api_key":
            return self.require_api_key()
        self.require_calendar_credentials()
        return self.tokens().current(self.transport, self._where, gate)

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
        tokens = self.tokens()
        creds = tokens.credentials
        for secret in {
            creds.api_key,
            tokens.access_token,
            creds.access_token,
            tokens.refresh_token,
            creds.refresh_token,
        }:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


class _PerItemJob:
    """A :class:`~.concurrency.Job` of one :class:`Call` per item."""

    unit_size = 1

    def __init__(self, hook: CronofyHook, make_call: Callable[[Any], Call]) -> None:
        self._hook = hook
        self._make_call = make_call

    def attempt(self, items: list[Any], gate: UnitGate) -> list[Any]:
        (item,) = items
        call = self._make_call(item)
        return [call.interpret(self._hook.attempt(call.request, call.auth, gate=gate))]

    def settle(self, item: Any, retry: RetryLater, attempts: int) -> Any:
        call = self._make_call(item)
        return call.interpret(self._hook.transport.settle(call.request, retry, attempts))

"""CronofyHook: Cronofy connections, credentials, data-center URLs, and the Meeting Agent calls.

One hook holds one :class:`requests.Session` (keep-alive) for all its calls, paces its own requests
under Cronofy's rate limits, retries what is worth retrying, and raises errors a user can act on.
No API key or token is ever put into a log line or an exception message.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cached_property
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter

from airflow_provider_cronofy import __version__
from airflow_provider_cronofy._compat import BaseHook, mask_secret
from airflow_provider_cronofy.exceptions import (
    CronofyAPIError,
    CronofyConfigError,
    CronofyError,
)
from airflow_provider_cronofy.get_provider_info import (
    DATA_CENTERS,
    DEFAULT_CONN_ID,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    DEFAULT_RATE_LIMIT_PER_SECOND,
    UI_FIELD_BEHAVIOUR,
)
from airflow_provider_cronofy.hooks.pacing import RequestPacer, shared_pacer
from airflow_provider_cronofy.validation import calendar_path_segment, validate_item

DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 30.0)
"""Connect and read timeout in seconds when the connection sets none: never unbounded."""

DEFAULT_MAX_RETRIES = 5
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses after which every other item of a bulk run would fail the same way.
FATAL_STATUSES = frozenset({401, 402, 403, 423})
# Cronofy's error bodies are small; anything bigger is not read into memory.
MAX_BODY_BYTES = 1 << 20
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CronofySettings:
    """A connection resolved and validated: what the hook will use. Holds no secret."""

    base_url: str
    data_center: str | None
    timeout: tuple[float, float]
    max_retries: int
    rate_limit_per_second: int
    rate_limit_per_minute: int


class _Credentials(NamedTuple):
    api_key: str | None
    access_token: str | None
    client_id: str | None
    refresh_token: str | None


class _Reply(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes
    attempts: int = 1
    """Attempts made when this is the last reply of a retry budget spent on retryable statuses."""


class _Retryable(Exception):
    """One attempt failed in a way worth another try (carries the reply or the transport error)."""

    def __init__(self, reply: _Reply | None, error: Exception | None = None) -> None:
        super().__init__()
        self.reply = reply
        self.error = error


class CronofyHook(BaseHook):
    """Talk to Cronofy's API with the credentials of an Airflow connection of type ``cronofy``.

    The connection: ``password`` is the application's API key (its client secret); extras
    ``data_center`` (``us`` default, ``au``, ``ca``, ``de``, ``sg``, ``uk``), ``access_token``,
    ``client_id`` + ``refresh_token`` (to refresh access tokens), ``timeout``, ``max_retries``,
    ``rate_limit_per_second``, ``rate_limit_per_minute``; ``host`` optionally replaces the data
    center's base URL (``https://`` only, ``http://`` for loopback hosts).

    :param cronofy_conn_id: the Airflow connection to use.
    :param data_center: overrides the connection's ``data_center`` extra.
    :param timeout: seconds, overrides the connection's ``timeout`` extra (connect and read).
    :param max_retries: retries after the first attempt, overrides the ``max_retries`` extra.
    :param rate_limit_per_second: overrides the extra of that name (``0`` turns pacing off).
    :param rate_limit_per_minute: overrides the extra of that name (``0`` turns pacing off).

    Use it as a context manager, or call :meth:`close`, to close its HTTP session.
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
    ) -> None:
        super().__init__()
        self.cronofy_conn_id = cronofy_conn_id
        self._overrides: dict[str, Any] = {
            "data_center": data_center,
            "timeout": timeout,
            "max_retries": max_retries,
            "rate_limit_per_second": rate_limit_per_second,
            "rate_limit_per_minute": rate_limit_per_minute,
        }
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self.sleep: Callable[[float], None] = time.sleep
        """How the hook waits between retries; tests replace it."""
        self.requests_sent = 0
        """Requests sent by this hook (every attempt, token refreshes included)."""
        self.retries_spent = 0
        """Attempts beyond the first, over all calls of this hook."""

    # ------------------------------------------------------------------ connection and settings

    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.cronofy_conn_id)

    @cached_property
    def settings(self) -> CronofySettings:
        """The connection's settings, resolved and validated (raises :class:`CronofyConfigError`)."""
        try:
            return self._resolve_settings()
        except CronofyConfigError as error:
            # A message names the bad value; a credential pasted into the wrong field stays hidden.
            raise CronofyConfigError(self.redact(str(error))) from None

    def _resolve_settings(self) -> CronofySettings:
        conn = self._connection
        extra = _extra_of(conn)
        merged = {
            key: (override if override is not None else extra.get(key))
            for key, override in self._overrides.items()
        }
        data_center = _parse_data_center(merged["data_center"])
        if conn.host:
            base_url, used_data_center = _parse_host(conn.host, conn.port), None
        else:
            base_url, used_data_center = DATA_CENTERS[data_center], data_center
        timeout = _parse_timeout(merged["timeout"])
        return CronofySettings(
            base_url=base_url,
            data_center=used_data_center,
            timeout=(timeout, timeout) if timeout is not None else DEFAULT_TIMEOUT,
            max_retries=_parse_count("max_retries", merged["max_retries"], DEFAULT_MAX_RETRIES),
            rate_limit_per_second=_parse_count(
                "rate_limit_per_second", merged["rate_limit_per_second"], DEFAULT_RATE_LIMIT_PER_SECOND
            ),
            rate_limit_per_minute=_parse_count(
                "rate_limit_per_minute", merged["rate_limit_per_minute"], DEFAULT_RATE_LIMIT_PER_MINUTE
            ),
        )

    @property
    def base_url(self) -> str:
        """The API base URL in use, e.g. ``https://api-uk.cronofy.com`` (no trailing slash)."""
        return self.settings.base_url

    @cached_property
    def _credentials(self) -> _Credentials:
        conn = self._connection
        extra = _extra_of(conn)
        creds = _Credentials(
            api_key=_optional_str(conn.password),
            access_token=_optional_str(extra.get("access_token")),
            client_id=_optional_str(extra.get("client_id")),
            refresh_token=_optional_str(extra.get("refresh_token")),
        )
        for secret in (creds.api_key, creds.access_token, creds.refresh_token):
            if secret:
                mask_secret(secret)
        self._access_token = creds.access_token
        self._refresh_token = creds.refresh_token
        return creds

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
        """The hook's one HTTP session, reused (keep-alive) for every call until :meth:`close`."""
        session = requests.Session()
        # requests re-reads proxy variables from the whole environment and ~/.netrc on every
        # request when trust_env is on (a fifth of a request's CPU time here), and a .netrc entry
        # would replace the Authorization header. Read the environment once, here, instead.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            session.verify = ca_bundle
        session.headers["User-Agent"] = (
            f"airflow-provider-cronofy/{__version__} {requests.utils.default_user_agent()}"
        )
        session.headers["Accept"] = "application/json"
        # Retries are the hook's own (Retry-After, jitter, logging); the adapter must not add more.
        adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=4)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def close(self) -> None:
        """Close the HTTP session (its keep-alive connections). The hook can be used again after."""
        session = self.__dict__.pop("session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> CronofyHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        api_key = self.require_api_key()
        reply = self._send(
            "DELETE", "/v1/meeting_agents", {"scheduling_key": scheduling_key}, api_key, scheduling_key
        )
        if reply.status == 404:
            return False
        if 200 <= reply.status < 300:
            return True
        raise self._api_error(reply, scheduling_key, credential="API key")

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
        body = {"event_id": event_id, "meeting_agent": {"profile_id": "none"}}
        self._calendar_call("POST", calendar_id, event_id, body, scope="create_event")

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Delete an event, which also cancels its Meeting Agent.

        Sends ``DELETE /v1/calendars/{calendar_id}/events`` with ``{"event_id": ...}``, authorised
        by the connection's access token.

        :raises CronofyInputError: an argument is not a usable string (nothing is sent).
        :raises CronofyConfigError: the connection has no access token and cannot get one.
        :raises CronofyAPIError: Cronofy refused (404: the calendar is unknown or not accessible
            to the token; 403: the token lacks the ``delete_event`` scope), after retries.
        """
        self._calendar_call("DELETE", calendar_id, event_id, {"event_id": event_id}, scope="delete_event")

    def refresh_access_token(self) -> None:
        """Get a new access token with the connection's ``client_id`` and ``refresh_token``.

        Sends ``POST /oauth/token`` (grant ``refresh_token``, the API key as client secret). The
        new token is registered with Airflow's secret masker and used for the rest of the hook's
        life. When Cronofy also returns a new refresh token, the hook uses it from then on and
        logs (without the token) that the connection should be updated.

        :raises CronofyConfigError: the connection lacks client_id, refresh_token or API key.
        :raises CronofyAPIError: Cronofy refused (``invalid_grant``: the refresh token was revoked).
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
            raise CronofyConfigError(
                f"Refreshing the access token needs {', '.join(missing)} in connection "
                f"'{self.cronofy_conn_id}'."
            )
        body = {
            "client_id": creds.client_id,
            "client_secret": creds.api_key,
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
        }
        reply = self._send("POST", "/oauth/token", body, None, None)
        if reply.status != 200:
            raise self._token_error(reply)
        payload = _json_or_none(reply.body)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise CronofyAPIError(
                "Cronofy's token endpoint answered 200 without an access token; cannot go on.",
                status_code=reply.status,
                fatal=True,
            )
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
                reply = self._send("GET", "/v1/userinfo", None, creds.access_token, None, retries=0)
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
        from airflow_provider_cronofy.connection_form import connection_form_widgets

        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields of the form, for Airflow 2.11."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    # ------------------------------------------------------------------ internals

    def require_api_key(self) -> str:
        """Return the API key, or raise :class:`CronofyConfigError` saying where it belongs."""
        api_key = self._credentials.api_key
        if not api_key:
            raise CronofyConfigError(
                "Cancelling a scheduled agent needs the API key in the connection's password "
                f"(connection '{self.cronofy_conn_id}' has none)."
            )
        return api_key

    def require_calendar_credentials(self) -> None:
        """Raise :class:`CronofyConfigError` unless the connection has, or can get, an access token."""
        self._credentials  # noqa: B018 - loads the stored tokens
        if self._access_token is None and not self.can_refresh:
            raise CronofyConfigError(
                "Changing calendar events needs a user's access token: set the extra "
                f"access_token of connection '{self.cronofy_conn_id}', or client_id and "
                "refresh_token (with the API key as password) so the hook can get one."
            )

    def _require_access_token(self) -> str:
        self.require_calendar_credentials()
        if self._access_token is None:
            self.refresh_access_token()
        assert self._access_token is not None
        return self._access_token

    def _calendar_call(
        self, method: str, calendar_id: str, event_id: str, body: dict[str, Any], *, scope: str
    ) -> None:
        segment = calendar_path_segment(calendar_id)
        validate_item("event_id", event_id)
        path = f"/v1/calendars/{segment}/events"
        reply = self._send(method, path, body, self._require_access_token(), event_id)
        if reply.status == 401 and self.can_refresh:
            log.info("Cronofy rejected the access token (401); refreshing it once for this call.")
            self.refresh_access_token()
            reply = self._send(method, path, body, self._require_access_token(), event_id)
        if 200 <= reply.status < 300:
            return
        if reply.status == 404:
            raise CronofyAPIError(
                f"Cronofy answered 404 for calendar '{calendar_id}': the calendar does not exist or "
                "is not accessible to the connection's access token (a token of another user or "
                "data center).",
                status_code=404,
                errors=_errors_of(reply.body),
                item=event_id,
                fatal=True,
            )
        raise self._api_error(reply, event_id, credential="access token", scope=scope)

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        token: str | None,
        item: str | None,
        *,
        retries: int | None = None,
    ) -> _Reply:
        """Send one request with pacing and retries; return the last reply (any status).

        Raises :class:`CronofyAPIError` only when no usable reply came (transport errors after
        every retry, a Retry-After beyond :attr:`max_retry_after`, retryable statuses throughout).
        """
        settings = self.settings
        max_retries = settings.max_retries if retries is None else retries
        url = settings.base_url + path
        headers = {"Content-Type": JSON_CONTENT_TYPE} if body is not None else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        what = f"{method} {path}" + (f" for {item!r}" if item is not None else "")

        def attempt() -> _Reply:
            self.pacer.acquire()
            self.requests_sent += 1
            try:
                # No redirects: a 307/308 would re-send the body (the client secret and refresh
                # token of a refresh) to whatever host the Location names, unpaced and uncounted.
                response = self.session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=settings.timeout,
                    stream=True,
                    allow_redirects=False,
                )
            except requests.exceptions.SSLError as error:
                raise CronofyAPIError(
                    f"TLS error talking to {settings.base_url}: {type(error).__name__}.", item=item
                ) from None
            except (requests.ConnectionError, requests.Timeout) as error:
                raise _Retryable(None, error) from None
            except requests.RequestException as error:
                # A malformed URL or request fails every item the same way: stop the run.
                raise CronofyAPIError(
                    f"{what} failed: {type(error).__name__} (base URL {settings.base_url}).",
                    item=item,
                    fatal=True,
                ) from None
            try:
                reply = _read(response)
            except requests.RequestException as error:  # a truncated or reset body
                raise _Retryable(None, error) from None
            log.debug("%s -> %s", what, reply.status)
            if reply.status in RETRYABLE_STATUSES:
                retry_after = _retry_after_seconds(reply.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self.max_retry_after:
                    raise CronofyAPIError(
                        f"Cronofy answered {reply.status} to {what} and asked to wait "
                        f"{retry_after:.0f} s before retrying, more than the {self.max_retry_after:.0f} s "
                        "this hook will sleep for; the item fails instead. Re-run the task later.",
                        status_code=reply.status,
                        item=item,
                    )
                raise _Retryable(reply)
            return reply

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _Retryable) and error.reply is not None:
                retry_after = _retry_after_seconds(error.reply.headers.get("Retry-After"))
                if retry_after is not None:
                    return retry_after
            ceiling = min(self.retry_backoff_max, self.retry_backoff * 2 ** (state.attempt_number - 1))
            # Full jitter: parallel tasks that failed together do not retry together.
            return random.uniform(ceiling / 2, ceiling)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self.retries_spent += 1
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d).",
                what,
                _describe(error),
                state.next_action.sleep if state.next_action else 0.0,
                state.attempt_number + 1,
                max_retries + 1,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max_retries + 1),
            wait=wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=lambda seconds: self.sleep(seconds),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as failed:
            attempts = max_retries + 1
            if failed.reply is not None:
                # The caller turns the last status into its error, naming the attempts made.
                return failed.reply._replace(attempts=attempts)
            raise CronofyAPIError(
                f"{what} failed after {attempts} attempt(s): {_describe(failed)} "
                f"(base URL {settings.base_url}, timeout {settings.timeout[1]:g} s).",
                item=item,
            ) from None

    def _api_error(
        self, reply: _Reply, item: str | None, *, credential: str, scope: str | None = None
    ) -> CronofyAPIError:
        status = reply.status
        errors = _errors_of(reply.body)
        settings = self.settings
        if status == 401:
            where = (
                f"data center '{settings.data_center}' ({settings.base_url})"
                if settings.data_center
                else f"{settings.base_url}"
            )
            if credential == "API key":
                message = (
                    f"Cronofy rejected the API key (401 Unauthorized) at {where}. Check that the "
                    f"password of connection '{self.cronofy_conn_id}' is the application's API key "
                    "(client secret); a key from another data center is rejected too, so check the "
                    "connection's data_center extra."
                )
            else:
                fix = (
                    "even after refreshing it; re-authorise the user and update the connection"
                    if self.can_refresh
                    else "it may have expired or been revoked: add client_id and refresh_token to "
                    "the connection so the hook can refresh it"
                )
                message = (
                    f"Cronofy rejected the access token (401 Unauthorized) at {where}, {fix}. A token "
                    "from another data center is rejected too: check the data_center extra."
                )
        elif status == 402:
            message = (
                "Cronofy answered 402 Payment Required: the application's plan does not include "
                "Meeting Agents (the Emerging plan or above, with the Meeting Agents feature "
                "switched on)."
            )
        elif status == 403:
            needed = _missing_scope(errors) or scope
            message = (
                f"Cronofy answered 403 Forbidden: the {credential} lacks the '{needed}' scope. "
                "Re-authorise the user with that scope."
                if needed
                else f"Cronofy answered 403 Forbidden: the {credential} is not allowed to do this."
            )
        elif status == 422:
            message = "Cronofy rejected the request (422 Unprocessable Entity): " + (
                _describe_errors(errors) or "no detail given"
            )
        elif status == 423:
            message = "Cronofy answered 423 Locked: the account is locked."
        elif status in RETRYABLE_STATUSES:
            # Earlier attempts may have met other faults (a timeout, another status): name the last.
            message = f"Cronofy answered {status} {_status_text(status)}; gave up after {reply.attempts} attempt(s)."
        else:
            message = f"Cronofy answered {status} {_status_text(status)}" + (
                f": {_describe_errors(errors)}" if errors else f" ({_body_summary(reply)})."
            )
        return CronofyAPIError(
            self.redact(message),
            status_code=status,
            errors=errors,
            item=item,
            fatal=status in FATAL_STATUSES,
        )

    def _token_error(self, reply: _Reply) -> CronofyAPIError:
        payload = _json_or_none(reply.body)
        code = payload.get("error") if isinstance(payload, dict) else None
        if code == "invalid_grant":
            message = (
                "Cronofy refused the refresh token of connection "
                f"'{self.cronofy_conn_id}' (400 invalid_grant): it was revoked, or belongs to another "
                "application or data center. Re-authorise the user and put the new refresh token "
                "in the connection's refresh_token extra."
            )
        elif code == "invalid_client" or reply.status == 401:
            message = (
                "Cronofy refused the client credentials while refreshing the access token "
                f"(invalid_client): check the client_id extra and the API key (password) of "
                f"connection '{self.cronofy_conn_id}', and its data center."
            )
        else:
            message = (
                f"Refreshing the access token failed: Cronofy answered {reply.status} "
                f"{_status_text(reply.status)}" + (f" ({code})." if isinstance(code, str) else ".")
            )
        return CronofyAPIError(self.redact(message), status_code=reply.status, fatal=True)

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


# ---------------------------------------------------------------------- settings helpers


def _extra_of(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except Exception:  # a malformed extra must not leak its text into an exception
        raise CronofyConfigError(f"The extra of connection '{conn.conn_id}' is not valid JSON.") from None
    if not isinstance(extra, dict):
        return {}
    # Forms of Airflow before 2.3 stored fields as extra__cronofy__<name>; the bare name wins.
    prefix = "extra__cronofy__"
    legacy = {key[len(prefix) :]: value for key, value in extra.items() if key.startswith(prefix)}
    return {**legacy, **{key: value for key, value in extra.items() if not key.startswith(prefix)}}


def _optional_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CronofyConfigError(f"A credential of the connection is a {type(value).__name__}, not a string.")
    return value


def _parse_data_center(value: object) -> str:
    if value is None or value == "":
        return "us"
    if isinstance(value, str) and value.strip().lower() in DATA_CENTERS:
        return value.strip().lower()
    raise CronofyConfigError(f"Unknown Cronofy data center {value!r}: use one of {', '.join(DATA_CENTERS)}.")


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _parse_host(host: str, port: int | None) -> str:
    raw = host.strip()
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        parsed_port = parts.port
    except ValueError:
        raise CronofyConfigError(f"The connection's host {host!r} is not a valid URL.") from None
    scheme = parts.scheme.lower()
    hostname = parts.hostname or ""
    problem = None
    if scheme not in ("http", "https"):
        problem = f"its scheme must be https:// (not {parts.scheme}://)"
    elif not hostname:
        problem = "it has no host name"
    elif "@" in parts.netloc:
        problem = "it holds user info (credentials belong in the password field)"
    elif parts.query or parts.fragment or "?" in raw or "#" in raw:
        problem = "it holds a query or a fragment"
    elif scheme == "http" and not _is_loopback(hostname):
        problem = "http:// is only allowed for loopback hosts (localhost, 127.0.0.0/8, [::1])"
    elif any(unquote(seg) in (".", "..") for seg in parts.path.split("/")):
        # "%2e%2e" is ".." too: HTTP clients and servers decode it and climb out of the prefix.
        problem = "its path holds a '.' or '..' segment"
    elif parts.path.rstrip("/").endswith("/v1"):
        problem = "it ends in /v1: give the base URL, the hook adds /v1/... itself"
    if problem:
        # host is not a secret once user info is refused; still, never echo user info back.
        shown = host if "@" not in host else "<redacted>"
        raise CronofyConfigError(f"The connection's host {shown!r} is refused: {problem}.")
    netloc = parts.netloc
    if parsed_port is None and port:
        netloc = f"{netloc}:{int(port)}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _parse_timeout(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CronofyConfigError(
            f"timeout must be a number of seconds greater than 0, got {value!r}."
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise CronofyConfigError(f"timeout must be a number of seconds greater than 0, got {value!r}.")
    return seconds


def _parse_count(name: str, value: object, default: int) -> int:
    if value is None or value == "":
        return default
    number: float | None = None
    if not isinstance(value, bool):
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = None
    if number is None or not math.isfinite(number) or number < 0 or number != int(number):
        raise CronofyConfigError(f"{name} must be a whole number, 0 or more, got {value!r}.")
    return int(number)


# ---------------------------------------------------------------------- reply helpers


def _read(response: requests.Response) -> _Reply:
    # Read at most MAX_BODY_BYTES: an error page of megabytes must not fill the worker's memory.
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(64 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                break
    finally:
        response.close()
    return _Reply(response.status_code, response.headers, b"".join(chunks)[:MAX_BODY_BYTES])


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _errors_of(body: bytes) -> Any:
    payload = _json_or_none(body)
    return payload.get("errors") if isinstance(payload, dict) else None


def _describe_errors(errors: Any) -> str:
    if not isinstance(errors, dict):
        return ""
    parts = []
    for field, problems in errors.items():
        descriptions = [
            str(p.get("description") or p.get("key")) if isinstance(p, dict) else str(p)
            for p in (problems if isinstance(problems, list) else [problems])
        ]
        parts.append(f"{field}: {', '.join(descriptions)}")
    return "; ".join(parts)


def _missing_scope(errors: Any) -> str | None:
    if isinstance(errors, dict):
        for problems in errors.values():
            for problem in problems if isinstance(problems, list) else []:
                if isinstance(problem, dict) and "scope" in str(problem.get("key", "")):
                    return str(problem.get("description") or "") or None
    return None


def _status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _body_summary(reply: _Reply) -> str:
    kind = reply.headers.get("Content-Type", "no content type")
    return f"{len(reply.body)} byte body of {kind}"


def _describe(error: BaseException | None) -> str:
    if isinstance(error, _Retryable):
        if error.reply is not None:
            return f"Cronofy answered {error.reply.status} {_status_text(error.reply.status)}"
        error = error.error
    if isinstance(error, requests.Timeout):
        return f"no answer in time ({type(error).__name__})"
    if isinstance(error, requests.ConnectionError):
        return f"connection failed ({type(error).__name__})"
    return type(error).__name__ if error else "unknown error"

"""The connection side of :class:`~airflow_provider_cronofy.hooks.cronofy.CronofyHook`: its
settings, credentials, HTTP session, pacer and transport, its counters, the connection test and
the connection form. No API key or token is ever put into a log line or an exception message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

import requests

from airflow_provider_cronofy._compat import BaseHook, mask_secret
from airflow_provider_cronofy.exceptions import CronofyConfigError, CronofyError
from airflow_provider_cronofy.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_cronofy.hooks import connection_check, error_messages
from airflow_provider_cronofy.hooks.error_messages import Where
from airflow_provider_cronofy.hooks.pacing import RequestPacer, shared_pacer
from airflow_provider_cronofy.hooks.runner import BulkRun
from airflow_provider_cronofy.hooks.settings import CronofySettings, read_credentials, resolve_settings
from airflow_provider_cronofy.hooks.tokens import AccessTokens, Sender
from airflow_provider_cronofy.hooks.transport import RetryPolicy, Transport, open_session


class CronofyConnection(BaseHook):
    """The connection side of :class:`~airflow_provider_cronofy.hooks.cronofy.CronofyHook` (its
    base class): see the hook for the connection's fields and the arguments.
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
        return self.sender("api_key").where

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

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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

"""A hook's credentials: the access token it holds, its single-flight refresh (a refused refresh is
remembered and raised again without asking Cronofy), and the :class:`Sender` of one credential.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from airflow_provider_cronofy._compat import mask_secret
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyError
from airflow_provider_cronofy.hooks import error_messages
from airflow_provider_cronofy.hooks.error_messages import Where, json_or_none
from airflow_provider_cronofy.hooks.settings import Credentials
from airflow_provider_cronofy.hooks.transport import Reply, Request, Transport

log = logging.getLogger(__name__)


class AccessTokens:
    """The access and refresh tokens of one hook, starting from the connection's ``credentials``.

    :param conn_id: the connection's id, for messages and log lines (never a token).
    """

    def __init__(self, credentials: Credentials, conn_id: str) -> None:
        self.credentials = credentials
        self.access_token: str | None = credentials.access_token
        self.refresh_token: str | None = credentials.refresh_token
        self._conn_id = conn_id
        self._lock = threading.Lock()
        self._refusal: CronofyError | None = None
        self._refreshing: threading.Event | None = None  # set once the refresh under way ends

    def redact(self, text: str) -> str:
        """Return ``text`` with every credential of the connection replaced by ``***``."""
        # Messages are built from our own words and Cronofy's error keys; this is the last guard
        # against a server that echoes a credential back.
        creds = self.credentials
        secrets = {
            creds.api_key,
            self.access_token,
            creds.access_token,
            self.refresh_token,
            creds.refresh_token,
        }
        for secret in secrets:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def redact_all(self, value: Any) -> Any:
        """``value`` (JSON: strings, lists, dicts) with :meth:`redact` applied to every string in it."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_all(part) for part in value]
        if isinstance(value, dict):
            return {self.redact_all(key): self.redact_all(part) for key, part in value.items()}
        return value

    @property
    def can_refresh(self) -> bool:
        """Whether the connection has what refreshing an access token needs."""
        creds = self.credentials
        return bool(creds.client_id and self.refresh_token and creds.api_key)

    def current(self, transport: Transport, where: Where, stop: threading.Event | None = None) -> str:
        """The access token to send: the one held, or a new one (refreshed once) when none is."""
        if self.access_token is None:
            self._refresh_once(lambda: self.access_token is None, transport, where, stop)
        assert self.access_token is not None
        return self.access_token

    def after_401(
        self, rejected: str, transport: Transport, where: Where, stop: threading.Event | None = None
    ) -> None:
        """Cronofy rejected ``rejected``: refresh, unless another thread already replaced it."""
        self._refresh_once(
            lambda: self.access_token == rejected,
            transport,
            where,
            stop,
            why="Cronofy rejected the access token (401); refreshing it once.",
        )

    def _refresh_once(
        self,
        still_needed: Callable[[], bool],
        transport: Transport,
        where: Where,
        stop: threading.Event | None,
        why: str | None = None,
    ) -> None:
        # Single flight: the first thread that needs a token refreshes; the others wait for its
        # refresh to end (not on the lock: the refresh sends and may sit out a back-off) and then
        # find `still_needed()` false, so they use its token. A stop ends the refresher's wait at
        # once, and its end wakes every waiter.
        while True:
            with self._lock:
                if self._refusal is not None:
                    raise self._refusal
                if not still_needed():
                    return
                ongoing = self._refreshing
                if ongoing is None:
                    ongoing = self._refreshing = threading.Event()
                    mine = True
                else:
                    mine = False
            if not mine:
                ongoing.wait()
                continue
            try:
                if why:
                    log.info(why)
                self.refresh(transport, where, stop)
            finally:
                with self._lock:
                    self._refreshing = None
                ongoing.set()
            return

    def refresh(self, transport: Transport, where: Where, stop: threading.Event | None = None) -> None:
        """Send ``POST /oauth/token`` and keep the new token (and a rotated refresh token)."""
        creds = self.credentials
        missing = [
            name
            for name, value in (
                ("extra client_id", creds.client_id),
                ("extra refresh_token", self.refresh_token),
                ("password (the API key, used as client secret)", creds.api_key),
            )
            if not value
        ]
        if missing:
            raise error_messages.refresh_settings_missing(missing, self._conn_id)
        body = {
            "client_id": creds.client_id,
            "client_secret": creds.api_key,
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token,
        }
        request = Request("POST", "/oauth/token", body, None)
        # Retried under the single-flight lock that other workers wait on: the run's stop must end
        # a back-off here at once, not after a Retry-After.
        reply = transport.with_retries(lambda: transport.exchange(request, stop=stop), stop=stop)
        if reply.status != 200:
            refusal = error_messages.token_error(reply, where)
            refusal.args = (self.redact(str(refusal)),)
            self._refusal = refusal
            raise refusal
        payload = json_or_none(reply.body)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise error_messages.token_missing_error(reply.status)
        mask_secret(token)
        self.access_token = token
        new_refresh = payload.get("refresh_token") if isinstance(payload, dict) else None
        if isinstance(new_refresh, str) and new_refresh and new_refresh != self.refresh_token:
            mask_secret(new_refresh)
            self.refresh_token = new_refresh
            log.warning(
                "Cronofy issued a new refresh token. This run uses it, but it cannot be stored back "
                "into connection '%s': update the connection's refresh_token extra with a fresh "
                "authorisation, or the stored one may stop working.",
                self._conn_id,
            )
        log.info("Refreshed the Cronofy access token of connection '%s'.", self._conn_id)


class Sender:
    """Sends a connection's requests with one credential, ``auth``: ``"api_key"``, or
    ``"access_token"`` (refreshed once on a 401 when the connection can refresh), and words the
    errors of their answers for that credential (every credential hidden).
    """

    def __init__(self, transport: Transport, tokens: AccessTokens, where: Where, auth: str) -> None:
        self.transport = transport
        self.tokens = tokens
        self.where = where
        self.auth = auth
        self.credential = "API key" if auth == "api_key" else "access token"

    def token(self, stop: threading.Event | None = None) -> str:
        """The credential to send (an access token is refreshed first when the hook has none)."""
        if self.auth == "api_key":
            if not self.tokens.credentials.api_key:
                raise error_messages.api_key_missing(self._conn_id)
            return self.tokens.credentials.api_key
        if self.tokens.access_token is None and not self.tokens.can_refresh:
            raise error_messages.access_token_missing(self._conn_id)
        return self.tokens.current(self.transport, self.where, stop)

    @property
    def _conn_id(self) -> str:
        return self.where.conn_id

    def send(self, request: Request, cost: int = 1, stop: threading.Event | None = None) -> Reply:
        """Send ``request`` once with the credential (see :meth:`.Transport.exchange`)."""
        token = self.token(stop)
        reply = self.transport.exchange(request._replace(token=token), cost=cost, stop=stop)
        if reply.status == 401 and self.auth == "access_token" and self.tokens.can_refresh:
            self.tokens.after_401(token, self.transport, self.where, stop)
            reply = self.transport.exchange(request._replace(token=self.token(stop)), cost=cost, stop=stop)
        return reply

    def error(self, reply: Reply, item: str | None, scope: str | None = None) -> CronofyAPIError:
        """The error of a final non-2xx ``reply`` about ``item``."""
        error = error_messages.api_error(
            reply,
            self.where,
            item=item,
            credential=self.credential,
            can_refresh=self.tokens.can_refresh,
            scope=scope,
        )
        error.args = (self.tokens.redact(str(error)),)
        return error

"""How requests reach Cronofy: the HTTP session, pacing, one attempt, and the retry rule.

Knows settings, the pacer and HTTP, no Cronofy call; a retryable outcome (429, 5xx, a timeout, a
dropped connection) is raised as :class:`RetryLater` for the caller to wait on.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, NamedTuple

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_cronofy import __version__
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyFatalAPIError
from airflow_provider_cronofy.hooks.connection_errors import (
    describe_transport_error,
    loopback_refused_error,
    refused_on_loopback,
    tls_error,
    transport_advice,
)
from airflow_provider_cronofy.hooks.pacing import RequestPacer, Slot, sit_out
from airflow_provider_cronofy.hooks.settings import CronofySettings

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Cronofy's error bodies are small; anything bigger is not read into memory.
MAX_BODY_BYTES = 1 << 20
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

log = logging.getLogger(__name__)


class Reply(NamedTuple):
    """One answer: status, headers and (at most :data:`MAX_BODY_BYTES` of) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    attempts: int = 1
    """Attempts made when this is the last reply of a retry budget spent on retryable statuses."""


class Request(NamedTuple):
    """What one attempt sends. ``token`` goes into the ``Authorization`` header only."""

    method: str
    path: str
    body: Any
    token: str | None
    item: str | None = None

    @property
    def what(self) -> str:
        """``METHOD /path for 'item'``, for log lines and messages (no body, no token)."""
        return f"{self.method} {self.path}" + (f" for {self.item!r}" if self.item is not None else "")


class RetryLater(Exception):
    """One attempt failed in a way worth another try: a retryable reply, or a transport error.
    :meth:`give_up` words the item's failure once its retries are spent."""

    def __init__(
        self, reply: Reply | None, error: Exception | None = None, *, what: str = "", summary: str = ""
    ) -> None:
        super().__init__()
        self.reply = reply
        self.error = error
        self.what = what
        self.summary = summary
        """A transport error in a few words (``describe()``)."""
        self.detail = summary
        """A transport error in full: with the base URL, the timeouts and what to check."""
        self.word: Callable[[Reply], BaseException] | None = None
        self.item: str | None = None

    def worded_by(self, word: Callable[[Reply], BaseException]) -> RetryLater:
        """This retry, its final reply to be worded by ``word``; returns ``self``."""
        self.word = word
        return self

    def for_item(self, item: str) -> RetryLater:
        """A copy of this retry for one ``item`` of the request (an entry of a batch)."""
        retry = RetryLater(self.reply, self.error, what=self.what, summary=self.summary)
        retry.detail, retry.item = self.detail, item
        return retry

    @property
    def retry_after(self) -> float | None:
        """Cronofy's ``Retry-After`` in seconds, when the reply carried a usable one."""
        return retry_after_seconds(self.reply.headers.get("Retry-After")) if self.reply is not None else None

    def describe(self) -> str:
        """What went wrong, in a few words, without the body."""
        if self.reply is not None:
            return f"Cronofy answered {self.reply.status} {status_text(self.reply.status)}"
        return self.summary

    def give_up(self, attempts: int) -> BaseException:
        """The item's failure after ``attempts`` attempts, the last of them this one."""
        if self.reply is not None:
            reply = self.reply._replace(attempts=attempts)
            if self.word is not None:
                return self.word(reply)
            return CronofyAPIError(
                f"{self.what}: Cronofy answered {reply.status} {status_text(reply.status)}; gave up "
                f"after {attempts} attempt(s).",
                status_code=reply.status,
                item=self.item,
            )
        return CronofyAPIError(
            f"{self.what} failed after {attempts} attempt(s): {self.detail}", item=self.item
        )


class NotSent(Exception):
    """The run was stopped before this request left: nothing was sent."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed attempt is retried, for single calls and bulk runs alike.

    :param max_retries: retries after the first attempt.
    :param backoff: first back-off (s) without a ``Retry-After``; doubles up to ``backoff_max``,
        with full jitter.
    :param max_retry_after: a ``Retry-After`` longer than this fails the item instead.
    :param sleep: how a single call waits between attempts; ``None``: real time, on the run's stop.
    """

    max_retries: int
    backoff: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 300.0
    sleep: Callable[[float], None] | None = None

    def may_retry(self, attempts: int) -> bool:
        """Whether an item that has had ``attempts`` attempts gets another (``max_retries`` bounds it)."""
        return attempts <= self.max_retries

    def delay(self, attempt_number: int, retry: RetryLater) -> float:
        """Seconds to wait before attempt ``attempt_number + 1``: ``Retry-After`` or jittered back-off."""
        retry_after = retry.retry_after
        if retry_after is not None:
            return retry_after
        ceiling = min(self.backoff_max, self.backoff * 2 ** (attempt_number - 1))
        # Full jitter: parallel tasks that failed together do not retry together.
        return random.uniform(ceiling / 2, ceiling)


def open_session(base_url: str, pool_size: int) -> requests.Session:
    """A keep-alive session for ``base_url`` whose pool holds ``pool_size`` connections."""
    session = requests.Session()
    # requests re-reads proxy variables from the whole environment and ~/.netrc on every
    # request when trust_env is on (a fifth of a request's CPU time here), and a .netrc entry
    # would replace the Authorization header. Read the environment once, here, instead.
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    session.headers["User-Agent"] = (
        f"airflow-provider-cronofy/{__version__} {requests.utils.default_user_agent()}"
    )
    session.headers["Accept"] = "application/json"
    # Retries are the transport's own (Retry-After, jitter, logging); the adapter must not add
    # more. One pooled connection per request in flight, so no worker opens a throw-away one.
    adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=max(pool_size, 1), pool_block=False)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Transport:
    """Sends requests for one hook: paced, checked against the run's stop, counted."""

    def __init__(
        self, settings: CronofySettings, pacer: RequestPacer, policy: RetryPolicy, session: requests.Session
    ) -> None:
        self.settings = settings
        self.pacer = pacer
        self.policy = policy
        self.session = session
        self._counts = threading.Lock()
        self.requests_sent = 0
        self.retries_spent = 0

    def exchange(self, request: Request, *, cost: int = 1, stop: threading.Event | None = None) -> Reply:
        """Send ``request`` once, paced (``cost`` pacer slots); return the reply.

        :raises NotSent: ``stop`` was set before the request left (nothing was sent).
        :raises RetryLater: a 429/5xx reply, a timeout, a failed or reset connection.
        :raises CronofyAPIError: a ``Retry-After`` is beyond ``max_retry_after``; TLS failed, a
            loopback host refused the connection or the request itself is malformed (a
            :class:`CronofyFatalAPIError`: every call would be).
        """
        headers = {"Content-Type": JSON_CONTENT_TYPE} if request.body is not None else {}
        if request.token is not None:
            headers["Authorization"] = f"Bearer {request.token}"
        data = json.dumps(request.body).encode("utf-8") if request.body is not None else None
        slot = self.pacer.acquire(cost, stop=stop)
        if slot is None:  # the run stopped while this request waited
            raise NotSent
        replied = False
        try:
            if stop is not None and stop.is_set():
                raise NotSent
            reply = self._send(request, headers, data, slot)
            replied = True
            return reply
        except RetryLater as retry:
            replied = retry.reply is not None
            raise
        finally:
            self.pacer.release(slot, replied=replied)

    def _send(self, request: Request, headers: dict[str, str], data: bytes | None, slot: Slot) -> Reply:
        settings = self.settings
        self.pacer.mark_sent(slot)
        with self._counts:
            self.requests_sent += 1
        try:
            # No redirects: a 307/308 would re-send the body (the client secret and refresh
            # token of a refresh) to whatever host the Location names, unpaced and uncounted.
            response = self.session.request(
                request.method,
                settings.base_url + request.path,
                data=data,
                headers=headers,
                timeout=settings.timeout,
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as error:
            raise tls_error(settings, error, item=request.item) from None  # fatal: every request meets it
        except (requests.ConnectionError, requests.Timeout) as error:
            if refused_on_loopback(error, settings):
                # Not retried: nothing listens there, and back-offs do not start it (docs/errors.md).
                raise loopback_refused_error(settings, error, item=request.item) from None
            raise self._transport_retry(request, error) from None
        except requests.RequestException as error:
            # A malformed URL or request fails every item the same way: stop the run.
            raise CronofyFatalAPIError(
                f"{request.what} failed: {type(error).__name__} (base URL {settings.base_url}).",
                item=request.item,
            ) from None
        try:
            reply = read_reply(response)
        except requests.RequestException as error:  # a truncated or reset body
            raise self._transport_retry(request, error) from None
        log.debug("%s -> %s", request.what, reply.status)
        if reply.status in RETRYABLE_STATUSES:
            retry = RetryLater(reply, what=request.what)
            retry.item = request.item
            retry_after, limit = retry.retry_after, self.policy.max_retry_after
            if retry_after is not None and retry_after > limit:
                raise CronofyAPIError(
                    f"Cronofy answered {reply.status} to {request.what} and asked to wait "
                    f"{retry_after:.0f} s before retrying, more than the {limit:.0f} s "
                    "this hook will sleep for; the item fails instead. Re-run the task later.",
                    status_code=reply.status,
                    item=request.item,
                )
            raise retry
        return reply

    def _transport_retry(self, request: Request, error: Exception) -> RetryLater:
        settings = self.settings
        connect, read = settings.timeout
        advice = transport_advice(error, settings)
        retry = RetryLater(None, error, what=request.what, summary=describe_transport_error(error, settings))
        retry.detail = (
            f"{retry.summary} (base URL {settings.base_url}; timeouts {connect:g} s to connect, "
            f"{read:g} s to read)." + (f" {advice}" if advice else "")
        )
        retry.item = request.item
        return retry

    def note_retry(
        self, what: str, retry: RetryLater, delay: float, next_attempt: int, count: int = 1
    ) -> None:
        """Count ``count`` retries (items retried together) and log them once (no body, no token)."""
        with self._counts:
            self.retries_spent += count
        log_retry(what, retry, delay, next_attempt, self.policy)

    def with_retries(
        self, attempt: Callable[[], Reply], *, retries: int | None = None, stop: threading.Event | None = None
    ) -> Reply:
        """Run ``attempt`` until it returns a reply, waiting between retryable failures (``stop``
        ends a wait). After ``retries`` retries (default ``max_retries``) returns the last
        retryable reply, or raises the transport error's failure."""
        policy = self.policy if retries is None else replace(self.policy, max_retries=retries)
        attempts = 1
        while True:
            try:
                return attempt()
            except RetryLater as retry:
                if not policy.may_retry(attempts):
                    if retry.reply is not None:
                        return retry.reply._replace(attempts=attempts)
                    raise retry.give_up(attempts) from None
                delay = policy.delay(attempts, retry)
                attempts += 1
                self.note_retry(retry.what, retry, delay, attempts)
                sit_out(delay, policy.sleep, stop)


def log_retry(what: str, retry: RetryLater, delay: float, next_attempt: int, policy: RetryPolicy) -> None:
    """Log one retry of ``what`` (no body, no token)."""
    log.warning(
        "%s: %s; retrying in %.1f s (attempt %d of %d).",
        what,
        retry.describe(),
        delay,
        next_attempt,
        policy.max_retries + 1,
    )


def read_reply(response: requests.Response) -> Reply:
    """Read at most :data:`MAX_BODY_BYTES` of ``response`` and close it."""
    # An error page of megabytes must not fill the worker's memory.
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
    return Reply(response.status_code, response.headers, b"".join(chunks)[:MAX_BODY_BYTES])


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds from now, or ``None``."""
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


def status_text(status: int) -> str:
    """The reason phrase of an HTTP status (``""`` for a non-standard one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

"""How requests reach Cronofy: the HTTP session, pacing, one attempt, and retries with back-off.

Layering: this module knows settings, the pacer and HTTP; it never imports the hook, and knows
no Cronofy call. An attempt (:meth:`Transport.exchange`) is paced, checked against the run's
:class:`Gate` (passed by the caller: a bulk run's), sent once and read; a retryable outcome (429, 5xx, a timeout, a dropped
connection) is raised as :class:`RetryLater`, so that the caller decides how to wait; a refused
connection to a loopback host is not (see :func:`refused_on_loopback`).

One retry rule, two ways of waiting. Whether an item gets another attempt and after how long is
:class:`RetryPolicy`'s (:meth:`~RetryPolicy.may_retry`, :meth:`~RetryPolicy.delay`), for single
calls and bulk runs alike. How the wait is spent differs, so there are two loops: a single call
(:meth:`Transport.with_retries`) has nothing else to do and sleeps ``policy.sleep``; a bulk run
(``engine._RunState``) must not block a worker, so it re-queues the item with a not-before time
on its clock and sends other items meanwhile. Single calls are not run through the engine: its
wait for a not-before time is measured on the clock, so a test's replaced sleep that returns at
once would spin until the real back-off has passed (and record many sleeps instead of the one
chosen); the sleep alone is what tests replace for a single call.
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
from typing import Any, NamedTuple, Protocol

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
from airflow_provider_cronofy.hooks.pacing import RequestPacer, Slot
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


class Call(NamedTuple):
    """One Cronofy call: what to send, with which credential, and what its final answer means.

    ``auth`` is ``"api_key"`` or ``"access_token"``. ``interpret`` turns a final (non-retryable,
    or budget-spent) reply into the call's result, or raises the call's :class:`CronofyAPIError`.
    """

    request: Request
    auth: str
    interpret: Callable[[Reply], Any]


class RetryLater(Exception):
    """One attempt failed in a way worth another try: a retryable reply, or a transport error."""

    def __init__(self, reply: Reply | None, error: Exception | None = None) -> None:
        super().__init__()
        self.reply = reply
        self.error = error

    @property
    def retry_after(self) -> float | None:
        """Cronofy's ``Retry-After`` in seconds, when the reply carried a usable one."""
        return retry_after_seconds(self.reply.headers.get("Retry-After")) if self.reply is not None else None

    def describe(self, settings: CronofySettings | None = None) -> str:
        """What went wrong, in a few words, without the body (``settings`` name the host and timeouts)."""
        if self.reply is not None:
            return f"Cronofy answered {self.reply.status} {status_text(self.reply.status)}"
        return describe_transport_error(self.error, settings)


class Gate(Protocol):
    """What a send checks before it leaves (a bulk run's gate, see :mod:`.engine`).

    ``stopped`` is set once the run stops: a pacer wait on it wakes at once. :meth:`enter`
    admits one request or raises (the run's "not sent" error), and is the last step before the
    request goes on the wire.
    """

    stopped: threading.Event

    def enter(self) -> None: ...


def wait_out(seconds: float, stop: threading.Event | None = None) -> None:
    """Sit out ``seconds`` of real time: on ``stop`` when given, so that setting it ends the wait."""
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed attempt is retried: the same rule for single calls and bulk runs.

    :param max_retries: retries after the first attempt.
    :param backoff: first back-off in seconds when Cronofy gives no ``Retry-After``; doubles on
        each retry, up to ``backoff_max``, with full jitter.
    :param max_retry_after: a ``Retry-After`` longer than this fails the item instead.
    :param sleep: how a single call waits between attempts (a bulk run re-queues instead):
        ``sleep(seconds, stop)``, where ``stop`` is the run's stop event when the call serves a
        bulk run (a token refresh), else ``None``; the default, :func:`wait_out`, ends the wait
        when ``stop`` is set.
    """

    max_retries: int
    backoff: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 300.0
    sleep: Callable[[float, threading.Event | None], None] = wait_out

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
    """Sends requests for one hook: paced, gated, counted, retried.

    :param settings: the resolved connection settings (base URL, timeouts).
    :param pacer: the process-wide pacer every attempt goes through.
    :param policy: the retry policy (back-off, cap, longest ``Retry-After``, ``max_retries``).
    :param session: the HTTP session to send on.
    """

    def __init__(
        self,
        settings: CronofySettings,
        pacer: RequestPacer,
        policy: RetryPolicy,
        session: requests.Session,
    ) -> None:
        self.settings = settings
        self.pacer = pacer
        self.policy = policy
        self.session = session
        self._counts = threading.Lock()
        self.requests_sent = 0
        self.retries_spent = 0

    def exchange(self, request: Request, *, cost: int = 1, gate: Gate | None = None) -> Reply:
        """Send ``request`` once, paced (``cost`` pacer slots), through ``gate``; return the reply.

        :raises RetryLater: a 429/5xx reply, a timeout, a failed or reset connection.
        :raises Exception: ``gate.enter()``'s error when the run is stopped; nothing was sent.
        :raises CronofyAPIError: a ``Retry-After`` is beyond ``max_retry_after``; TLS failed, a
            loopback host refused the connection (:func:`refused_on_loopback`) or the request
            itself is malformed (a :class:`CronofyFatalAPIError`: every call would be).
        """
        headers = {"Content-Type": JSON_CONTENT_TYPE} if request.body is not None else {}
        if request.token is not None:
            headers["Authorization"] = f"Bearer {request.token}"
        data = json.dumps(request.body).encode("utf-8") if request.body is not None else None
        slot = self.pacer.acquire(cost, stop=gate.stopped if gate is not None else None)
        if slot is None:  # the run stopped while this request waited: the gate refuses it
            assert gate is not None
            gate.enter()
            raise AssertionError("a stopped gate admitted a request")  # pragma: no cover
        replied = False
        try:
            reply = self._send(request, headers, data, gate, slot)
            replied = True
            return reply
        except RetryLater as retry:
            replied = retry.reply is not None
            raise
        finally:
            self.pacer.release(slot, replied=replied)

    def _send(
        self,
        request: Request,
        headers: dict[str, str],
        data: bytes | None,
        gate: Gate | None,
        slot: Slot,
    ) -> Reply:
        settings = self.settings
        if gate is not None:
            gate.enter()
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
            # Fatal: every request meets it.
            raise tls_error(settings, error, item=request.item) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            if refused_on_loopback(error, settings):
                # Not retried: nothing listens there, and back-offs do not start it (docs/errors.md).
                raise loopback_refused_error(settings, error, item=request.item) from None
            raise RetryLater(None, error) from None
        except requests.RequestException as error:
            # A malformed URL or request fails every item the same way: stop the run.
            raise CronofyFatalAPIError(
                f"{request.what} failed: {type(error).__name__} (base URL {settings.base_url}).",
                item=request.item,
            ) from None
        try:
            reply = read_reply(response)
        except requests.RequestException as error:  # a truncated or reset body
            raise RetryLater(None, error) from None
        log.debug("%s -> %s", request.what, reply.status)
        if reply.status in RETRYABLE_STATUSES:
            retry = RetryLater(reply)
            self.check_retry_after(retry, request)
            raise retry
        return reply

    def check_retry_after(self, retry: RetryLater, request: Request) -> None:
        """Raise :class:`CronofyAPIError` if Cronofy asks to wait longer than we will."""
        retry_after = retry.retry_after
        limit = self.policy.max_retry_after
        if retry.reply is not None and retry_after is not None and retry_after > limit:
            raise CronofyAPIError(
                f"Cronofy answered {retry.reply.status} to {request.what} and asked to wait "
                f"{retry_after:.0f} s before retrying, more than the {limit:.0f} s "
                "this hook will sleep for; the item fails instead. Re-run the task later.",
                status_code=retry.reply.status,
                item=request.item,
            )

    def note_retry(
        self, what: str, retry: RetryLater, delay: float, next_attempt: int, count: int = 1
    ) -> None:
        """Count ``count`` retries (items retried together) and log them once (no body, no token)."""
        with self._counts:
            self.retries_spent += count
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d).",
            what,
            retry.describe(self.settings),
            delay,
            next_attempt,
            self.policy.max_retries + 1,
        )

    def with_retries(
        self,
        attempt: Callable[[], Reply],
        request: Request,
        *,
        retries: int | None = None,
        stop: threading.Event | None = None,
    ) -> Reply:
        """Run ``attempt`` until it returns a reply, sleeping ``policy.sleep`` between retryable failures.

        After ``retries`` retries (the policy's ``max_retries`` by default) returns the last
        retryable reply (its ``attempts`` set), or raises when the last failure had no reply.
        ``stop`` (a bulk run's stop event) ends a back-off at once; the next attempt is then
        refused at the run's gate, which ``attempt`` passes.
        """
        policy = self.policy if retries is None else replace(self.policy, max_retries=retries)
        attempts = 1
        while True:
            try:
                return attempt()
            except RetryLater as retry:
                if not policy.may_retry(attempts):
                    return self.settle(request, retry, attempts)
                delay = policy.delay(attempts, retry)
                attempts += 1
                self.note_retry(request.what, retry, delay, attempts)
                policy.sleep(delay, stop)

    def settle(self, request: Request, retry: RetryLater, attempts: int) -> Reply:
        """The outcome of a spent retry budget: the last reply (for the caller to word), or an error.

        :raises CronofyAPIError: the last attempt met a transport error (no reply to word): what
            happened (:func:`describe_transport_error`) and what to check (:func:`transport_advice`).
        """
        if retry.reply is not None:
            return retry.reply._replace(attempts=attempts)
        settings = self.settings
        connect, read = settings.timeout
        advice = transport_advice(retry.error, settings) if retry.error is not None else ""
        raise CronofyAPIError(
            f"{request.what} failed after {attempts} attempt(s): {retry.describe(settings)} (base URL "
            f"{settings.base_url}; timeouts {connect:g} s to connect, {read:g} s to read)."
            + (f" {advice}" if advice else ""),
            item=request.item,
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

"""Why a request got no answer (connection and TLS failures), told apart and worded from the
exception's chain of causes: class names and our own words only, never an exception's text (it
can carry a proxy URL with credentials); a TLS failure shows the SSL library's reason.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from airflow_provider_cronofy.exceptions import CronofyFatalAPIError
from airflow_provider_cronofy.hooks.settings import CronofySettings, is_loopback_host

_DROPPED_SOCKET = (
    ConnectionResetError,  # RemoteDisconnected (closed without an answer) is one too
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.IncompleteRead,
)
"""A connection dropped, as the socket or http.client saw it (named first: the most telling)."""
_DROPPED_WRAPPED = (
    urllib3.exceptions.IncompleteRead,
    urllib3.exceptions.ProtocolError,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class TransportFailure:
    """What a timeout or a connection failure was (class names only)."""

    kind: str
    """``refused``, ``name`` (does not resolve), ``connect_timeout``, ``read_timeout``, ``dropped``,
    ``proxy``, ``connect`` (no connection for another reason) or ``other``."""
    cause: str | None
    """The class name of the cause that tells the kind (with its errno name for a bare ``OSError``);
    ``None`` when there is none beyond the error itself."""


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception behind it, outermost first (urllib3's ``reason``, exceptions
    among the ``args``, ``__cause__`` and ``__context__``)."""
    found: list[BaseException] = []
    seen: set[int] = set()
    pending = [error]
    while pending and len(found) < 64:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        links = [getattr(current, "reason", None), *current.args, current.__cause__, current.__context__]
        pending.extend(link for link in links if isinstance(link, BaseException))
    return found


def transport_failure(error: BaseException) -> TransportFailure:
    """What ``error`` (raised by requests for a send or a body read) was."""
    chain = exception_chain(error)

    def first(*kinds: type[BaseException]) -> BaseException | None:
        return next((cause for cause in chain if isinstance(cause, kinds)), None)

    def found(kind: str, cause: BaseException | None) -> TransportFailure:
        return TransportFailure(
            kind, _cause_name(cause) if cause is not None and cause is not error else None
        )

    if isinstance(error, requests.exceptions.ProxyError) or first(urllib3.exceptions.ProxyError):
        return found("proxy", chain[-1])
    refused = first(ConnectionRefusedError)
    if refused is not None:
        return found("refused", refused)
    unresolved = first(urllib3.exceptions.NameResolutionError, socket.gaierror)
    if unresolved is not None:
        return found("name", unresolved)
    # urllib3's NewConnectionError is a ConnectTimeoutError too (for history's sake): not a timeout.
    connect_timeout = next(
        (
            cause
            for cause in chain
            if isinstance(cause, urllib3.exceptions.ConnectTimeoutError)
            and not isinstance(cause, urllib3.exceptions.NewConnectionError)
        ),
        None,
    ) or first(requests.ConnectTimeout)
    if connect_timeout is not None:
        return found("connect_timeout", connect_timeout)
    read_timeout = first(urllib3.exceptions.ReadTimeoutError) or first(requests.Timeout, TimeoutError)
    if read_timeout is not None:
        return found("read_timeout", read_timeout)
    dropped = first(*_DROPPED_SOCKET) or first(*_DROPPED_WRAPPED)
    if dropped is not None:
        return found("dropped", dropped)
    unconnected = first(urllib3.exceptions.NewConnectionError)
    if unconnected is not None:
        behind = next((cause for cause in reversed(chain) if isinstance(cause, OSError)), unconnected)
        return found("connect", behind)
    return found("other", chain[-1])


def _cause_name(cause: BaseException) -> str:
    name = type(cause).__name__
    code = getattr(cause, "errno", None)
    if type(cause) is OSError and isinstance(code, int) and code in errno.errorcode:
        return f"{name} {errno.errorcode[code]}"  # e.g. OSError ENETUNREACH
    return name


def host_and_port(base_url: str) -> str:
    """``host:port`` of ``base_url``, the scheme's default port written out (``[::1]:8765``)."""
    parts = urlsplit(base_url)
    hostname = parts.hostname or ""
    shown = f"[{hostname}]" if ":" in hostname else hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{shown}:{port}"


def refused_on_loopback(error: BaseException, settings: CronofySettings) -> bool:
    """Whether ``error`` is a connection refused by a loopback host (not through a proxy): not
    retried (why: docs/errors.md, "When the server cannot be reached")."""
    hostname = urlsplit(settings.base_url).hostname or ""
    return is_loopback_host(hostname) and transport_failure(error).kind == "refused"


def describe_transport_error(error: BaseException | None, settings: CronofySettings | None = None) -> str:
    """A timeout or connection failure in a few words: what happened, and where (class names and
    our words only)."""
    if error is None:
        return "unknown error"
    failure = transport_failure(error)
    if isinstance(error, requests.Timeout):
        head = f"no answer in time ({type(error).__name__})"
    elif isinstance(error, requests.ConnectionError) or failure.kind != "other":
        # requests raises a body cut short as a ChunkedEncodingError, not a ConnectionError.
        head = f"connection failed ({type(error).__name__})"
    else:
        return type(error).__name__
    where = host_and_port(settings.base_url) if settings is not None else "the server"
    cause = f" ({failure.cause})" if failure.cause else ""
    if failure.kind == "refused":
        detail = f"refused, nothing listens at {where}{cause}"
    elif failure.kind == "name":
        hostname = urlsplit(settings.base_url).hostname if settings is not None else None
        detail = f"the host name{f' {hostname!r}' if hostname else ''} does not resolve{cause}"
    elif failure.kind == "connect_timeout":
        within = f" ({settings.timeout[0]:g} s)" if settings is not None else ""
        detail = f"no connection to {where} within the connect timeout{within}"
    elif failure.kind == "read_timeout":
        within = f" ({settings.timeout[1]:g} s)" if settings is not None else ""
        detail = f"connected to {where}, but no answer within the read timeout{within}"
    elif failure.kind == "dropped":
        detail = f"the connection to {where} was reset or closed before the answer was complete{cause}"
    elif failure.kind == "proxy":
        detail = f"the proxy failed, the request did not reach {where}{cause}"
    elif failure.kind == "connect":
        detail = f"could not connect to {where}{cause}"
    else:
        return head
    return f"{head}: {detail}"


def transport_advice(error: BaseException, settings: CronofySettings) -> str:
    """What to check after ``error`` (a timeout or connection failure), in a sentence or two."""
    kind = transport_failure(error).kind
    where = host_and_port(settings.base_url)
    if kind == "refused":
        return (
            f"Is the server running and listening at {where} (Cronofy, a proxy, the emulator), "
            "and is the connection's host right?"
        )
    if kind == "name":
        return "Is the connection's host spelled right, and can the worker resolve host names (DNS)?"
    if kind == "connect_timeout":
        return (
            f"Is {where} reachable from the worker (a firewall, a host that is down)? The "
            "connection's timeout extra sets how long a connection may take."
        )
    if kind == "read_timeout":
        return (
            "The server accepted the connection but did not answer in time; if it is expected to "
            "be this slow, raise the connection's timeout extra."
        )
    if kind == "dropped":
        return (
            "The server, or a proxy or load balancer in between, closed the connection; this is "
            "usually passing, and a later run may succeed."
        )
    if kind == "proxy":
        return "Check the worker's HTTPS_PROXY / HTTP_PROXY / NO_PROXY variables and that the proxy is up."
    return "Is Cronofy (or the emulator) reachable from the worker, and is the connection's host right?"


def tls_error(settings: CronofySettings, error: BaseException, *, item: str | None) -> CronofyFatalAPIError:
    """A TLS failure talking to ``settings.base_url`` (fatal: every request would meet it), with
    what to do."""
    cause = _ssl_cause(error)
    base_url = settings.base_url
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message or cause.reason or "not trusted"
        message = (
            f"TLS certificate check failed talking to {base_url} ({detail}). If the server's "
            "certificate is signed by your own CA (a corporate proxy, a test server), set "
            "REQUESTS_CA_BUNDLE on the worker to a PEM file holding that CA; otherwise check the "
            "connection's host."
        )
    else:
        reason = getattr(cause, "reason", None) or type(cause or error).__name__
        message = f"TLS handshake with {base_url} failed ({reason})."
    if settings.scheme_defaulted and base_url.startswith("https://"):
        plain = "http://" + base_url[len("https://") :]
        message += (
            " The connection's host has no scheme, so https:// was assumed; if the server speaks "
            f"plain HTTP (the Cronofy emulator does unless started with --certfile), write the host "
            f"as {plain} (http:// is allowed for loopback hosts only)."
        )
    elif not isinstance(cause, ssl.SSLCertVerificationError):
        message += " Check that the connection's host is a Cronofy API (or a TLS proxy) serving https://."
    return CronofyFatalAPIError(message, item=item)


def loopback_refused_error(
    settings: CronofySettings, error: BaseException, *, item: str | None
) -> CronofyFatalAPIError:
    """A loopback host refused the connection (fatal at once, see :func:`refused_on_loopback`)."""
    where = host_and_port(settings.base_url)
    cause = transport_failure(error).cause or type(error).__name__
    return CronofyFatalAPIError(
        f"Connection refused by {where}: nothing listens there ({cause}). Is the Cronofy "
        f"emulator (or the server the connection's host names) running and listening at {where}, "
        "and is the connection's host right? A refused connection to a loopback host is not "
        "retried: every other request would meet it too. Start the server, then try again.",
        item=item,
    )


def _ssl_cause(error: BaseException) -> BaseException | None:
    """The :class:`ssl.SSLError` behind a ``requests`` SSLError (wrapped by urllib3), if any."""
    return next((cause for cause in exception_chain(error) if isinstance(cause, ssl.SSLError)), None)

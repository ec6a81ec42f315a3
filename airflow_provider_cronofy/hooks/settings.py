"""A ``cronofy`` connection's settings and credentials: read, resolved and validated (nothing sent).

Each error is a :class:`CronofyConfigError` naming the bad value and what is allowed; how values
are read (numeric strings, blanks meaning unset): docs/connection.md.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from airflow_provider_cronofy.exceptions import CronofyConfigError
from airflow_provider_cronofy.get_provider_info import (
    DATA_CENTERS,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    DEFAULT_RATE_LIMIT_PER_SECOND,
)
from airflow_provider_cronofy.validation import MAX_CONCURRENCY_LIMIT, has_dot_segment

DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 30.0)
"""Connect and read timeout in seconds when the connection sets none: never unbounded."""

DEFAULT_MAX_RETRIES = 5

DEFAULT_MAX_CONCURRENCY = 20
"""Requests in flight when nothing sets ``max_concurrency`` and pacing per second is off."""


def default_max_concurrency(rate_limit_per_second: int) -> int:
    """Requests in flight when nothing sets ``max_concurrency``: the per-second limit (at most 100),
    or :data:`DEFAULT_MAX_CONCURRENCY` without one (why: docs/howto/concurrency.md)."""
    if not rate_limit_per_second:
        return DEFAULT_MAX_CONCURRENCY
    return max(1, min(rate_limit_per_second, MAX_CONCURRENCY_LIMIT))


BATCH_RATE_COSTS = ("request", "entries")
"""How a ``POST /v1/batch`` counts against the pacer: as one request, or as one per entry."""


@dataclass(frozen=True)
class CronofySettings:
    """A connection resolved and validated: what the hook will use. Holds no secret."""

    base_url: str
    data_center: str | None
    timeout: tuple[float, float]
    max_retries: int
    rate_limit_per_second: int
    rate_limit_per_minute: int
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    batch_rate_cost: str = "request"
    scheme_defaulted: bool = False
    """The connection's host had no scheme and ``https://`` was assumed (a TLS error then says so)."""


class Credentials(NamedTuple):
    """The secrets a connection holds (any may be ``None``). Never logged, never in a message."""

    api_key: str | None
    access_token: str | None
    client_id: str | None
    refresh_token: str | None


SETTING_NAMES = (
    "data_center",
    "timeout",
    "max_retries",
    "rate_limit_per_second",
    "rate_limit_per_minute",
    "max_concurrency",
    "batch_rate_cost",
)
"""The extras a hook argument may override (an argument that is not unset, see :func:`is_unset`, wins)."""


def resolve_settings(conn: Any, overrides: dict[str, Any]) -> CronofySettings:
    """The settings of Airflow connection ``conn``, ``overrides`` winning over its extras."""
    extra = extra_of(conn)
    merged = {
        # A blank argument means "unset", as a blank extra does: the extra then applies.
        name: extra.get(name) if is_unset(overrides.get(name)) else overrides.get(name)
        for name in SETTING_NAMES
    }
    data_center = parse_data_center(merged["data_center"])
    if conn.host:
        base_url, used_data_center = parse_host(conn.host, conn.port), None
    else:
        base_url, used_data_center = DATA_CENTERS[data_center], data_center
    timeout = parse_timeout(merged["timeout"])
    per_second = parse_count(
        "rate_limit_per_second", merged["rate_limit_per_second"], DEFAULT_RATE_LIMIT_PER_SECOND
    )
    return CronofySettings(
        base_url=base_url,
        data_center=used_data_center,
        timeout=(timeout, timeout) if timeout is not None else DEFAULT_TIMEOUT,
        max_retries=parse_count("max_retries", merged["max_retries"], DEFAULT_MAX_RETRIES),
        rate_limit_per_second=per_second,
        rate_limit_per_minute=parse_count(
            "rate_limit_per_minute", merged["rate_limit_per_minute"], DEFAULT_RATE_LIMIT_PER_MINUTE
        ),
        max_concurrency=parse_max_concurrency(
            merged["max_concurrency"], default=default_max_concurrency(per_second)
        ),
        batch_rate_cost=parse_batch_rate_cost(merged["batch_rate_cost"]),
        scheme_defaulted=bool(conn.host) and "://" not in conn.host,
    )


def read_credentials(conn: Any) -> Credentials:
    """The credentials of Airflow connection ``conn`` (a non-string one is refused, not shown)."""
    extra = extra_of(conn)
    return Credentials(
        api_key=_optional_str(conn.password),
        access_token=_optional_str(extra.get("access_token")),
        client_id=_optional_str(extra.get("client_id")),
        refresh_token=_optional_str(extra.get("refresh_token")),
    )


def extra_of(conn: Any) -> dict[str, Any]:
    """The connection's extras as a dict, legacy ``extra__cronofy__<name>`` keys included."""
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


def is_unset(value: object) -> bool:
    """Whether a setting's ``value`` means "use the default": ``None``, ``""`` or white space alone."""
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: object) -> float | None:
    """``value`` as a float (a number, or a string of one), or ``None``; never a bool."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]  # float() strips white space around a string
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond a float's range
        return None


def _shown(value: object) -> str:
    """``repr(value)`` for a message, cut to 100 characters (an extra can hold anything)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        return f"a {type(value).__name__} too long to show"
    return text if len(text) <= 100 else text[:97] + "..."


def _optional_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CronofyConfigError(f"A credential of the connection is a {type(value).__name__}, not a string.")
    return value


def parse_data_center(value: object) -> str:
    """A data center id (``us`` when unset), case and surrounding blanks ignored."""
    return _parse_choice(
        value,
        list(DATA_CENTERS),
        f"Unknown Cronofy data center {_shown(value)}: use one of",
        " (the data_center extra)",
    )


def _parse_choice(value: object, choices: list[str], refusal: str, source: str = "") -> str:
    # The first choice is the default; the message lists the choices, then ``source``.
    if is_unset(value):
        return choices[0]
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    raise CronofyConfigError(f"{refusal} {', '.join(choices)}{source}.")


def is_loopback_host(hostname: str) -> bool:
    """Whether ``hostname`` (as written, not resolved) is ``localhost``, in 127.0.0.0/8 or ``::1``."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def parse_host(host: str, port: int | None) -> str:
    """The base URL that the connection's ``host`` (and ``port``) name, without a trailing slash."""
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
    elif any(ch.isspace() or not ch.isprintable() for ch in raw):
        # Some urllib3 releases percent-encode a space in a host instead of refusing the URL:
        # every request would then fail on its own, item by item, instead of the run stopping.
        problem = "it holds white space or a control character"
    elif "@" in parts.netloc:
        problem = "it holds user info (credentials belong in the password field)"
    elif parts.query or parts.fragment or "?" in raw or "#" in raw:
        problem = "it holds a query or a fragment"
    elif scheme == "http" and not is_loopback_host(hostname):
        problem = "http:// is only allowed for loopback hosts (localhost, 127.0.0.0/8, [::1])"
    elif has_dot_segment(parts.path):
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


def parse_timeout(value: object) -> float | None:
    """Seconds greater than 0 (``30``, ``"2.5"``), or ``None`` when unset."""
    if is_unset(value):
        return None
    seconds = _number(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise CronofyConfigError(f"timeout must be a number of seconds greater than 0, got {_shown(value)}.")
    return seconds


def parse_count(name: str, value: object, default: int) -> int:
    """A whole number, 0 or more (``default`` when unset); ``"5"``, ``" 5 "`` and ``5.0`` are accepted."""
    if is_unset(value):
        return default
    number = _number(value)
    if number is None or not math.isfinite(number) or number < 0 or number != int(number):
        raise CronofyConfigError(f"{name} must be a whole number, 0 or more, got {_shown(value)}.")
    return int(number)


def parse_max_concurrency(value: object, default: int = DEFAULT_MAX_CONCURRENCY) -> int:
    """Requests in flight at once: a whole number from 1 to :data:`MAX_CONCURRENCY_LIMIT` (``default`` when unset)."""
    message = (
        f"max_concurrency must be a whole number from 1 to {MAX_CONCURRENCY_LIMIT}, got {_shown(value)}."
    )
    try:
        number = parse_count("max_concurrency", value, default)
    except CronofyConfigError:
        raise CronofyConfigError(message) from None
    if not 1 <= number <= MAX_CONCURRENCY_LIMIT:
        raise CronofyConfigError(message)
    return number


def parse_batch_rate_cost(value: object) -> str:
    """``request`` (default: a batch counts as one request) or ``entries`` (one per entry)."""
    return _parse_choice(
        value, list(BATCH_RATE_COSTS), f"batch_rate_cost {_shown(value)} is refused: use one of"
    )

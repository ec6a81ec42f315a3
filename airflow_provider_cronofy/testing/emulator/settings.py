"""The emulator's settings: what Cronofy's rules read at each request, and how values are checked.

The settings are plain attributes of ``CronofyEmulator`` (tests change them while it runs);
``Settings`` names the ones the rules read, so that no rule module imports the emulator class.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from typing import Protocol

Latency = float | Callable[[], float]
"""Seconds added to every answer: a fixed number, or a zero-argument callable drawing one per request."""

BATCH_RATE_COSTS = ("request", "entries")

REPEATED_SCHEDULING_KEY_MODES = ("replace", "duplicate", "refuse")
"""What ``POST /v1/meeting_agents`` does with a ``scheduling_key`` that has a live agent already."""


class Settings(Protocol):
    api_key: str
    client_id: str
    rate_limit_per_second: int | None
    rate_limit_per_minute: int | None
    unknown_scheduling_key_status: int
    access_token_lifetime: int
    rotate_refresh_tokens: bool
    partial_event_updates: bool
    verbose: bool
    ssl_context: ssl.SSLContext | None

    @property
    def batch_rate_cost(self) -> str: ...

    @property
    def repeated_scheduling_key(self) -> str: ...


def check_settings(settings: Settings) -> None:
    """Raise ``ValueError`` (``TypeError`` for a non-context ``ssl_context``) for a bad setting."""
    if settings.unknown_scheduling_key_status not in (202, 404):
        raise ValueError("unknown_scheduling_key_status must be 202 or 404")
    for name in ("rate_limit_per_second", "rate_limit_per_minute"):
        limit = getattr(settings, name)
        if limit is not None and limit < 0:
            raise ValueError(f"{name} must be >= 0 or None")
    if settings.access_token_lifetime < 0:
        raise ValueError("access_token_lifetime must be >= 0")
    context = settings.ssl_context
    if context is not None:
        if not isinstance(context, ssl.SSLContext):
            raise TypeError("ssl_context must be an ssl.SSLContext")
        if context.protocol == ssl.PROTOCOL_TLS_CLIENT or context.check_hostname:
            raise ValueError(
                "ssl_context must be a server-side context, e.g. ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
            )


def check_latency(value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a callable or a finite number of seconds >= 0."""
    if not callable(value):
        draw_latency(value)  # type: ignore[arg-type]


def draw_latency(latency: Latency) -> float:
    """Seconds to wait: ``latency`` itself, or what it draws; ``ValueError`` for a bad draw."""
    seconds = latency() if callable(latency) else latency
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise ValueError(f"latency must be a finite number of seconds >= 0, got {seconds!r}")
    return float(seconds)


def check_batch_rate_cost(value: object) -> None:
    if value not in BATCH_RATE_COSTS:
        raise ValueError(
            f"batch_rate_cost must be one of {', '.join(map(repr, BATCH_RATE_COSTS))}, got {value!r}"
        )


def check_repeated_scheduling_key(value: object) -> None:
    if value not in REPEATED_SCHEDULING_KEY_MODES:
        raise ValueError(
            "repeated_scheduling_key must be one of "
            f"{', '.join(map(repr, REPEATED_SCHEDULING_KEY_MODES))}, got {value!r}"
        )

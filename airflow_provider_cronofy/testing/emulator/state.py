"""Cronofy's data: Meeting Agents, calendars, events, access and refresh tokens.

``CronofyState`` holds it behind one lock, with the set-up helpers tests call directly (never
through HTTP). What a request does to it lives in the route modules (``meeting_agents``,
``calendars``, ``accounts``, ``batch``), which run with the lock held.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from airflow_provider_cronofy.testing.emulator.settings import Settings

DEFAULT_SCOPES: tuple[str, ...] = ("read_events", "create_event", "delete_event")
"""Scopes given to access and refresh tokens registered without explicit scopes."""

DEFAULT_ACCOUNT_ID = "acc_emulator"
"""Account that owns tokens registered without an explicit account."""


@dataclass
class AccessToken:
    scopes: tuple[str, ...]
    account_id: str
    expires_at: float | None = None
    expired: bool = False

    def is_valid(self, now: float) -> bool:
        return not self.expired and (self.expires_at is None or now < self.expires_at)


@dataclass
class RefreshToken:
    scopes: tuple[str, ...]
    account_id: str


class CronofyState:
    """Everything Cronofy knows, and the settings its rules read; ``lock`` guards all of it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.agents: dict[str, dict[str, Any]] = {}
        self.calendars: dict[str, str] = {}  # calendar id -> token whose account owns it
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.event_writes: dict[tuple[str, str], int] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.dead_refresh_tokens: set[str] = set()

    # Set-up and inspection, for CronofyEmulator's helpers: each takes the lock.

    def schedule_agent(self, scheduling_key: str, join_url: str, join_time: str) -> None:
        with self.lock:
            self.store_agent(scheduling_key, join_url, join_time)

    def add_calendar(self, calendar_id: str, access_token: str) -> None:
        with self.lock:
            self.calendars[calendar_id] = access_token

    def add_event(self, calendar_id: str, event_id: str, summary: str, meeting_agent: bool) -> None:
        with self.lock:
            if calendar_id not in self.calendars:
                raise ValueError(f"unknown calendar {calendar_id!r}: call add_calendar() first")
            self.events[(calendar_id, event_id)] = {
                "summary": summary,
                "start": "2030-01-01T10:00:00Z",
                "end": "2030-01-01T11:00:00Z",
                "meeting_agent": "cronofy" if meeting_agent else None,
                "deleted": False,
            }

    def add_access_token(self, token: str, scopes: tuple[str, ...], account_id: str, expired: bool) -> None:
        with self.lock:
            self.access_tokens[token] = AccessToken(tuple(scopes), account_id, expired=expired)

    def add_refresh_token(self, refresh_token: str, scopes: tuple[str, ...], account_id: str) -> None:
        with self.lock:
            self.refresh_tokens[refresh_token] = RefreshToken(tuple(scopes), account_id)
            self.dead_refresh_tokens.discard(refresh_token)

    def expire_access_token(self, token: str) -> None:
        with self.lock:
            if token not in self.access_tokens:
                raise KeyError(f"unknown access token {token!r}")
            self.access_tokens[token].expired = True

    def revoke_refresh_token(self, refresh_token: str) -> None:
        with self.lock:
            if refresh_token in self.refresh_tokens:
                del self.refresh_tokens[refresh_token]
                self.dead_refresh_tokens.add(refresh_token)
            elif refresh_token not in self.dead_refresh_tokens:
                raise KeyError(f"unknown refresh token {refresh_token!r}")

    def snapshot_agents(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {key: dict(agent) for key, agent in self.agents.items()}

    def snapshot_events(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self.lock:
            return {key: dict(event) for key, event in self.events.items()}

    def snapshot_event_writes(self) -> dict[tuple[str, str], int]:
        with self.lock:
            return dict(self.event_writes)

    # Called by the routes, lock held.

    def store_agent(self, scheduling_key: str, join_url: str, join_time: str) -> None:
        previous = self.agents.get(scheduling_key, {})
        self.agents[scheduling_key] = {
            "status": "scheduled",
            "join_url": join_url,
            "join_time": join_time,
            "cancel_requests": previous.get("cancel_requests", 0),
        }

    def count_event_write(self, calendar_id: str, event_id: str) -> None:
        key = (calendar_id, event_id)
        self.event_writes[key] = self.event_writes.get(key, 0) + 1

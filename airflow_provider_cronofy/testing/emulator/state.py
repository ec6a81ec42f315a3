"""Cronofy's data: Meeting Agents, calendars, events, access and refresh tokens.

Meeting Agents scheduled for later are kept by scheduling key, every agent a key ever had (a key
may hold several live ones when ``repeated_scheduling_key`` is ``"duplicate"``); agents sent at
once (no key) are kept in a list of their own.

``CronofyState`` holds it behind one lock, with the set-up helpers tests call directly (never
through HTTP). What a request does to it lives in the route modules (``meeting_agents``,
``calendars``, ``accounts``, ``batch``), which run with the lock held.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
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


@dataclass
class MeetingAgent:
    """One agent as Cronofy holds it; ``status`` is ``"scheduled"`` (live) or ``"cancelled"``."""

    sub: str
    join_url: str
    join_time: str | None
    on_behalf_of_attendee: dict[str, Any] | None = None
    subscriptions: list[Any] | None = None
    status: str = "scheduled"
    replaced: int = 0  # times a repeated key rewrote it ("replace")

    @property
    def live(self) -> bool:
        return self.status == "scheduled"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "status": self.status,
            "join_url": self.join_url,
            "join_time": self.join_time,
            "on_behalf_of_attendee": copy.deepcopy(self.on_behalf_of_attendee),
            "subscriptions": copy.deepcopy(self.subscriptions),
            "replaced": self.replaced,
        }


@dataclass
class KeyAgents:
    """Every agent one scheduling key had, oldest first, and how many cancels the key received."""

    agents: list[MeetingAgent] = field(default_factory=list)
    cancel_requests: int = 0

    def live(self) -> list[MeetingAgent]:
        return [agent for agent in self.agents if agent.live]

    def summary(self) -> dict[str, Any]:
        # The shape scheduled_agents has always had: one entry per key, its newest live agent
        # (or its newest agent when none is live).
        live = self.live()
        shown = live[-1] if live else self.agents[-1]
        return {
            "status": "scheduled" if live else "cancelled",
            "join_url": shown.join_url,
            "join_time": shown.join_time,
            "cancel_requests": self.cancel_requests,
        }


class RepeatedKeyRefused(Exception):
    """A live agent holds the scheduling key and ``repeated_scheduling_key`` is ``"refuse"``."""


class CronofyState:
    """Everything Cronofy knows, and the settings its rules read; ``lock`` guards all of it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.agents: dict[str, KeyAgents] = {}
        self.sent_agents: list[MeetingAgent] = []  # sent at once: no scheduling key
        self._agent_count = 0
        self.calendars: dict[str, str] = {}  # calendar id -> token whose account owns it
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.event_writes: dict[tuple[str, str], int] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.dead_refresh_tokens: set[str] = set()

    # Set-up and inspection, for CronofyEmulator's helpers: each takes the lock.

    def schedule_agent(self, scheduling_key: str, join_url: str, join_time: str) -> None:
        with self.lock:
            try:
                self.store_agent(MeetingAgent("", join_url, join_time), scheduling_key)
            except RepeatedKeyRefused:
                raise ValueError(
                    f"scheduling key {scheduling_key!r} has a live agent already and "
                    'repeated_scheduling_key is "refuse": cancel it first, or pick another mode'
                ) from None

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
            return {key: record.summary() for key, record in self.agents.items()}

    def snapshot_agents_by_key(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            return {key: [agent.as_dict() for agent in record.agents] for key, record in self.agents.items()}

    def live_agent_counts(self) -> dict[str, int]:
        with self.lock:
            return {key: len(record.live()) for key, record in self.agents.items()}

    def snapshot_sent_agents(self) -> list[dict[str, Any]]:
        with self.lock:
            return [agent.as_dict() for agent in self.sent_agents]

    def snapshot_events(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self.lock:
            return {key: dict(event) for key, event in self.events.items()}

    def snapshot_event_writes(self) -> dict[tuple[str, str], int]:
        with self.lock:
            return dict(self.event_writes)

    # Called by the routes, lock held.

    def new_sub(self) -> str:
        self._agent_count += 1
        return f"mag_emu_{self._agent_count:06d}"

    def store_agent(self, agent: MeetingAgent, scheduling_key: str) -> MeetingAgent:
        """Schedule ``agent`` under ``scheduling_key`` as ``repeated_scheduling_key`` says; return
        the live agent that now carries the request (``agent`` itself, or the one it replaced).

        Raises ``RepeatedKeyRefused`` (nothing changed) when the key has a live agent and the mode
        is ``"refuse"``. A key without a live agent schedules anew in every mode.
        """
        record = self.agents.setdefault(scheduling_key, KeyAgents())
        live = record.live()
        mode = self.settings.repeated_scheduling_key
        if live and mode == "refuse":
            raise RepeatedKeyRefused(scheduling_key)
        if live and mode == "replace":
            current = live[-1]
            current.join_url = agent.join_url
            current.join_time = agent.join_time
            current.on_behalf_of_attendee = agent.on_behalf_of_attendee
            current.subscriptions = agent.subscriptions
            current.replaced += 1
            return current
        agent.sub = self.new_sub()
        record.agents.append(agent)
        return agent

    def send_agent(self, agent: MeetingAgent) -> MeetingAgent:
        agent.sub = self.new_sub()
        self.sent_agents.append(agent)
        return agent

    def cancel_agents(self, scheduling_key: str) -> int:
        """Cancel every live agent of the key (counting the request); return how many were live."""
        record = self.agents.get(scheduling_key)
        if record is None:
            return 0
        record.cancel_requests += 1
        live = record.live()
        for agent in live:
            agent.status = "cancelled"
        return len(live)

    def count_event_write(self, calendar_id: str, event_id: str) -> None:
        key = (calendar_id, event_id)
        self.event_writes[key] = self.event_writes.get(key, 0) + 1

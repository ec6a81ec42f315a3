"""Shared by the emulator tests: the accounts, tokens and calendars of the ``emu`` fixture, and
one-line HTTP calls (with ``requests``) to the emulator's endpoints."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_cronofy.testing import CronofyEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok_alice"
OTHER_TOKEN = "tok_bob"
REFRESH = "rt_alice"
TIMEOUT = 5


def set_up_accounts(emulator: CronofyEmulator) -> CronofyEmulator:
    """Alice (``TOKEN``) owns ``cal_1``; Bob (``OTHER_TOKEN``) owns ``cal_bob``."""
    emulator.add_access_token(TOKEN, account_id="acc_alice")
    emulator.add_access_token(OTHER_TOKEN, account_id="acc_bob")
    emulator.add_calendar("cal_1", access_token=TOKEN)
    emulator.add_calendar("cal_bob", access_token=OTHER_TOKEN)
    return emulator


def api_key(emu: CronofyEmulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.api_key}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cancel(client, emu, key, headers=None, timeout=TIMEOUT, **kwargs):
    """``DELETE /v1/meeting_agents`` for ``key`` through ``client`` (a session, or ``requests``
    itself for a connection of its own)."""
    return client.delete(
        f"{emu.url}/v1/meeting_agents",
        json={"scheduling_key": key},
        headers=api_key(emu) if headers is None else headers,
        timeout=timeout,
        **kwargs,
    )


def upsert(session, emu, body, calendar="cal_1", token=TOKEN):
    return session.post(
        f"{emu.url}/v1/calendars/{calendar}/events", json=body, headers=bearer(token), timeout=TIMEOUT
    )


def delete_event(session, emu, body, calendar="cal_1", token=TOKEN):
    return session.delete(
        f"{emu.url}/v1/calendars/{calendar}/events", json=body, headers=bearer(token), timeout=TIMEOUT
    )


def refresh(session, emu, refresh_token=REFRESH, **overrides):
    body = {
        "client_id": emu.client_id,
        "client_secret": emu.api_key,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        **overrides,
    }
    return session.post(f"{emu.url}/oauth/token", json=body, timeout=TIMEOUT)


def error_keys(response) -> dict[str, str]:
    return {name: details[0]["key"] for name, details in response.json()["errors"].items()}


def batch(session, emu, entries, token=TOKEN):
    return session.post(
        f"{emu.url}/v1/batch", json={"batch": entries}, headers=bearer(token), timeout=TIMEOUT
    )


def entry(method: str, event_id: str, calendar: str = "cal_1", **data):
    return {
        "method": method,
        "relative_url": f"/v1/calendars/{calendar}/events",
        "data": {"event_id": event_id, **data},
    }


def remove_agent(event_id: str, calendar: str = "cal_1"):
    """A batch entry that removes the Meeting Agent of an event (a partial upsert)."""
    return entry("POST", event_id, calendar, meeting_agent={"profile_id": "none"})


def statuses(response) -> list[int]:
    return [answer["status"] for answer in response.json()["batch"]]


@dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


def port_of(emu: CronofyEmulator) -> int:
    return int(emu.url.rsplit(":", 1)[1])

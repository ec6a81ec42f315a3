"""What ``--verbose`` adds to each access-log line: the scheduling key or event ids a request
carried. Only those fields (and a batch entry's calendar, from its ``relative_url`` path) are
read from a body; credentials (the Authorization header, a token request's client secret and
refresh token) never are."""

from __future__ import annotations

from typing import Any

from airflow_provider_cronofy.testing.emulator.calendars import events_calendar

IDS_SHOWN = 5
"""A batch names this many entries, then how many more it carried."""

MAX_SHOWN = 200
"""Characters shown of one id (or ``calendar:event`` pair) at most."""


def carried_ids(body: Any) -> str:
    """`` scheduling_key='k1'``, `` event_id='e1'`` or, for a batch,
    `` batch of 3: calendar:event 'cal_a:e1', 'cal_a:e2', 'cal_b:e1'``; ``""`` when the body names none.

    A batch entry is named ``calendar_id:event_id`` (the form ``--event`` takes), so that a run
    over several calendars can be followed; an entry whose ``relative_url`` names no calendar's
    events reads ``?:event_id``. A single event call names its calendar in the request path.
    """
    if not isinstance(body, dict):
        return ""
    for field in ("scheduling_key", "event_id"):
        if field in body:
            return f" {field}={body[field]!r:.{MAX_SHOWN}}"
    entries = body.get("batch")
    if not isinstance(entries, list):
        return ""
    named = [
        _calendar_and_event(entry)
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("data"), dict) and "event_id" in entry["data"]
    ]
    if not named:
        return f" batch of {len(entries)}"
    shown = ", ".join(f"{pair!r:.{MAX_SHOWN}}" for pair in named[:IDS_SHOWN])
    more = f" and {len(named) - IDS_SHOWN} more" if len(named) > IDS_SHOWN else ""
    return f" batch of {len(entries)}: calendar:event {shown}{more}"


def _calendar_and_event(entry: dict[str, Any]) -> str:
    relative_url = entry.get("relative_url")
    # Only the path's calendar segment is read: a query string is never shown.
    calendar_id = events_calendar(relative_url.partition("?")[0]) if isinstance(relative_url, str) else None
    return f"{calendar_id if calendar_id is not None else '?'}:{entry['data']['event_id']}"

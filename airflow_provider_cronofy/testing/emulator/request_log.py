"""What ``--verbose`` adds to each access-log line: the scheduling key or event ids a request
carried. Only those fields are read from a body; credentials (the Authorization header, a token
request's client secret and refresh token) never are."""

from __future__ import annotations

from typing import Any

IDS_SHOWN = 5
"""A batch names this many event ids, then how many more it carried."""


def carried_ids(body: Any) -> str:
    """`` scheduling_key='k1'``, `` event_id='e1'`` or `` batch of 3: event_id 'e1', 'e2', 'e3'``;
    ``""`` when the body names none."""
    if not isinstance(body, dict):
        return ""
    for field in ("scheduling_key", "event_id"):
        if field in body:
            return f" {field}={body[field]!r:.200}"
    entries = body.get("batch")
    if isinstance(entries, list):
        ids = [
            entry["data"]["event_id"]
            for entry in entries
            if isinstance(entry, dict) and isinstance(entry.get("data"), dict) and "event_id" in entry["data"]
        ]
        shown = ", ".join(f"{event_id!r:.200}" for event_id in ids[:IDS_SHOWN])
        more = f" and {len(ids) - IDS_SHOWN} more" if len(ids) > IDS_SHOWN else ""
        return f" batch of {len(entries)}: event_id {shown}{more}" if ids else f" batch of {len(entries)}"
    return ""

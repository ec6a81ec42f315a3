"""``POST /v1/batch``: up to 50 event upserts and deletes in one request, answered 207.

The whole batch needs a valid access token (401 otherwise) and a well-formed body (422 for the
whole batch: no ``batch`` list, 0 or more than 50 entries, an entry without ``method`` or
``relative_url``, ``data`` not an object). Each entry is then handled exactly as the same request
on its own would be, in order; an entry that is not an event upsert or delete answers 422 on
``relative_url``. Injected entry faults (``Faults.entry_fault``) answer an entry 429 or 5xx.
Run with the state's lock held.
"""

from __future__ import annotations

import json
from typing import Any, cast

from airflow_provider_cronofy.testing.emulator.accounts import require_access_token
from airflow_provider_cronofy.testing.emulator.answers import (
    REQUIRED,
    FieldErrors,
    Reject,
    Response,
    error,
    errors,
    invalid,
    json_body,
    json_response,
    parse_json_lenient,
)
from airflow_provider_cronofy.testing.emulator.calendars import event_call, events_calendar
from airflow_provider_cronofy.testing.emulator.faults import Faults
from airflow_provider_cronofy.testing.emulator.records import RecordedBatchEntry
from airflow_provider_cronofy.testing.emulator.state import CronofyState

BATCH_MAX_ENTRIES = 50
"""Most requests one ``POST /v1/batch`` may carry, as Cronofy documents."""


def batch(state: CronofyState, faults: Faults, headers: dict[str, str], body: bytes, now: float) -> Response:
    """Answer a batch: 207 with one ``{"status", "data"?}`` per entry, in order."""
    require_access_token(state, headers, now)
    entries = _entries(json_body(headers, body))
    entry_headers = {"authorization": headers.get("authorization", ""), "content-type": "application/json"}
    answers: list[dict[str, object]] = []
    recorded: list[RecordedBatchEntry] = []
    for entry in entries:
        response = faults.entry_fault() or _entry(state, entry, entry_headers, now)
        answer: dict[str, object] = {"status": response.status}
        if response.body:
            answer["data"] = json.loads(response.body)
        answers.append(answer)
        recorded.append(
            RecordedBatchEntry(entry["method"], entry["relative_url"], entry.get("data"), response.status)
        )
    result = json_response(207, {"batch": answers})
    result.batch_entries = tuple(recorded)
    return result


def batch_cost(body: bytes) -> int:
    """What a batch weighs when it counts once per entry: its number of entries, or 1 when malformed."""
    data = parse_json_lenient(body)
    entries = data.get("batch") if isinstance(data, dict) else None
    if isinstance(entries, list) and 1 <= len(entries) <= BATCH_MAX_ENTRIES:
        return len(entries)
    return 1


def _entry(state: CronofyState, entry: dict[str, Any], headers: dict[str, str], now: float) -> Response:
    method = entry["method"].upper()
    calendar_id = events_calendar(entry["relative_url"].partition("?")[0])
    if calendar_id is None or method not in ("POST", "DELETE"):
        return error(
            422,
            "relative_url",
            "errors.not_batchable",
            "only POST and DELETE /v1/calendars/{calendar_id}/events can be batched",
        )
    data = entry.get("data")
    body = b"" if data is None else json.dumps(data).encode()
    try:
        return event_call(state, method, calendar_id, headers, body, now)
    except Reject as reject:
        return reject.response


def _entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a batch body, or raise ``Reject`` (422) naming what is malformed."""
    entries = data.get("batch")
    field_errors: FieldErrors = {}
    if entries is None:
        field_errors["batch"] = REQUIRED
    elif not isinstance(entries, list):
        field_errors["batch"] = invalid("must be a list of requests")
    elif not 1 <= len(entries) <= BATCH_MAX_ENTRIES:
        field_errors["batch"] = invalid(f"must hold 1 to {BATCH_MAX_ENTRIES} requests, got {len(entries)}")
    else:
        for index, entry in enumerate(entries):
            field_errors.update(_entry_errors(index, entry))
    if field_errors:
        raise Reject(errors(422, field_errors))
    return cast(list[dict[str, Any]], entries)


def _entry_errors(index: int, entry: object) -> FieldErrors:
    if not isinstance(entry, dict):
        return {f"batch.{index}": invalid("must be an object with method, relative_url and data")}
    field_errors: FieldErrors = {}
    for name in ("method", "relative_url"):
        value = entry.get(name)
        if value is None or value == "":
            field_errors[f"batch.{index}.{name}"] = REQUIRED
        elif not isinstance(value, str):
            field_errors[f"batch.{index}.{name}"] = invalid("must be a string")
    if "data" in entry and not isinstance(entry["data"], dict):
        field_errors[f"batch.{index}.data"] = invalid("must be an object")
    return field_errors

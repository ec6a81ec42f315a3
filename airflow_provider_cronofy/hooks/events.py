"""The calendar-event calls that cancel a Meeting Agent, and their batched form.

One event: ``POST /v1/calendars/{calendar_id}/events`` (remove the agent, keep the event) or
``DELETE`` the same path (delete the event). Many events: up to :data:`BATCH_MAX_ENTRIES` of those
requests in one ``POST /v1/batch``, which Cronofy answers ``207`` with one status per entry, in
order. :class:`EventBatchJob` is the bulk engine's job for the batched form; it knows the wire
format and what each entry's status means, and is handed the sending and the wording.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from airflow_provider_cronofy.exceptions import CronofyAPIError
from airflow_provider_cronofy.hooks.transport import RETRYABLE_STATUSES, Gate, Reply, Request, RetryLater

BATCH_MAX_ENTRIES = 50
"""Most requests one ``POST /v1/batch`` may carry (Cronofy's documented limit)."""


def event_scope(delete_event: bool) -> str:
    """The OAuth scope the event call needs: ``delete_event``, or ``create_event`` to upsert."""
    return "delete_event" if delete_event else "create_event"


def event_request(event_id: str, *, delete_event: bool) -> tuple[str, dict[str, Any], str]:
    """Method, body and needed scope of the event call that cancels ``event_id``'s agent."""
    if delete_event:
        return "DELETE", {"event_id": event_id}, event_scope(delete_event)
    return "POST", {"event_id": event_id, "meeting_agent": {"profile_id": "none"}}, event_scope(delete_event)


class EventBatchJob:
    """A bulk job sending the events of one calendar in batches of up to ``unit_size``.

    - the whole batch meets 429/5xx/a timeout: every event of it is retried (the calls are
      idempotent), together, in a later batch; a 401 refreshes the token once (``send`` does);
    - an entry answering 2xx: that event is cancelled;
    - an entry answering 429 or 5xx: that event is re-sent in a later batch, within its retries;
    - any other entry status: that event fails with ``outcome``'s error (404: the calendar is
      unknown, which stops the run; 422: Cronofy's field errors).

    :param path: ``/v1/calendars/{encoded calendar id}/events``.
    :param send: sends a request once (with the access token) and returns the reply; its second
        argument is the pacer cost of the request, its third the gate of the unit (the engine's).
    :param settle: the last reply of an item whose retries are spent (see ``Transport.settle``).
    :param outcome: raises the error of one event's final reply (returns when it is a 2xx).
    :param cost_per_entry: count a batch as one request per entry against the pacer.
    """

    def __init__(
        self,
        path: str,
        *,
        delete_event: bool,
        send: Callable[[Request, int, Gate], Reply],
        settle: Callable[[Request, RetryLater, int], Reply],
        outcome: Callable[[Reply, str], None],
        unit_size: int = BATCH_MAX_ENTRIES,
        cost_per_entry: bool = False,
    ) -> None:
        self.path = path
        self.delete_event = delete_event
        self._send = send
        self._settle = settle
        self._outcome = outcome
        self.unit_size = max(1, min(unit_size, BATCH_MAX_ENTRIES))
        self.cost_per_entry = cost_per_entry

    def attempt(self, items: list[str], gate: Gate) -> list[Any]:
        """Send ``items`` as one ``POST /v1/batch`` through ``gate``; one result per item (see the class)."""
        entries = []
        for event_id in items:
            method, body, _ = event_request(event_id, delete_event=self.delete_event)
            entries.append({"method": method, "relative_url": self.path, "data": body})
        what = items[0] if len(items) == 1 else f"{len(items)} events"
        request = Request("POST", "/v1/batch", {"batch": entries}, None, what)
        reply = self._send(request, len(items) if self.cost_per_entry else 1, gate)
        if reply.status != 207:
            # The batch itself was refused (401 after a refresh, 402, 403, 422, ...): each event
            # fails with what a request of its own would have met.
            return [self._failed(reply, event_id) for event_id in items]
        answers = _entry_answers(reply.body, len(items))
        if answers is None:
            error = CronofyAPIError(
                f"Cronofy answered 207 to a batch of {len(items)} without one status per request; "
                "the events' state is unknown: re-run the task (the calls are idempotent).",
                status_code=207,
            )
            return [error] * len(items)
        return [
            self._entry_result(status, data, event_id)
            for (status, data), event_id in zip(answers, items, strict=True)
        ]

    def settle(self, item: str, retry: RetryLater, attempts: int) -> Any:
        """The final result of ``item`` after ``attempts`` batches ending in ``retry``."""
        request = Request("POST", "/v1/batch", None, None, item)
        try:
            return self._failed(self._settle(request, retry, attempts), item)
        except CronofyAPIError as error:
            return error

    def _entry_result(self, status: int, data: Any, event_id: str) -> Any:
        entry = Reply(
            status, {"Content-Type": "application/json"}, json.dumps(data).encode() if data else b""
        )
        if status in RETRYABLE_STATUSES:
            return RetryLater(entry)
        return self._failed(entry, event_id)

    def _failed(self, reply: Reply, event_id: str) -> Any:
        try:
            self._outcome(reply, event_id)
        except CronofyAPIError as error:
            return error
        return None  # a 2xx: cancelled


def _entry_answers(body: bytes, count: int) -> list[tuple[int, Any]] | None:
    """``[(status, data), ...]`` from a 207 body, or ``None`` unless it has ``count`` entries."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    answers = payload.get("batch") if isinstance(payload, dict) else None
    if not isinstance(answers, list) or len(answers) != count:
        return None
    result = []
    for answer in answers:
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, int) or isinstance(status, bool):
            return None
        result.append((status, answer.get("data")))
    return result

"""Events across calendars: the bulk job cancelling the agents of ``(calendar_id, event_id)`` items.

Each item is sent as the event call of its own calendar (``POST`` or ``DELETE
/v1/calendars/{calendar_id}/events``, see :mod:`.events`): on its own, or up to
:data:`~.events.BATCH_MAX_ENTRIES` to a ``POST /v1/batch`` whose entries may name different
calendars (each entry's ``relative_url`` is its calendar's events path).

An unknown calendar (Cronofy answers 404 for one of its events) fails that calendar's events
only: the job remembers the calendar, and its events not sent yet fail without being sent
(their reason begins :data:`~airflow_provider_cronofy.wording.NOT_SENT`); the other calendars' events go on. Errors every other item would meet too
(401, 402, 403, 423, a refused refresh token) still stop the whole run: the token is shared.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from airflow_provider_cronofy.exceptions import CronofyAPIError
from airflow_provider_cronofy.hooks import error_messages
from airflow_provider_cronofy.hooks.events import BATCH_MAX_ENTRIES, _entry_answers, event_request
from airflow_provider_cronofy.hooks.transport import RETRYABLE_STATUSES, Gate, Reply, Request, RetryLater
from airflow_provider_cronofy.validation import calendar_path_segment
from airflow_provider_cronofy.wording import NOT_SENT

EventKey = tuple[str, str]
"""An item of this job: ``(calendar_id, event_id)``."""


def events_path(calendar_id: str) -> str:
    """``/v1/calendars/{calendar_id}/events``, the id percent-encoded as one path segment."""
    return f"/v1/calendars/{calendar_path_segment(calendar_id)}/events"


def describe_event(item: EventKey) -> str:
    """``event 'evt' of calendar 'cal'``, for log lines and messages."""
    calendar_id, event_id = item
    return f"event {event_id!r} of calendar {calendar_id!r}"


def not_sent_error(item: EventKey) -> CronofyAPIError:
    """The failure of an event not sent because its calendar answered 404 earlier in the run."""
    calendar_id, event_id = item
    return CronofyAPIError(
        f"{NOT_SENT}calendar '{calendar_id}' is unknown (Cronofy answered 404 for another of its "
        "events in this run).",
        item=event_id,
    )


def unknown_calendar_error(calendar_id: str, reply: Reply, event_id: str) -> CronofyAPIError:
    """The 404 of one event: worded as a single-calendar run words it, but not fatal here."""
    fatal = error_messages.unknown_calendar_error(calendar_id, reply, item=event_id)
    return CronofyAPIError(str(fatal), status_code=404, errors=fatal.errors, item=event_id)


class CalendarEventsJob:
    """A bulk job (see :class:`~.engine.Job`) over :data:`EventKey` items of any calendars.

    With ``use_batch`` up to ``unit_size`` events go to one ``POST /v1/batch`` (entries of
    different calendars together), and each entry's status is read as :class:`~.events.EventBatchJob`
    reads it (429/5xx: re-sent later; 2xx: cancelled); otherwise one request per event. A result
    is ``None`` (cancelled) or the event's error: for a 404, the unknown-calendar error (not
    fatal: only that calendar's events fail); for anything else, ``api_error``'s.

    :param delete_event: delete the events instead of removing their agents.
    :param send: sends a request once (with the access token) and returns the reply; its second
        argument is the pacer cost of the request, its third the gate of the unit (the engine's).
    :param settle: the last reply of an item whose retries are spent (see ``Transport.settle``).
    :param api_error: the error of an event's final non-2xx, non-404 reply ``(reply, event_id)``.
    :param use_batch: send through ``POST /v1/batch``.
    :param unit_size: events per batch (at most 50).
    :param cost_per_entry: count a batch as one request per entry against the pacer.
    """

    def __init__(
        self,
        *,
        delete_event: bool,
        send: Callable[[Request, int, Gate], Reply],
        settle: Callable[[Request, RetryLater, int], Reply],
        api_error: Callable[[Reply, str], CronofyAPIError],
        use_batch: bool = True,
        unit_size: int = BATCH_MAX_ENTRIES,
        cost_per_entry: bool = False,
    ) -> None:
        self.delete_event = delete_event
        self.use_batch = use_batch
        self._send = send
        self._settle = settle
        self._api_error = api_error
        self.unit_size = max(1, min(unit_size, BATCH_MAX_ENTRIES)) if use_batch else 1
        self.cost_per_entry = cost_per_entry and use_batch
        self._unknown: set[str] = set()
        self._unknown_lock = threading.Lock()  # workers record and read it concurrently

    @property
    def unknown_calendars(self) -> set[str]:
        """The calendars that answered 404 in this job's run so far."""
        with self._unknown_lock:
            return set(self._unknown)

    def note_unknown_calendar(self, calendar_id: str) -> None:
        """Fail the events of ``calendar_id`` not sent yet without sending them (it answered 404)."""
        with self._unknown_lock:
            self._unknown.add(calendar_id)

    def attempt(self, items: list[Any], gate: Gate) -> list[Any]:
        """Send one attempt for ``items`` (:data:`EventKey` s) through ``gate``: one result per item, in order."""
        unknown = self.unknown_calendars
        results: list[Any] = [not_sent_error(item) if item[0] in unknown else None for item in items]
        to_send = [(index, item) for index, item in enumerate(items) if item[0] not in unknown]
        if not to_send:
            return results
        if self.use_batch:
            answers = self._attempt_batch([item for _, item in to_send], gate)
        else:
            [(_, item)] = to_send
            answers = [self._outcome(self._send(self._single_request(item), 1, gate), item)]
        for (index, _), answer in zip(to_send, answers, strict=True):
            results[index] = answer
        return results

    def settle(self, item: Any, retry: RetryLater, attempts: int) -> Any:
        """The final result of ``item`` (an :data:`EventKey`) after ``attempts`` attempts ending in ``retry``."""
        request = (
            Request("POST", "/v1/batch", None, None, describe_event(item))
            if self.use_batch
            else self._single_request(item)
        )
        try:
            return self._outcome(self._settle(request, retry, attempts), item)
        except CronofyAPIError as error:
            return error

    def _single_request(self, item: EventKey) -> Request:
        calendar_id, event_id = item
        method, body, _ = event_request(event_id, delete_event=self.delete_event)
        return Request(method, events_path(calendar_id), body, None, event_id)

    def _attempt_batch(self, items: list[EventKey], gate: Gate) -> list[Any]:
        entries = []
        for calendar_id, event_id in items:
            method, body, _ = event_request(event_id, delete_event=self.delete_event)
            entries.append({"method": method, "relative_url": events_path(calendar_id), "data": body})
        what = describe_event(items[0]) if len(items) == 1 else f"{len(items)} events"
        reply = self._send(
            Request("POST", "/v1/batch", {"batch": entries}, None, what),
            len(items) if self.cost_per_entry else 1,
            gate,
        )
        if reply.status != 207:
            # The batch itself was refused (401 after a refresh, 402, 403, 422, ...): each event
            # fails with that answer; a status of the batch is no calendar's.
            return [self._api_error(reply, event_id) for _, event_id in items]
        answers = _entry_answers(reply.body, len(items))
        if answers is None:
            error = CronofyAPIError(
                f"Cronofy answered 207 to a batch of {len(items)} without one status per request; "
                "the events' state is unknown: re-run the task (the calls are idempotent).",
                status_code=207,
            )
            return [error] * len(items)
        results: list[Any] = []
        for (status, data), item in zip(answers, items, strict=True):
            entry = Reply(
                status, {"Content-Type": "application/json"}, json.dumps(data).encode() if data else b""
            )
            results.append(RetryLater(entry) if status in RETRYABLE_STATUSES else self._outcome(entry, item))
        return results

    def _outcome(self, reply: Reply, item: EventKey) -> CronofyAPIError | None:
        calendar_id, event_id = item
        if 200 <= reply.status < 300:
            return None
        if reply.status == 404:
            self.note_unknown_calendar(calendar_id)
            return unknown_calendar_error(calendar_id, reply, event_id)
        return self._api_error(reply, event_id)

"""The calendar-event calls that cancel a Meeting Agent: one event, and many in one bulk job.

One event: ``POST /v1/calendars/{calendar_id}/events`` (remove the agent, keep the event) or
``DELETE`` the same path (delete the event), authorised by the access token
(:func:`event_cancellation_call`). Many events: :class:`EventCancellationJob`, the bulk engine's
job, sends one such request per event, or up to :data:`BATCH_MAX_ENTRIES` of them in one
``POST /v1/batch`` (entries may name different calendars), which Cronofy answers ``207`` with one
status per entry, in order. :func:`event_cancellation_job` sizes it from the connection's settings.

The job has two forms, which differ in their items and in what a 404 means:

- **one calendar** (``calendar_id`` given): items are event ids; a 404 means the calendar is
  unknown, which every other event would meet too: a fatal error, the run stops;
- **across calendars** (``calendar_id=None``): items are ``(calendar_id, event_id)``
  (:data:`EventKey`); a 404 fails that calendar's events only: the job remembers the calendar,
  and its events not sent yet fail without being sent (their reason begins
  :data:`~airflow_provider_cronofy.wording.NOT_SENT`); the other calendars' events go on.

In both, errors every other item would meet too (401, 402, 403, 423, a refused refresh token)
stop the whole run: the token is shared. What the calls need of the hook is passed in: sending
once (``send``), ending a spent retry budget (``settle``) and wording an error (``api_error``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from airflow_provider_cronofy.exceptions import CronofyAPIError
from airflow_provider_cronofy.hooks import error_messages
from airflow_provider_cronofy.hooks.settings import CronofySettings
from airflow_provider_cronofy.hooks.transport import (
    RETRYABLE_STATUSES,
    Call,
    Gate,
    Reply,
    Request,
    RetryLater,
)
from airflow_provider_cronofy.validation import calendar_path_segment, validate_item
from airflow_provider_cronofy.wording import NOT_SENT

BATCH_MAX_ENTRIES = 50
"""Most requests one ``POST /v1/batch`` may carry (Cronofy's documented limit)."""

EventKey = tuple[str, str]
"""An event of any calendar: ``(calendar_id, event_id)``."""

Send = Callable[[Request, int, Gate], Reply]
"""Sends a request once with the access token (a 401 refreshes it once) through the unit's gate;
its second argument is the request's pacer cost."""

Settle = Callable[[Request, RetryLater, int], Reply]
"""The last reply of an item whose retries are spent (see ``Transport.settle``)."""

ApiError = Callable[[Reply, str], CronofyAPIError]
"""The error of an event's final non-2xx reply ``(reply, event_id)``, worded for the access token."""


def event_scope(delete_event: bool) -> str:
    """The OAuth scope the event call needs: ``delete_event``, or ``create_event`` to upsert."""
    return "delete_event" if delete_event else "create_event"


def event_request(event_id: str, *, delete_event: bool) -> tuple[str, dict[str, Any], str]:
    """Method, body and needed scope of the event call that cancels ``event_id``'s agent."""
    if delete_event:
        return "DELETE", {"event_id": event_id}, event_scope(delete_event)
    return "POST", {"event_id": event_id, "meeting_agent": {"profile_id": "none"}}, event_scope(delete_event)


def events_path(calendar_id: str) -> str:
    """``/v1/calendars/{calendar_id}/events``, the id percent-encoded as one path segment.

    :raises CronofyInputError: ``calendar_id`` is unusable.
    """
    return f"/v1/calendars/{calendar_path_segment(calendar_id)}/events"


def describe_event(item: EventKey) -> str:
    """``event 'evt' of calendar 'cal'``, for log lines and messages."""
    calendar_id, event_id = item
    return f"event {event_id!r} of calendar {calendar_id!r}"


def event_cancellation_request(calendar_id: str, event_id: str, *, delete_event: bool) -> Request:
    """The request (without its token) that removes the agent from, or deletes, one event."""
    method, body, _ = event_request(event_id, delete_event=delete_event)
    return Request(method, events_path(calendar_id), body, None, event_id)


def event_outcome(
    reply: Reply, calendar_id: str, event_id: str, api_error: ApiError
) -> CronofyAPIError | None:
    """``None`` for a 2xx (cancelled), else the event's error: for a 404, the (fatal) unknown calendar."""
    if 200 <= reply.status < 300:
        return None
    if reply.status == 404:
        return error_messages.unknown_calendar_error(calendar_id, reply, item=event_id)
    return api_error(reply, event_id)


def event_cancellation_call(
    calendar_id: str, event_id: str, *, delete_event: bool, api_error: ApiError
) -> Call:
    """The call that removes the agent from (or deletes) one event; its result is ``None``.

    Its final answer: 2xx returns; 404 raises the unknown-calendar error (fatal); anything else
    raises ``api_error``'s.

    :raises CronofyInputError: ``calendar_id`` or ``event_id`` is unusable.
    """
    events_path(calendar_id)  # the calendar is checked first
    validate_item("event_id", event_id)
    request = event_cancellation_request(calendar_id, event_id, delete_event=delete_event)

    def interpret(reply: Reply) -> None:
        error = event_outcome(reply, calendar_id, event_id, api_error)
        if error is not None:
            raise error

    return Call(request, "access_token", interpret)


def not_sent_error(item: EventKey) -> CronofyAPIError:
    """The failure of an event not sent because its calendar answered 404 earlier in the run."""
    calendar_id, event_id = item
    return CronofyAPIError(
        f"{NOT_SENT}calendar '{calendar_id}' is unknown (Cronofy answered 404 for another of its "
        "events in this run).",
        item=event_id,
    )


def event_cancellation_job(
    calendar_id: str | None,
    *,
    settings: CronofySettings,
    delete_event: bool,
    use_batch: bool,
    send: Send,
    settle: Settle,
    api_error: ApiError,
) -> EventCancellationJob:
    """The bulk job cancelling events of ``calendar_id`` (event-id items), or of any calendars (``None``).

    A batch counts as one request against the pacer, or as one per entry when the connection's
    ``batch_rate_cost`` is ``entries`` (then a batch also holds no more entries than the smallest
    rate limit).

    :raises CronofyInputError: ``calendar_id`` is unusable.
    """
    per_entry = settings.batch_rate_cost == "entries"
    limits = [limit for limit in (settings.rate_limit_per_second, settings.rate_limit_per_minute) if limit]
    return EventCancellationJob(
        calendar_id,
        delete_event=delete_event,
        send=send,
        settle=settle,
        api_error=api_error,
        use_batch=use_batch,
        unit_size=min([BATCH_MAX_ENTRIES, *limits]) if per_entry else BATCH_MAX_ENTRIES,
        cost_per_entry=per_entry,
    )


class EventCancellationJob:
    """A bulk job (see :class:`~.engine.Job`) cancelling the agents of events; see the module docstring.

    With ``use_batch`` up to ``unit_size`` events go to one ``POST /v1/batch``:

    - the whole batch meets 429/5xx/a timeout: every event of it is retried (the calls are
      idempotent), together, in a later batch; a 401 refreshes the token once (``send`` does);
    - an entry answering 2xx: that event is cancelled;
    - an entry answering 429 or 5xx: that event is re-sent in a later batch, within its retries;
    - any other entry status: that event fails (a 404 as the form says; otherwise ``api_error``'s).

    Without, one request per event. A result is ``None`` (cancelled) or the event's error.

    :param calendar_id: the one calendar of every item (items are event ids), or ``None`` (items
        are :data:`EventKey` s of any calendars).
    :param delete_event: delete the events instead of removing their agents.
    :param use_batch: send through ``POST /v1/batch``.
    :param unit_size: events per batch (at most 50).
    :param cost_per_entry: count a batch as one request per entry against the pacer.
    """

    def __init__(
        self,
        calendar_id: str | None,
        *,
        delete_event: bool,
        send: Send,
        settle: Settle,
        api_error: ApiError,
        use_batch: bool = True,
        unit_size: int = BATCH_MAX_ENTRIES,
        cost_per_entry: bool = False,
    ) -> None:
        if calendar_id is not None:
            events_path(calendar_id)  # refuse an unusable calendar before any request
        self.calendar_id = calendar_id
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
        """The calendars that answered 404 in this job's run so far (across calendars only)."""
        with self._unknown_lock:
            return set(self._unknown)

    def note_unknown_calendar(self, calendar_id: str) -> None:
        """Fail the events of ``calendar_id`` not sent yet without sending them (it answered 404)."""
        with self._unknown_lock:
            self._unknown.add(calendar_id)

    def attempt(self, items: list[Any], gate: Gate) -> list[Any]:
        """Send one attempt for ``items`` through ``gate``: one result per item, in order."""
        keys = [self._key(item) for item in items]
        unknown = self.unknown_calendars
        results: list[Any] = [not_sent_error(key) if key[0] in unknown else None for key in keys]
        to_send = [(index, key) for index, key in enumerate(keys) if key[0] not in unknown]
        if not to_send:
            return results
        if self.use_batch:
            answers = self._attempt_batch([key for _, key in to_send], gate)
        else:
            [(_, key)] = to_send
            answers = [self._outcome(self._send(self._single_request(key), 1, gate), key)]
        for (index, _), answer in zip(to_send, answers, strict=True):
            results[index] = answer
        return results

    def settle(self, item: Any, retry: RetryLater, attempts: int) -> Any:
        """The final result of ``item`` after ``attempts`` attempts ending in ``retry``."""
        key = self._key(item)
        request = (
            Request("POST", "/v1/batch", None, None, self._describe(key))
            if self.use_batch
            else self._single_request(key)
        )
        try:
            return self._outcome(self._settle(request, retry, attempts), key)
        except CronofyAPIError as error:
            return error

    def _key(self, item: Any) -> EventKey:
        return (self.calendar_id, item) if self.calendar_id is not None else item

    def _describe(self, key: EventKey) -> str:
        # One calendar: the event id says it all (the calendar is the task's).
        return key[1] if self.calendar_id is not None else describe_event(key)

    def _single_request(self, key: EventKey) -> Request:
        calendar_id, event_id = key
        return event_cancellation_request(calendar_id, event_id, delete_event=self.delete_event)

    def _attempt_batch(self, keys: list[EventKey], gate: Gate) -> list[Any]:
        entries = []
        for calendar_id, event_id in keys:
            method, body, _ = event_request(event_id, delete_event=self.delete_event)
            entries.append({"method": method, "relative_url": events_path(calendar_id), "data": body})
        what = self._describe(keys[0]) if len(keys) == 1 else f"{len(keys)} events"
        reply = self._send(
            Request("POST", "/v1/batch", {"batch": entries}, None, what),
            len(keys) if self.cost_per_entry else 1,
            gate,
        )
        if 200 <= reply.status < 300 and reply.status != 207:
            # Only a 207's per-entry statuses say what became of each event: counting them
            # cancelled on any other success could be a silent wrong result.
            return [_unknown_state(reply.status, len(keys))] * len(keys)
        if reply.status != 207:
            # The batch itself was refused (401 after a refresh, 402, 403, 422, ...): each event
            # fails with that answer. One calendar: read as each event's own answer would be;
            # across calendars, a status of the batch is no calendar's.
            if self.calendar_id is not None:
                return [self._outcome(reply, key) for key in keys]
            return [self._api_error(reply, event_id) for _, event_id in keys]
        answers = _entry_answers(reply.body, len(keys))
        if answers is None:
            return [_unknown_state(207, len(keys))] * len(keys)
        results: list[Any] = []
        for (status, data), key in zip(answers, keys, strict=True):
            entry = Reply(
                status, {"Content-Type": "application/json"}, json.dumps(data).encode() if data else b""
            )
            results.append(RetryLater(entry) if status in RETRYABLE_STATUSES else self._outcome(entry, key))
        return results

    def _outcome(self, reply: Reply, key: EventKey) -> CronofyAPIError | None:
        calendar_id, event_id = key
        if reply.status == 404 and self.calendar_id is None:
            self.note_unknown_calendar(calendar_id)
            # Worded as a one-calendar run words it, but it fails only this calendar's events.
            return error_messages.unknown_calendar_error(calendar_id, reply, item=event_id, fatal=False)
        return event_outcome(reply, calendar_id, event_id, self._api_error)


def _unknown_state(status: int, count: int) -> CronofyAPIError:
    """The failure of every event of a batch whose answer holds no status per request."""
    return CronofyAPIError(
        f"Cronofy answered {status} to a batch of {count} without one status per request; "
        "the events' state is unknown: re-run the task (the calls are idempotent).",
        status_code=status,
    )


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

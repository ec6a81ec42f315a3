"""The calendar-event calls that cancel a Meeting Agent, and the bulk job that sends them.

One event: ``POST /v1/calendars/{calendar_id}/events`` (remove the agent, keep the event) or
``DELETE`` the same path (delete the event), authorised by the access token. Many events:
:class:`EventCancellation`, the runner's job, sends one such request per event, or up to
:data:`BATCH_MAX_ENTRIES` of them in one ``POST /v1/batch`` (entries may name different
calendars), which Cronofy answers ``207`` with one status per entry, in order.

Items are ``(calendar_id, event_id)`` (:data:`EventKey`). A 404 fails that calendar's events
only: the job remembers the calendar, and its events not sent yet fail without being sent; the
other calendars' events go on. Errors every other event would meet too (401, 402, 403, 423, a
refused refresh token) stop the whole run: the token is shared.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from airflow_provider_cronofy.exceptions import CronofyAPIError
from airflow_provider_cronofy.hooks import error_messages
from airflow_provider_cronofy.hooks.runner import NotSentFailure
from airflow_provider_cronofy.hooks.settings import CronofySettings
from airflow_provider_cronofy.hooks.tokens import Sender
from airflow_provider_cronofy.hooks.transport import RETRYABLE_STATUSES, Reply, Request, RetryLater
from airflow_provider_cronofy.validation import EventKey, calendar_path_segment

BATCH_MAX_ENTRIES = 50
"""Most requests one ``POST /v1/batch`` may carry (Cronofy's documented limit)."""


def event_scope(delete_event: bool) -> str:
    """The OAuth scope the event call needs: ``delete_event``, or ``create_event`` to upsert."""
    return "delete_event" if delete_event else "create_event"


def events_path(calendar_id: str) -> str:
    """``/v1/calendars/{calendar_id}/events``, the id percent-encoded as one path segment.

    :raises CronofyInputError: ``calendar_id`` is unusable.
    """
    return f"/v1/calendars/{calendar_path_segment(calendar_id)}/events"


def describe_event(item: EventKey) -> str:
    """``event 'evt' of calendar 'cal'``, for log lines and messages."""
    calendar_id, event_id = item
    return f"event {event_id!r} of calendar {calendar_id!r}"


def event_request(key: EventKey, delete_event: bool) -> Request:
    """The request (without its token) that removes the agent from, or deletes, one event."""
    calendar_id, event_id = key
    if delete_event:
        body: dict[str, Any] = {"event_id": event_id}
    else:
        body = {"event_id": event_id, "meeting_agent": {"profile_id": "none"}}
    return Request("DELETE" if delete_event else "POST", events_path(calendar_id), body, None, event_id)


class EventCancellation:
    """The runner's job cancelling the agents of events (see the module docstring).

    With ``use_batch`` up to ``unit_size`` events go to one ``POST /v1/batch``:

    - the whole batch meets 429/5xx/a timeout: every event of it is retried (the calls are
      idempotent), together, in a later batch; a 401 refreshes the token once (``sender`` does);
    - an entry answering 2xx: that event is cancelled; 429 or 5xx: re-sent in a later batch;
      any other status: that event fails.

    Without, one request per event. A result is ``"cancelled"`` or the event's error.

    :param sender: sends with the access token and words its errors.
    :param cost_per_entry: count a batch as one request per entry against the pacer.
    :param unknown_calendars: calendars known to answer 404 (from before a deferral): their
        events fail without being sent.
    """

    def __init__(
        self,
        sender: Sender,
        *,
        delete_event: bool,
        use_batch: bool = True,
        unit_size: int = BATCH_MAX_ENTRIES,
        cost_per_entry: bool = False,
        unknown_calendars: Iterable[str] = (),
    ) -> None:
        self.sender = sender
        self.delete_event = delete_event
        self.use_batch = use_batch
        self.unit_size = max(1, min(unit_size, BATCH_MAX_ENTRIES)) if use_batch else 1
        self.cost_per_entry = cost_per_entry and use_batch
        self._unknown = set(unknown_calendars)
        self._lock = threading.Lock()  # workers record and read it concurrently

    def __call__(self, keys: list[EventKey], stop: threading.Event) -> list[Any]:
        """Send one attempt for ``keys``: one result per event, in order."""
        with self._lock:
            unknown = set(self._unknown)
        results: list[Any] = [_not_sent(key) if key[0] in unknown else None for key in keys]
        to_send = [(index, key) for index, key in enumerate(keys) if key[0] not in unknown]
        if not to_send:
            return results
        try:
            if self.use_batch:
                answers = self._batch([key for _, key in to_send], stop)
            else:
                [(_, key)] = to_send
                request = event_request(key, self.delete_event)
                try:
                    answers = [self._outcome(self.sender.send(request, 1, stop), key)]
                except RetryLater as retry:
                    answers = [self._retry(retry, key)]
        except Exception as error:  # NotSent, RetryLater of a batch, a fatal error: every event's
            answers = [error] * len(to_send)
        for (index, _), answer in zip(to_send, answers, strict=True):
            results[index] = answer
        return results

    def _batch(self, keys: list[EventKey], stop: threading.Event) -> list[Any]:
        entries = []
        for key in keys:
            request = event_request(key, self.delete_event)
            entries.append({"method": request.method, "relative_url": request.path, "data": request.body})
        what = describe_event(keys[0]) if len(keys) == 1 else f"{len(keys)} events"
        request = Request("POST", "/v1/batch", {"batch": entries}, None, what)
        try:
            reply = self.sender.send(request, len(keys) if self.cost_per_entry else 1, stop)
        except RetryLater as retry:
            # The whole batch is retried; when spent, each event fails with the batch's last answer.
            return [self._retry(retry.for_item(key[1]), key) for key in keys]
        if 200 <= reply.status < 300 and reply.status != 207:
            # Only a 207's per-entry statuses say what became of each event: counting them
            # cancelled on any other success could be a silent wrong result.
            return [_unknown_state(reply.status, len(keys))] * len(keys)
        if reply.status != 207:
            # The batch itself was refused (401 after a refresh, 402, 403, 422, ...): each event
            # fails with that answer, which is no calendar's.
            return [
                self.sender.error(reply, event_id, event_scope(self.delete_event)) for _, event_id in keys
            ]
        answers = _entry_answers(reply.body, len(keys))
        if answers is None:
            return [_unknown_state(207, len(keys))] * len(keys)
        results: list[Any] = []
        for (status, data), key in zip(answers, keys, strict=True):
            entry = Reply(
                status, {"Content-Type": "application/json"}, json.dumps(data).encode() if data else b""
            )
            if status in RETRYABLE_STATUSES:
                again = RetryLater(entry, what="POST /v1/batch")
                results.append(self._retry(again.for_item(key[1]), key))
            else:
                results.append(self._outcome(entry, key))
        return results

    def _retry(self, retry: RetryLater, key: EventKey) -> RetryLater:
        # Once its retries are spent, an event's last answer is read as its own answer would be.
        return retry.worded_by(lambda reply: self._outcome(reply, key))

    def _outcome(self, reply: Reply, key: EventKey) -> Any:
        """``"cancelled"`` for a 2xx, else the event's error (a 404: its calendar is unknown)."""
        calendar_id, event_id = key
        if 200 <= reply.status < 300:
            return "cancelled"
        if reply.status == 404:
            with self._lock:
                self._unknown.add(calendar_id)
            return error_messages.unknown_calendar_error(calendar_id, reply, item=event_id, fatal=False)
        return self.sender.error(reply, event_id, event_scope(self.delete_event))


def _not_sent(key: EventKey) -> NotSentFailure:
    """The failure of an event not sent because its calendar answered 404 earlier in the run."""
    calendar_id, event_id = key
    return NotSentFailure(
        f"not sent: calendar '{calendar_id}' is unknown (Cronofy answered 404 for another of its "
        "events in this run).",
        item=event_id,
    )


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


def event_cancellation_job(
    sender: Sender,
    settings: CronofySettings,
    *,
    delete_event: bool,
    use_batch: bool,
    unknown_calendars: Iterable[str] = (),
) -> EventCancellation:
    """The job for a connection's ``settings``: a batch counts as one request against the pacer,
    or as one per entry when ``batch_rate_cost`` is ``entries`` (then it holds no more entries
    than the smallest rate limit)."""
    per_entry = settings.batch_rate_cost == "entries"
    limits = [limit for limit in (settings.rate_limit_per_second, settings.rate_limit_per_minute) if limit]
    return EventCancellation(
        sender,
        delete_event=delete_event,
        use_batch=use_batch,
        unit_size=min([BATCH_MAX_ENTRIES, *limits]) if per_entry else BATCH_MAX_ENTRIES,
        cost_per_entry=per_entry,
        unknown_calendars=unknown_calendars,
    )

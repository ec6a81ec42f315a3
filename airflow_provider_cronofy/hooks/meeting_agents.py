"""The Meeting Agent calls by scheduling key (API key): the runner's jobs. :class:`AgentScheduling`
sends each agent as a pair, cancel then schedule, so that a key never has two agents and a lost
answer is retried as the pair; why: docs/howto/scheduling.md.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_cronofy.exceptions import CronofyAPIError
from airflow_provider_cronofy.hooks.connection_errors import transport_failure
from airflow_provider_cronofy.hooks.runner import PerItem
from airflow_provider_cronofy.hooks.tokens import Sender
from airflow_provider_cronofy.hooks.transport import NotSent, Reply, Request, RetryLater

UNKNOWN_STATE = (
    "the answer to scheduling it was lost ({cause}), so Cronofy may or may not have created the "
    "agent: at most one exists for the key. Re-run the task (it cancels the key before it "
    "schedules, so it never makes a second), or cancel the key."
)
STOPPED_BETWEEN = (
    "not scheduled: its key was cancelled (any earlier agent of it too), then the run stopped "
    "before the agent was scheduled. Re-run the task to schedule it."
)


def cancellation_request(key: str) -> Request:
    """``DELETE /v1/meeting_agents`` for ``key``: cancels every agent of the key."""
    return Request("DELETE", "/v1/meeting_agents", {"scheduling_key": key}, None, key)


class ScheduledCancellation(PerItem):
    """The runner's job cancelling agents by key: ``"cancelled"`` (2xx), ``"not_found"`` (404)
    or the key's error."""

    def request(self, item: str) -> Request:
        return cancellation_request(item)

    def read(self, reply: Reply, key: str) -> Any:
        if reply.status == 404:
            return "not_found"
        return "cancelled" if 200 <= reply.status < 300 else self.sender.error(reply, key)


class AgentScheduling:
    """The runner's job scheduling agents (bodies of
    :func:`~airflow_provider_cronofy.agent_rows.normalise_agents`), two requests each; a result is
    ``"scheduled"`` or the agent's error."""

    unit_size = 1
    requests_per_item = 2

    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    def __call__(self, items: list[dict[str, Any]], stop: threading.Event) -> list[Any]:
        (agent,) = items
        key = agent["scheduling_key"]
        try:
            cancelled = self.sender.send(cancellation_request(key), 1, stop)
        except RetryLater as retry:
            return [PairRetry.of(retry, self.sender, scheduling=False)]
        except Exception as error:  # NotSent, a fatal error: nothing was scheduled
            return [error]
        if not (200 <= cancelled.status < 300 or cancelled.status == 404):
            return [self.sender.error(cancelled, key)]
        try:
            reply = self.sender.send(Request("POST", "/v1/meeting_agents", agent, None, key), 1, stop)
        except NotSent:
            return [CronofyAPIError(STOPPED_BETWEEN, item=key)]
        except RetryLater as retry:
            # Retried as a pair: the DELETE first cancels whatever this POST may have created.
            return [PairRetry.of(retry, self.sender, scheduling=True)]
        except Exception as error:
            return [error]
        if 200 <= reply.status < 300:
            return ["scheduled"]
        return [self.sender.error(reply, key)]


class PairRetry(RetryLater):
    """A retry of an agent's cancel-then-schedule pair; once its retries are spent,
    :meth:`give_up` says whether an agent may exist (its state is unknown) or surely does not."""

    sender: Sender
    scheduling: bool

    @classmethod
    def of(cls, retry: RetryLater, sender: Sender, *, scheduling: bool) -> PairRetry:
        """``retry`` (of the DELETE, or of the POST when ``scheduling``) as a retry of the pair."""
        pair = cls(retry.reply, retry.error, what=retry.what, summary=retry.summary)
        pair.detail, pair.item, pair.sender, pair.scheduling = retry.detail, retry.item, sender, scheduling
        return pair

    def give_up(self, attempts: int) -> BaseException:
        key = self.item
        if self.scheduling:
            # This attempt's DELETE cleared the earlier attempts'; its POST was refused before Cronofy
            # acted (429 on arrival) or never left: no agent exists.
            refused = self.reply.status == 429 if self.reply is not None else not may_have_left(self.error)
        else:
            refused = attempts == 1  # only this DELETE was sent: nothing was ever scheduled
        if refused:
            if self.reply is not None:
                return self.sender.error(self.reply._replace(attempts=attempts), key)
            return super().give_up(attempts)
        cause = f"{self.describe()} after {attempts} attempt(s)"
        status = self.reply.status if self.reply is not None else None
        return CronofyAPIError(UNKNOWN_STATE.format(cause=cause), status_code=status, item=key)


def may_have_left(error: BaseException | None) -> bool:
    """Whether a request that failed with the transport ``error`` may have reached Cronofy."""
    return error is None or transport_failure(error).kind not in NEVER_LEFT


NEVER_LEFT = frozenset({"refused", "name", "connect_timeout", "proxy", "connect"})
"""Transport failures of a request that never reached Cronofy (no connection was made)."""

"""Request in, response out: the rate limiter first, then the route of the method and path.

* ``POST`` and ``DELETE /v1/meeting_agents``: ``meeting_agents``;
* ``POST`` and ``DELETE /v1/calendars/{calendar_id}/events``: ``calendars``;
* ``POST /v1/batch``: ``batch``;
* ``GET /v1/userinfo`` and ``POST /oauth/token``: ``accounts``.

Anything else answers 404. Faults and latency are the server's business, not the routes'.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from airflow_provider_cronofy.testing.emulator import accounts, meeting_agents
from airflow_provider_cronofy.testing.emulator.answers import Reject, Response, error
from airflow_provider_cronofy.testing.emulator.batch import batch, batch_cost
from airflow_provider_cronofy.testing.emulator.calendars import event_call, events_calendar
from airflow_provider_cronofy.testing.emulator.faults import Faults
from airflow_provider_cronofy.testing.emulator.rate_limits import RateLimiter
from airflow_provider_cronofy.testing.emulator.state import CronofyState


class Routes:
    """Answers requests against one ``CronofyState``, rate-limited like Cronofy's defaults.

    ``clock`` (monotonic seconds) is the time the rate limits and token lifetimes count on.
    """

    def __init__(
        self, state: CronofyState, faults: Faults, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._state = state
        self._faults = faults
        self._clock = clock
        self._limiter = RateLimiter()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        """The answer to one request; state changes happen here, under the state's lock."""
        bare = path.partition("?")[0]
        settings = self._state.settings
        # With batch_rate_cost="entries" a batch weighs its number of entries.
        weighed = settings.batch_rate_cost == "entries" and method == "POST" and bare == "/v1/batch"
        cost = batch_cost(body) if weighed else 1
        with self._state.lock:
            now = self._clock()
            if not self._limiter.admit(
                now, cost, settings.rate_limit_per_second, settings.rate_limit_per_minute
            ):
                self._faults.count("rate_limited")
                return error(429, "base", "errors.rate_limited", "Too Many Requests")
            try:
                return self._route(method, bare, headers, body, now)
            except Reject as reject:
                return reject.response

    def _route(self, method: str, bare: str, headers: dict[str, str], body: bytes, now: float) -> Response:
        state = self._state
        if bare == "/v1/meeting_agents" and method == "POST":
            return meeting_agents.schedule_meeting_agent(state, headers, body)
        if bare == "/v1/meeting_agents" and method == "DELETE":
            return meeting_agents.cancel_meeting_agent(state, headers, body)
        if bare == "/v1/userinfo" and method == "GET":
            return accounts.userinfo(state, headers, now)
        if bare == "/oauth/token" and method == "POST":
            return accounts.refresh_access_token(state, headers, body, now)
        if bare == "/v1/batch" and method == "POST":
            return batch(state, self._faults, headers, body, now)
        calendar_id = events_calendar(bare)
        if calendar_id is not None and method in ("POST", "DELETE"):
            return event_call(state, method, calendar_id, headers, body, now)
        return error(404, "base", "errors.not_found", "not found")

"""The Cronofy emulator: Cronofy's side of the contract, as a small package.

It imports only the standard library and shares no code with the hook, so that a bug shared by
client and server cannot make a test pass. Import it from ``airflow_provider_cronofy.testing``.

Where things live:

* ``cronofy_emulator`` - ``CronofyEmulator``: settings, lifecycle, state and inspection helpers;
* ``settings`` - what the rules read, and how settings (``latency``, ...) are checked;
* ``state`` - Cronofy's data: Meeting Agents, calendars, events, tokens;
* ``routes`` - request in, response out: rate limit, then the route:
  ``meeting_agents``, ``calendars`` (events), ``batch`` (``POST /v1/batch``), ``accounts``
  (credentials, ``POST /oauth/token``, ``GET /v1/userinfo``);
* ``answers`` - the response type and Cronofy's error bodies;
* ``rate_limits`` - per-second and per-minute limits;
* ``faults`` - scripted and random faults, and the public fault helpers;
* ``traffic`` - recorded requests, connections and counters;
* ``records`` - ``RecordedRequest`` and ``RecordedBatchEntry``;
* ``server`` - the HTTP/TLS server, faults and latency applied.

Choices where Cronofy's behaviour is unconfirmed (see the provider README):

* ``POST /v1/meeting_agents`` for a key that has a live agent already does what
  ``repeated_scheduling_key`` says: ``"replace"`` (default), ``"duplicate"`` or ``"refuse"``
  (422 on ``scheduling_key``); ``join_time`` without ``scheduling_key`` is refused; the 200 of an
  agent sent at once carries placeholder ``state`` and ``resources``.
* ``DELETE /v1/meeting_agents`` cancels every live agent of the key; for a key never scheduled or
  already cancelled it answers ``unknown_scheduling_key_status``: 202 (default, empty body) or 404 with
  ``{"errors": {"scheduling_key": [{"key": "errors.not_found", ...}]}}``.
* An upsert of an existing event accepts a partial body (``event_id`` plus the fields to change).
* A 429 from the rate limiter carries no ``Retry-After``.
* A non-empty request body whose ``Content-Type`` is not ``application/json`` gets 415.
* ``POST /v1/batch``: an entry that is not an event upsert or delete answers 422 on
  ``relative_url``; an entry's injected 429/5xx is ``{"status": 429, "data": {"errors": ...}}``
  like any other entry; ``batch_rate_cost`` decides whether a batch counts as one request or one
  per entry against the rate limits.
* ``latency`` is added after Cronofy has handled the request (state and rate limiter see it on
  arrival) and before the answer leaves.
"""

from __future__ import annotations

# The public names, re-exported (``airflow_provider_cronofy.testing`` lists them in ``__all__``).
from airflow_provider_cronofy.testing.emulator.batch import BATCH_MAX_ENTRIES as BATCH_MAX_ENTRIES
from airflow_provider_cronofy.testing.emulator.cronofy_emulator import CronofyEmulator as CronofyEmulator
from airflow_provider_cronofy.testing.emulator.records import RecordedBatchEntry as RecordedBatchEntry
from airflow_provider_cronofy.testing.emulator.records import RecordedRequest as RecordedRequest
from airflow_provider_cronofy.testing.emulator.settings import Latency as Latency
from airflow_provider_cronofy.testing.emulator.state import DEFAULT_ACCOUNT_ID as DEFAULT_ACCOUNT_ID
from airflow_provider_cronofy.testing.emulator.state import DEFAULT_SCOPES as DEFAULT_SCOPES

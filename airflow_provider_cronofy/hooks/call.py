"""A Cronofy call as a value: the request, the credential it needs, and what its answer means."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from airflow_provider_cronofy.hooks.transport import Reply, Request


class Call(NamedTuple):
    """One Cronofy call: what to send, with which credential, and what its final answer means.

    ``auth`` is ``"api_key"`` or ``"access_token"``. ``interpret`` turns a final (non-retryable,
    or budget-spent) reply into the call's result, or raises the call's :class:`CronofyAPIError`.
    """

    request: Request
    auth: str
    interpret: Callable[[Reply], Any]

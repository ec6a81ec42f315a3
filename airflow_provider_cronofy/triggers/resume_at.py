"""The trigger a deferrable bulk run waits on: Airflow's ``DateTimeTrigger``, carrying the run's
state in its event and waiting without a word (why: docs/howto/deferrable.md, "What waits").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

from airflow_provider_cronofy._compat import time_trigger_classes

DateTimeTrigger, TriggerEvent = time_trigger_classes()

LONGEST_SLEEP_SECONDS = 60.0
"""A wait is slept in chunks of at most this, so a wall clock set back or forward moves the firing."""
SHORTEST_SLEEP_SECONDS = 0.01
"""A chunk is at least this long: the loop never spins on a remainder of microseconds."""
LATE_AFTER_SECONDS = 60.0
"""Firing this much after the moment is logged as a warning (once); on time, the trigger logs nothing."""


def utc_now() -> datetime:
    """The wall clock the trigger waits by (tests replace it)."""
    return datetime.now(timezone.utc)


sleep: Callable[[float], Any] = asyncio.sleep
"""How the trigger sits a chunk out (tests replace it)."""


class ResumeAtTrigger(DateTimeTrigger):  # type: ignore[misc, valid-type]
    """Fires at ``moment`` (timezone-aware) with the event payload ``{"resume": carry}``.

    :param moment: when to fire.
    :param carry: the deferred run's state (JSON-native), handed back in the event.
    """

    def __init__(self, moment: datetime, carry: dict[str, Any], **kwargs: Any) -> None:
        if kwargs.get("end_from_trigger"):
            # The run goes on in the worker with the carried state: ending there would lose it.
            raise ValueError("ResumeAtTrigger always resumes the task: end_from_trigger must be False.")
        super().__init__(moment, **kwargs)
        self.carry = carry

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the arguments that rebuild this trigger in the triggerer."""
        _, kwargs = super().serialize()
        return f"{__name__}.{type(self).__qualname__}", {**kwargs, "carry": self.carry}

    async def run(self) -> AsyncIterator[Any]:
        """Wait quietly until ``moment``, then fire once with the carried state."""
        moment = self.moment
        remaining = (moment - utc_now()).total_seconds()
        late = -remaining
        while remaining > 0:
            await sleep(min(max(remaining, SHORTEST_SLEEP_SECONDS), LONGEST_SLEEP_SECONDS))
            remaining = (moment - utc_now()).total_seconds()
            late = -remaining
        if late > LATE_AFTER_SECONDS:
            self.log.warning(
                "Firing %.0f s after the moment it was due (%s): the triggerer was busy, stopped or "
                "restarted meanwhile. The task resumes now.",
                late,
                moment.isoformat(),
            )
        yield TriggerEvent({"resume": self.carry})

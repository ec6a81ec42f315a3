"""The trigger a deferrable bulk run waits on: Airflow's ``DateTimeTrigger``, carrying the run's state.

Why not the standard trigger as it is: ``dag.test()`` / ``airflow dags test`` on every Airflow
line (2.11, 3.0-3.3) resumes a deferred task with ``next_kwargs = {"event": payload}``, dropping
the ``kwargs`` given to ``defer()``, where the triggerer in production keeps them and adds
``event``. The standard trigger's payload is its moment, so a run resumed under ``dag.test()``
would not know where it stopped. This subclass waits exactly as Airflow's does (its ``run`` is the
parent's) and only puts the carried state in the event too. It never calls Cronofy: a trigger may
run twice after a triggerer restart (apache/airflow #67945), and waiting twice is harmless.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow_provider_cronofy._compat import time_trigger_classes

DateTimeTrigger, TriggerEvent = time_trigger_classes()


class ResumeAtTrigger(DateTimeTrigger):  # type: ignore[misc, valid-type]
    """Fires at ``moment`` (timezone-aware) with the event payload ``{"resume": carry}``.

    :param moment: when to fire; Airflow's ``DateTimeTrigger`` does the waiting.
    :param carry: the deferred run's state (JSON-native), handed back in the event.
    """

    def __init__(self, moment: datetime, carry: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(moment, **kwargs)
        self.carry = carry

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the arguments that rebuild this trigger in the triggerer."""
        _, kwargs = super().serialize()
        return f"{__name__}.{type(self).__qualname__}", {**kwargs, "carry": self.carry}

    async def run(self) -> AsyncIterator[Any]:
        """Wait as ``DateTimeTrigger`` does, then fire once with the carried state."""
        async for _ in super().run():
            yield TriggerEvent({"resume": self.carry})
            return

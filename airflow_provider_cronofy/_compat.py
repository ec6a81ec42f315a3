"""The one place that imports Airflow, for every Airflow line the provider admits (2.11, 3.0-3.3):
each name looked up on its own, newest home first (why: docs/development.md, "Airflow lines").
"""

from __future__ import annotations

from typing import Any

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_V_3 = int(AIRFLOW_VERSION.split(".", 1)[0]) >= 3

# The newest homes carry "type: ignore" too: mypy runs on every line, and 3.0/3.1 lack them.
try:  # 3.1+
    from airflow.sdk import BaseHook  # type: ignore[attr-defined]
except ImportError:  # 2.11, 3.0
    from airflow.hooks.base import BaseHook  # type: ignore

try:  # 3.0+
    from airflow.sdk import BaseOperator
except ImportError:  # 2.11
    from airflow.models import BaseOperator  # type: ignore

# Both from one module: a subclass of one line's AirflowException must not mix with another's.
try:  # 3.2+
    from airflow.sdk.exceptions import AirflowException, AirflowFailException  # type: ignore[attr-defined]
except ImportError:  # 2.11, 3.0, 3.1
    from airflow.exceptions import AirflowException, AirflowFailException  # type: ignore

try:  # 3.2+
    from airflow.sdk.exceptions import TaskDeferred  # type: ignore[attr-defined]
except ImportError:  # 2.11, 3.0, 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore

try:  # 3.2+
    from airflow.sdk.configuration import conf  # type: ignore[attr-defined]
except ImportError:  # 2.11, 3.0, 3.1
    from airflow.configuration import conf  # type: ignore

try:  # 3.1+
    from airflow.sdk.log import mask_secret as _mask_secret
except ImportError:
    try:  # 3.0
        from airflow.sdk.execution_time.secrets_masker import mask_secret as _mask_secret  # type: ignore
    except ImportError:  # 2.11 without it
        from airflow.utils.log.secrets_masker import mask_secret as _mask_secret  # type: ignore


def time_trigger_classes() -> tuple[type, type]:
    """Airflow's ``DateTimeTrigger`` (the standard provider's where installed) and ``TriggerEvent``,
    imported when a task defers, not when a DAG file is parsed (about 45 ms)."""
    from airflow.triggers.base import TriggerEvent

    try:  # apache-airflow-providers-standard: 3.x, and 2.11 where installed
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    except ImportError:  # 2.11 without it
        from airflow.triggers.temporal import DateTimeTrigger  # type: ignore

    return DateTimeTrigger, TriggerEvent


def mask_secret(secret: Any) -> None:
    """Register ``secret`` with Airflow's secret masker so that task logs show ``***`` instead."""
    _mask_secret(secret)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3",
    "AirflowException",
    "AirflowFailException",
    "BaseHook",
    "BaseOperator",
    "TaskDeferred",
    "conf",
    "mask_secret",
    "time_trigger_classes",
]

"""The one place that imports Airflow: Airflow 3 names first, Airflow 2.11 names as the fallback.

Everything else in the package imports Airflow through this module, so supporting another Airflow
line means changing this file only.
"""

from __future__ import annotations

from typing import Any

try:  # Airflow 3: the Task SDK is the public authoring interface.
    from airflow.sdk import BaseHook, BaseOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
    from airflow.sdk.log import mask_secret as _mask_secret

    AIRFLOW_V_3 = True
except ImportError:  # Airflow 2.11
    from airflow.exceptions import AirflowException, AirflowFailException  # type: ignore
    from airflow.hooks.base import BaseHook  # type: ignore
    from airflow.models import BaseOperator  # type: ignore
    from airflow.utils.log.secrets_masker import mask_secret as _mask_secret  # type: ignore

    AIRFLOW_V_3 = False


def mask_secret(secret: Any) -> None:
    """Register ``secret`` with Airflow's secret masker so that task logs show ``***`` instead."""
    _mask_secret(secret)


__all__ = [
    "AIRFLOW_V_3",
    "AirflowException",
    "AirflowFailException",
    "BaseHook",
    "BaseOperator",
    "mask_secret",
]

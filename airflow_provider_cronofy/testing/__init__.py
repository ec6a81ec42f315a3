"""Test helpers: a local Cronofy API emulator.

Standard library only, so importing it costs nothing (no Airflow). For pytest, opt into the
fixtures with ``pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]``; from the
shell, run ``python -m airflow_provider_cronofy.testing``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow_provider_cronofy.testing.emulator import (
    BATCH_MAX_ENTRIES,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_SCOPES,
    CronofyEmulator,
    Latency,
    RecordedBatchEntry,
    RecordedRequest,
)

__all__ = [
    "BATCH_MAX_ENTRIES",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_SCOPES",
    "CronofyEmulator",
    "Latency",
    "RecordedBatchEntry",
    "RecordedRequest",
    "running_emulator",
]


@contextmanager
def running_emulator(**kwargs: Any) -> Iterator[CronofyEmulator]:
    """Start a :class:`CronofyEmulator` built with ``kwargs``, yield it, and stop it afterwards.

    This is what the ``cronofy_emulator`` pytest fixture does; use it directly with other test
    runners or in a fixture of your own with non-default settings.
    """
    emulator = CronofyEmulator(**kwargs)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()

"""Pytest fixtures for the Cronofy emulator.

Opt in from a ``conftest.py`` or test module::

    pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]

Fixtures:

* ``cronofy_emulator`` - a started :class:`CronofyEmulator` with default settings, stopped after
  the test.
* ``cronofy_emulator_factory`` - a callable taking :class:`CronofyEmulator` keyword arguments and
  returning a started emulator; every emulator it made is stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_cronofy.testing import running_emulator
from airflow_provider_cronofy.testing.emulator import CronofyEmulator

__all__ = ["cronofy_emulator", "cronofy_emulator_factory"]


@pytest.fixture
def cronofy_emulator() -> Iterator[CronofyEmulator]:
    """A running Cronofy emulator with default settings (function scope)."""
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture
def cronofy_emulator_factory() -> Iterator[Callable[..., CronofyEmulator]]:
    """Build running emulators with custom settings, e.g. ``factory(rate_limit_per_second=5)``."""
    started: list[CronofyEmulator] = []

    def factory(**kwargs: Any) -> CronofyEmulator:
        emulator = CronofyEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in reversed(started):
        emulator.stop()

"""Fixtures of the emulator tests (each test module loads the emulator's pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_cronofy.testing import CronofyEmulator
from tests.emulator._support import set_up_accounts


@pytest.fixture
def emu(cronofy_emulator: CronofyEmulator) -> CronofyEmulator:
    """The plugin's emulator with two accounts and their calendars (see ``set_up_accounts``)."""
    return set_up_accounts(cronofy_emulator)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s

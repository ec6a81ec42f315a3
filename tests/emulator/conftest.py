"""Fixtures of the emulator tests (each test module loads the emulator's pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_cronofy.testing import CronofyEmulator
from tests.emulator._support import TlsFiles, set_up_accounts


@pytest.fixture
def emu(cronofy_emulator: CronofyEmulator) -> CronofyEmulator:
    """The plugin's emulator with two accounts and their calendars (see ``set_up_accounts``)."""
    return set_up_accounts(cronofy_emulator)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def tls_files(tmp_path, monkeypatch) -> TlsFiles:
    """A throw-away self-signed certificate for 127.0.0.1 (IP SAN) and its key, as PEM files.

    The CA bundle variables are cleared: requests lets them override a session's ``verify``.
    """
    # Not skipped when cryptography is missing: it comes with Airflow.
    from airflow_provider_cronofy.testing.certificates import make_self_signed_certificate

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    files = make_self_signed_certificate(tmp_path)
    return TlsFiles(files.cert, files.key)

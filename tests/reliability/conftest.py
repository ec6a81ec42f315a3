"""Guards for every reliability test: traffic to loopback only, connection env restored."""

from __future__ import annotations

import os
from typing import Any

import pytest
import urllib3
from requests.adapters import HTTPAdapter

from tests.reliability._support import LOOPBACK_HOSTS


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any request for a host other than 127.0.0.1 / localhost / ::1 before it leaves."""
    original_send = HTTPAdapter.send

    def send(self, request, **kwargs: Any):
        host = urllib3.util.parse_url(request.url).host or ""
        if host not in LOOPBACK_HOSTS:
            raise AssertionError(f"a test tried to reach {host!r}: only 127.0.0.1 is allowed")
        return original_send(self, request, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", send)


@pytest.fixture(autouse=True)
def _restore_connection_env():
    """The scenarios set AIRFLOW_CONN_CRONOFY_DEFAULT directly (they also run outside pytest)."""
    saved = os.environ.get("AIRFLOW_CONN_CRONOFY_DEFAULT")
    yield
    if saved is None:
        os.environ.pop("AIRFLOW_CONN_CRONOFY_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = saved

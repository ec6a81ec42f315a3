"""Airflow's own commands see the provider: providers list/get/hooks/widgets/behaviours, connections test.

Run on whichever Airflow line the test environment has (make test: 3.3; make test AIRFLOW=<line>).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_cronofy.get_provider_info import CONN_FIELDS
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.lines import form_outside_the_ui

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    result = subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def rows_about_cronofy(output: str) -> list[str]:
    return [line for line in output.splitlines() if "cronofy" in line.lower()]


def test_providers_list_and_get():
    assert any(
        line.startswith("airflow-provider-cronofy")
        for line in airflow("providers", "list", "-o", "plain").splitlines()
    )
    assert "airflow-provider-cronofy" in airflow(
        "providers", "get", "airflow-provider-cronofy", "-o", "plain"
    )


def test_providers_hooks_row():
    (row,) = [
        line
        for line in rows_about_cronofy(airflow("providers", "hooks", "-o", "plain"))
        if line.startswith("cronofy ")
    ]
    assert "airflow_provider_cronofy.hooks.cronofy.CronofyHook" in row
    assert "cronofy_conn_id" in row
    assert "Error" not in row


@form_outside_the_ui
def test_providers_widgets_rows():
    rows = rows_about_cronofy(airflow("providers", "widgets", "-o", "plain"))
    for name in CONN_FIELDS:
        assert any(row.startswith(f"extra__cronofy__{name} ") for row in rows), name


@form_outside_the_ui
def test_providers_behaviours_row():
    assert any(
        row.strip().startswith("cronofy")
        for row in rows_about_cronofy(airflow("providers", "behaviours", "-o", "plain"))
    )


@pytest.mark.parametrize("verified", [True, False], ids=["token-accepted", "token-rejected"])
def test_connections_test_uses_test_connection(verified):
    with CronofyEmulator() as emu:
        emu.add_access_token("cli-token")
        token = "cli-token" if verified else "unknown-token"
        env = {
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW_CONN_CRONOFY_CLI": emu.airflow_connection_json(access_token=token),
        }
        # A failed test exits 1 on Airflow 3 and 0 on 2.11: the message is what counts.
        output = airflow("connections", "test", "cronofy_cli", env=env, check=False)
        assert ("Connection success!" in output) is verified
        if not verified:
            assert "Cronofy rejected the access token (401 Unauthorized)" in output
        # The API key (the connection's password) is checked first, with one harmless request.
        assert [(r.method, r.path) for r in emu.requests] == [
            ("DELETE", "/v1/meeting_agents"),
            ("GET", "/v1/userinfo"),
        ]
        assert token not in output
        assert emu.api_key not in output


@pytest.mark.parametrize("key_ok", [True, False], ids=["key-accepted", "key-rejected"])
def test_connections_test_checks_the_api_key_and_shows_what_was_checked(key_ok):
    with CronofyEmulator() as emu:
        conn = emu.airflow_connection()
        conn["password"] = emu.api_key if key_ok else "wrong-api-key-3c9d"
        env = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "AIRFLOW_CONN_CRONOFY_CLI": json.dumps(conn)}
        output = airflow("connections", "test", "cronofy_cli", env=env, check=False)
        assert ("Connection success!" in output) is key_ok
        if key_ok:
            # Airflow's CLI drops the message of a success; the hook prints it.
            assert (
                "The API key was accepted: cancelling the unscheduled key 'airflow-connection-test-" in output
            )
            assert "CancelIntegratedMeetingAgentOperator cannot run with this connection" in output
        else:
            assert "Connection failed!" in output
            assert "Cronofy rejected the API key (401 Unauthorized)" in output
        assert [(r.method, r.path) for r in emu.requests] == [("DELETE", "/v1/meeting_agents")]
        assert "wrong-api-key-3c9d" not in output and emu.api_key not in output

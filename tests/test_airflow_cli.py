"""Airflow's own commands see the provider: providers list/get/hooks/widgets/behaviours, connections test.

Run on whichever Airflow line the test environment has (make test: 3.3; make test AIRFLOW=<line>).
Each command runs as the ``airflow`` executable runs it (its entry point, its own ``sys.argv``
and environment), in a fresh interpreter of its own; one module fixture runs them all, so the
session imports Airflow once for them instead of once per command.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from airflow_provider_cronofy.get_provider_info import CONN_FIELDS
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.fresh_interpreter import Snippet, run_fresh
from tests.lines import form_outside_the_ui

AIRFLOW_MAIN = "import sys\nfrom airflow.__main__ import main\nsys.exit(main())\n"
"""What the ``airflow`` command runs (its console-script entry point)."""
PROVIDERS_COMMANDS = {
    "list": ["providers", "list", "-o", "plain"],
    "get": ["providers", "get", "airflow-provider-cronofy", "-o", "plain"],
    "hooks": ["providers", "hooks", "-o", "plain"],
    "widgets": ["providers", "widgets", "-o", "plain"],
    "behaviours": ["providers", "behaviours", "-o", "plain"],
}
TOKEN_CASES = {"token-accepted": True, "token-rejected": False}
KEY_CASES = {"key-accepted": True, "key-rejected": False}


def airflow_command(args: list[str], env: dict[str, str] | None = None) -> Snippet:
    """``airflow <args>`` with ``env`` set, as a snippet for :func:`run_fresh`."""
    return Snippet(AIRFLOW_MAIN, env=env or {}, argv=["airflow", *args])


@pytest.fixture(scope="module")
def cli():
    """Every command these tests check, each run as the ``airflow`` command runs it, in a fresh
    interpreter of its own (forks of one Airflow import, see tests/fresh_interpreter.py); the
    ``connections test`` commands each against an emulator of their own.

    Yields ``(output, emulators)``: command name -> ``(exit code, stdout + stderr)``, and case ->
    the emulator its ``connections test`` talked to."""
    with ExitStack() as stack:
        emulators = {case: stack.enter_context(CronofyEmulator()) for case in (*TOKEN_CASES, *KEY_CASES)}
        commands = {name: airflow_command(args) for name, args in PROVIDERS_COMMANDS.items()}
        for case, verified in TOKEN_CASES.items():
            emu = emulators[case]
            emu.add_access_token("cli-token")
            token = "cli-token" if verified else "unknown-token"
            env = {
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW_CONN_CRONOFY_CLI": emu.airflow_connection_json(access_token=token),
            }
            commands[case] = airflow_command(["connections", "test", "cronofy_cli"], env)
        for case, key_ok in KEY_CASES.items():
            emu = emulators[case]
            conn = emu.airflow_connection()
            conn["password"] = emu.api_key if key_ok else "wrong-api-key-3c9d"
            env = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "AIRFLOW_CONN_CRONOFY_CLI": json.dumps(conn)}
            commands[case] = airflow_command(["connections", "test", "cronofy_cli"], env)
        finished = run_fresh(commands)
        yield {name: (f.returncode, f.stdout + f.stderr) for name, f in finished.items()}, emulators


def airflow(cli, name: str, *, check: bool = True) -> str:
    """The output of the command ``name``; with ``check``, it must have exited 0."""
    returncode, output = cli[0][name]
    if check:
        assert returncode == 0, output[-2000:]
    return output


def rows_about_cronofy(output: str) -> list[str]:
    return [line for line in output.splitlines() if "cronofy" in line.lower()]


def test_providers_list_and_get(cli):
    assert any(line.startswith("airflow-provider-cronofy") for line in airflow(cli, "list").splitlines())
    assert "airflow-provider-cronofy" in airflow(cli, "get")


def test_providers_hooks_row(cli):
    (row,) = [line for line in rows_about_cronofy(airflow(cli, "hooks")) if line.startswith("cronofy ")]
    assert "airflow_provider_cronofy.hooks.cronofy.CronofyHook" in row
    assert "cronofy_conn_id" in row
    assert "Error" not in row


@form_outside_the_ui
def test_providers_widgets_rows(cli):
    rows = rows_about_cronofy(airflow(cli, "widgets"))
    for name in CONN_FIELDS:
        assert any(row.startswith(f"extra__cronofy__{name} ") for row in rows), name


@form_outside_the_ui
def test_providers_behaviours_row(cli):
    assert any(row.strip().startswith("cronofy") for row in rows_about_cronofy(airflow(cli, "behaviours")))


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_connections_test_uses_test_connection(cli, case):
    verified = TOKEN_CASES[case]
    emu = cli[1][case]
    token = "cli-token" if verified else "unknown-token"
    # A failed test exits 1 on Airflow 3 and 0 on 2.11: the message is what counts.
    output = airflow(cli, case, check=False)
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


@pytest.mark.parametrize("case", KEY_CASES)
def test_connections_test_checks_the_api_key_and_shows_what_was_checked(cli, case):
    key_ok = KEY_CASES[case]
    emu = cli[1][case]
    output = airflow(cli, case, check=False)
    assert ("Connection success!" in output) is key_ok
    if key_ok:
        # Airflow's CLI drops the message of a success; the hook prints it.
        assert "The API key was accepted: cancelling the unscheduled key 'airflow-connection-test-" in output
        assert "CancelIntegratedMeetingAgentOperator cannot run with this connection" in output
    else:
        assert "Connection failed!" in output
        assert "Cronofy rejected the API key (401 Unauthorized)" in output
    assert [(r.method, r.path) for r in emu.requests] == [("DELETE", "/v1/meeting_agents")]
    assert "wrong-api-key-3c9d" not in output and emu.api_key not in output

"""The provider on whichever Airflow line this venv holds (make test AIRFLOW=2.11 / 3.0 / 3.1 / 3.2 / 3.3).

The regression tests for issue 9: on 3.0 and 3.1 ``_compat`` fell back to 2.11 names that no
longer exist, and no module of the provider could be imported. Each public module is imported
here in a fresh interpreter (nothing imported earlier by the test session can hide a missing
name), with warnings raised from our modules turned into errors, and every ``_compat`` name is
checked against the object that this Airflow line itself uses at run time.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import airflow_provider_cronofy
from airflow_provider_cronofy import _compat
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyInputError
from tests.lines import LINE, LINES


def public_modules() -> list[str]:
    """Every module of the package, except private ones (``_compat`` is imported by all the others)."""
    found = [
        info.name
        for info in pkgutil.walk_packages(airflow_provider_cronofy.__path__, "airflow_provider_cronofy.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    ]
    return ["airflow_provider_cronofy", *sorted(found)]


def test_this_venv_holds_a_tested_line():
    assert LINE in LINES, f"Airflow {_compat.AIRFLOW_VERSION} is not one of the tested lines {LINES}"


def test_public_modules_include_hook_operators_and_emulator():
    modules = public_modules()
    for expected in (
        "airflow_provider_cronofy.hooks.cronofy",
        "airflow_provider_cronofy.operators.meeting_agents",
        "airflow_provider_cronofy.testing",
        "airflow_provider_cronofy.testing.pytest_plugin",
        "airflow_provider_cronofy.get_provider_info",
    ):
        assert expected in modules


@pytest.mark.parametrize("module", public_modules())
def test_public_module_imports_in_a_fresh_interpreter_without_warnings(module):
    # Warnings attributed to our modules (a deprecated Airflow name we use) become errors, as does
    # any import error; Airflow's warnings about its own configuration are not ours to fix.
    code = (
        "import warnings\n"
        "warnings.filterwarnings('error', module=r'airflow_provider_cronofy(\\.|$)')\n"
        f"import {module}\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def _runtime_objects() -> dict[str, object]:
    """The objects this Airflow line's own runtime uses, looked up where its code imports them."""
    if LINE == "2.11":
        from airflow.hooks.base import BaseHook
        from airflow.models.baseoperator import BaseOperator
        from airflow.models.taskinstance import AirflowException, AirflowFailException
    elif LINE in ("3.0", "3.1"):
        # The 3.0/3.1 task runner imports the exceptions from airflow.exceptions (task_runner.py).
        from airflow.exceptions import AirflowException, AirflowFailException
        from airflow.sdk import BaseOperator

        if LINE == "3.0":  # airflow.sdk has no BaseHook before 3.1
            from airflow.hooks.base import BaseHook
        else:
            from airflow.sdk import BaseHook
    else:
        from airflow.sdk import BaseHook, BaseOperator
        from airflow.sdk.exceptions import AirflowException, AirflowFailException
    return {
        "BaseHook": BaseHook,
        "BaseOperator": BaseOperator,
        "AirflowException": AirflowException,
        "AirflowFailException": AirflowFailException,
    }


@pytest.mark.parametrize("name", ["BaseHook", "BaseOperator", "AirflowException", "AirflowFailException"])
def test_compat_name_is_the_object_this_line_uses(name):
    assert getattr(_compat, name) is _runtime_objects()[name]


def test_our_errors_are_what_the_task_runner_catches():
    # AirflowFailException: the task fails without retrying; AirflowException: retried.
    runtime = _runtime_objects()
    assert issubclass(CronofyInputError, runtime["AirflowFailException"])
    assert issubclass(CronofyAPIError, runtime["AirflowException"])


def _task_side_masker() -> object:
    if LINE == "2.11":
        from airflow.utils.log.secrets_masker import _secrets_masker
    elif LINE == "3.0":
        from airflow.sdk.execution_time.secrets_masker import _secrets_masker
    else:
        from airflow.sdk._shared.secrets_masker import _secrets_masker
    return _secrets_masker()


def test_mask_secret_reaches_the_masker_task_logs_go_through():
    secret = "line-check-token-5b1d0e"
    _compat.mask_secret(secret)
    redacted = _task_side_masker().redact(f"token={secret} end")  # type: ignore[attr-defined]
    assert secret not in str(redacted)
    assert "end" in str(redacted)


def test_compat_version_flag_matches_the_line():
    assert _compat.AIRFLOW_V_3 is (LINE != "2.11")

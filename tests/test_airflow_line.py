"""The provider on whichever Airflow line this venv holds (make test AIRFLOW=2.11 / 3.0 / 3.1 / 3.2 / 3.3).

The regression tests for issue 9: on 3.0 and 3.1 ``_compat`` fell back to 2.11 names that no
longer exist, and no module of the provider could be imported. Each public module is imported
here in a fresh interpreter (nothing imported earlier by the test session, or by another module's
check, can hide a missing name), with warnings raised from our modules turned into errors, and
every ``_compat`` name is checked against the object that this Airflow line itself uses at run
time. The fresh interpreters are forks of one that imported Airflow only
(:mod:`tests.fresh_interpreter`): one Airflow import for all of them instead of one each.
"""

from __future__ import annotations

import pkgutil

import pytest

import airflow_provider_cronofy
from airflow_provider_cronofy import _compat
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyInputError
from tests.fresh_interpreter import Finished, Snippet, run_fresh
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


def import_checked(module: str) -> str:
    # Warnings attributed to our modules (a deprecated Airflow name we use) become errors, as does
    # any import error; Airflow's warnings about its own configuration are not ours to fix.
    return (
        "import warnings\n"
        "warnings.filterwarnings('error', module=r'airflow_provider_cronofy(\\.|$)')\n"
        f"import {module}\n"
    )


# Snippets that show the check below can fail: a warning from one of our modules ends the
# import, a missing module fails it, and no module of ours is imported before a snippet runs (not
# by Airflow's provider discovery, nor by an earlier snippet).
OURS_IMPORTED = (
    "import sys\nprint(sorted(n for n in sys.modules if n.startswith('airflow_provider_cronofy')))"
)
WARNING_FROM_ONE_OF_OUR_MODULES = (
    "exec(\"import warnings\\nwarnings.warn('old name', DeprecationWarning)\", "
    "{'__name__': 'airflow_provider_cronofy.some_module'})\n"
)
CHECKS_OF_THE_CHECK = {
    "check: warns": Snippet(import_checked("json") + WARNING_FROM_ONE_OF_OUR_MODULES),
    "check: missing": Snippet(import_checked("airflow_provider_cronofy.no_such_module")),
    "check: before": Snippet(OURS_IMPORTED),
    "check: imports": Snippet(import_checked("airflow_provider_cronofy.hooks.cronofy")),
    "check: after": Snippet(OURS_IMPORTED),
}


@pytest.fixture(scope="module")
def fresh_imports() -> dict[str, Finished]:
    """Each public module imported in a fresh interpreter of its own: how each import ended."""
    modules = {module: Snippet(import_checked(module)) for module in public_modules()}
    return run_fresh({**CHECKS_OF_THE_CHECK, **modules})


@pytest.mark.parametrize("module", public_modules())
def test_public_module_imports_in_a_fresh_interpreter_without_warnings(fresh_imports, module):
    result = fresh_imports[module]
    assert result.returncode == 0, result.stderr[-3000:]


def test_fresh_interpreter_check_fails_on_a_warning_or_an_import_error(fresh_imports):
    assert fresh_imports["check: warns"].returncode == 1
    assert "DeprecationWarning: old name" in fresh_imports["check: warns"].stderr
    assert fresh_imports["check: missing"].returncode == 1
    missing = fresh_imports["check: missing"].stderr
    assert "No module named 'airflow_provider_cronofy.no_such_module'" in missing
    assert fresh_imports["check: imports"].returncode == 0, fresh_imports["check: imports"].stderr[-3000:]
    assert fresh_imports["check: before"].stdout.strip() == "[]"
    assert fresh_imports["check: after"].stdout.strip() == "[]"


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

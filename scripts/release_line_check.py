"""Run by `make release-check` with the Python of a clean venv holding the built wheel and one Airflow line.

Checks what a user of that line gets from ``pip install airflow-provider-cronofy``: the package
comes from the wheel (not a checkout); without pytest installed, the emulator in
``airflow_provider_cronofy.testing`` imports and answers; the operators and the hook import; both
example DAGs parse (DagBag import errors empty); the provider info passes this line's own
schema; and the connection form as this line's UI receives it offers "Cronofy" with every field.

Usage: python release_line_check.py EXAMPLE_DAGS_DIR EXPECTED_VERSION. Exits non-zero naming
the first failed check.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="cronofy-release-check-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"  ok: {what}")


def main(example_dags: str, version: str) -> None:
    check(importlib.util.find_spec("pytest") is None, "pytest is not installed in this venv")

    import airflow_provider_cronofy
    from airflow_provider_cronofy.testing import CronofyEmulator

    site = Path(airflow_provider_cronofy.__file__).resolve()
    check("site-packages" in site.parts, f"the package comes from the installed wheel ({site.parent})")
    check(airflow_provider_cronofy.__version__ == version, f"version {version}")
    with CronofyEmulator() as emulator:
        request = urllib.request.Request(f"{emulator.url}/v1/userinfo")
        try:
            urllib.request.urlopen(request, timeout=10)
            status = 200
        except urllib.error.HTTPError as error:
            status = error.code
    check(status == 401, "the emulator from airflow_provider_cronofy.testing answers (401 without a token)")

    import airflow

    line = ".".join(airflow.__version__.split(".")[:2])
    print(f"  Airflow {airflow.__version__}")
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook
    from airflow_provider_cronofy.operators.meeting_agents import (
        CancelIntegratedMeetingAgentOperator,
        CancelScheduledMeetingAgentOperator,
    )

    check(
        CronofyHook.conn_type == "cronofy"
        and CancelScheduledMeetingAgentOperator.__name__
        and CancelIntegratedMeetingAgentOperator.__name__,
        "the hook and both operators import",
    )

    import jsonschema

    from airflow_provider_cronofy.get_provider_info import CONN_FIELDS, get_provider_info

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    check(True, f"provider info passes Airflow {line}'s provider_info.schema.json")

    try:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=example_dags)
    except ImportError:
        from airflow.models import DagBag

        bag = DagBag(dag_folder=example_dags, include_examples=False)
    check(bag.import_errors == {}, f"example DAGs parse without import errors {dict(bag.import_errors)}")
    check(
        {"cronofy_cancel_scheduled_agents", "cronofy_cancel_integrated_agents"} <= set(bag.dags),
        f"both example DAGs are in the bag {sorted(bag.dags)}",
    )

    if line == "2.11":
        from airflow.www.forms import create_connection_form_class

        form = create_connection_form_class()
        check(("cronofy", "Cronofy") in form.conn_type.kwargs["choices"], "the form offers Cronofy")
        missing = [n for n in CONN_FIELDS if not hasattr(form, f"extra__cronofy__{n}")]
    else:
        from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

        (entry,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "cronofy"]
        check(entry.hook_name == "Cronofy", "the UI's form data lists Cronofy")
        missing = [n for n in CONN_FIELDS if n not in (entry.extra_fields or {})]
    check(missing == [], f"the form has every field {list(CONN_FIELDS)} (missing: {missing})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

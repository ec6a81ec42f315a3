"""Registration with Airflow: provider info against Airflow's own schema, discovery, the form."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_cronofy import __version__
from airflow_provider_cronofy._compat import AIRFLOW_V_3
from airflow_provider_cronofy.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR, get_provider_info
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from tests.fresh_interpreter import Finished, Snippet, run_fresh
from tests.lines import form_outside_the_ui


def test_provider_info_passes_airflows_schema():
    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_package_name_is_the_normalised_distribution_name():
    dist = metadata.distribution("airflow-provider-cronofy")
    assert get_provider_info()["package-name"] == dist.metadata["Name"].lower().replace("_", "-")
    assert dist.version == __version__


def test_entry_point_is_registered():
    (entry_point,) = [
        ep
        for ep in metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_cronofy")
    ]
    assert entry_point.load() is get_provider_info


def test_listed_modules_and_classes_import():
    info = get_provider_info()
    for section in ("hooks", "operators"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                __import__(module)
    (conn_type,) = info["connection-types"]
    module, _, name = conn_type["hook-class-name"].rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is CronofyHook
    assert conn_type["connection-type"] == CronofyHook.conn_type == "cronofy"


def test_hook_has_what_airflow_needs():
    assert CronofyHook.conn_name_attr == "cronofy_conn_id"
    assert CronofyHook.default_conn_name == "cronofy_default"
    assert CronofyHook.hook_name == "Cronofy"
    assert callable(CronofyHook.test_connection)


def test_providers_manager_discovers_hook():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-cronofy" in manager.providers
    hook_info = manager.hooks["cronofy"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_cronofy.hooks.cronofy.CronofyHook"
    assert hook_info.hook_name == "Cronofy"
    assert hook_info.connection_testable


@form_outside_the_ui
def test_providers_manager_discovers_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    for name in CONN_FIELDS:
        assert f"extra__cronofy__{name}" in widgets
    behaviour = manager.field_behaviours["cronofy"]
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "port", "extra"}
    assert behaviour["relabeling"]["password"] == "API key (client secret)"


def test_secret_fields_are_marked_sensitive():
    for name in ("access_token", "refresh_token"):
        assert CONN_FIELDS[name]["schema"]["format"] == "password"
    for name, field in CONN_FIELDS.items():
        if name not in ("access_token", "refresh_token"):
            assert field["schema"].get("format") != "password"


def test_conn_field_schemas_are_valid_json_schema():
    for field in CONN_FIELDS.values():
        jsonschema.Draft7Validator.check_schema(field["schema"])
        assert field["label"] and field["description"]


def test_ui_field_behaviour_method_matches_provider_info():
    behaviour = CronofyHook.get_ui_field_behaviour()
    assert behaviour == {
        "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
        "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
        "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
    }


def test_provider_discovery_imports_nothing_heavy():
    code = (
        "import sys, airflow_provider_cronofy.get_provider_info as m; m.get_provider_info(); "
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('airflow', 'requests', 'tenacity')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# What DAG files see: each snippet first imports Airflow as a DAG file does, then our modules, in a
# fresh interpreter of its own (forks of one Airflow import, see tests/fresh_interpreter.py).
AIRFLOW_AS_A_DAG_FILE_DOES = "try:\n    import airflow.sdk\nexcept ImportError:\n    import airflow\n"
DEPRECATION_WARNINGS_OF_OUR_IMPORTS = (
    f"import json, warnings\n{AIRFLOW_AS_A_DAG_FILE_DOES}"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    import airflow_provider_cronofy.operators.meeting_agents\n"
    "    import airflow_provider_cronofy.hooks.cronofy\n"
    "print(json.dumps([[w.filename, str(w.message)] for w in caught\n"
    "                  if issubclass(w.category, DeprecationWarning)]))\n"
)
WHAT_THE_OPERATORS_MODULE_IMPORTS = (
    f"import sys\n{AIRFLOW_AS_A_DAG_FILE_DOES}"
    "before = set(sys.modules)\n"
    "import airflow_provider_cronofy.operators.meeting_agents\n"
    "new = set(sys.modules) - before\n"
    "print(sorted(n for n in new if n.split('.')[0] in ('requests', 'urllib3', 'tenacity')"
    " or n == 'airflow_provider_cronofy.hooks.cronofy'))\n"
)


@pytest.fixture(scope="module")
def dag_file_imports() -> dict[str, Finished]:
    results = run_fresh(
        {
            "warnings": Snippet(DEPRECATION_WARNINGS_OF_OUR_IMPORTS),
            "imported": Snippet(WHAT_THE_OPERATORS_MODULE_IMPORTS),
        }
    )
    for result in results.values():
        assert result.returncode == 0, result.stderr[-3000:]
    return results


def test_our_imports_raise_no_deprecation_warning(dag_file_imports):
    caught = json.loads(dag_file_imports["warnings"].stdout.strip().splitlines()[-1])
    # Airflow 2.11 warns about its own metrics settings on first import of its models; that is
    # Airflow's configuration, not our import paths. On Airflow 3 nothing at all may warn.
    ours = [w for w in caught if AIRFLOW_V_3 or "airflow_provider_cronofy" in w[0]]
    assert ours == []


def test_dag_files_do_not_import_the_hook_or_requests_through_us(dag_file_imports):
    # The operators module is what every DAG file imports: parsing must not pay for requests.
    assert dag_file_imports["imported"].stdout.strip().splitlines()[-1] == "[]"

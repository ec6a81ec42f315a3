"""The ``cronofy`` connection form exactly as this Airflow line's UI receives it.

- 3.x: the UI's form data comes from ``HookMetaService.hook_meta_data()`` (the API behind the
  React connection form). 3.2+ build it from the provider info's ``conn-fields``; 3.0 and 3.1
  call the hook's ``get_connection_form_widgets`` with wtforms and FAB swapped for mocks.
- 2.11: the Flask UI's wtforms form class (``create_connection_form_class``) and the field
  behaviours it sends to the page's JavaScript.

Every line runs the one form test that fits it; the others skip with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_cronofy.get_provider_info import CONN_FIELDS, DATA_CENTERS, UI_FIELD_BEHAVIOUR
from tests.lines import LINE

TOKENS = ("access_token", "refresh_token")
WHOLE_NUMBERS = ("max_retries", "max_concurrency", "rate_limit_per_second", "rate_limit_per_minute")
PLACEHOLDERS = UI_FIELD_BEHAVIOUR["placeholders"]
RELABELING = UI_FIELD_BEHAVIOUR["relabeling"]

only_3x = pytest.mark.skipif(
    LINE == "2.11", reason="Airflow 2.11 has no HookMetaService: its Flask UI renders the wtforms form"
)
only_2_11 = pytest.mark.skipif(
    LINE != "2.11", reason="Airflow 3 has no Flask connection form: its UI reads HookMetaService"
)

# hook_meta_data() runs in a child interpreter: on 3.1 it replaces missing wtforms/FAB modules in
# sys.modules with mocks for good, which must not leak into the rest of the test session.
HOOK_META_DATA = textwrap.dedent(
    """
    import json
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    print(json.dumps([m.model_dump(mode="json") for m in HookMetaService.hook_meta_data()]))
    """
)


def hook_meta_data(prelude: str = "") -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", prelude + HOOK_META_DATA], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def cronofy_entry(meta: list[dict]) -> dict:
    (entry,) = [m for m in meta if m["connection_type"] == "cronofy"]
    return entry


@pytest.fixture(scope="module")
def ui_form() -> dict:
    return cronofy_entry(hook_meta_data())


@only_3x
def test_ui_lists_cronofy_with_its_hook(ui_form):
    assert ui_form["hook_name"] == "Cronofy"
    assert ui_form["hook_class_name"] == "airflow_provider_cronofy.hooks.cronofy.CronofyHook"


@only_3x
def test_ui_standard_fields_hidden_relabelled_and_with_placeholders(ui_form):
    standard = ui_form["standard_fields"]
    for name in ("login", "port", "url_schema"):  # url_schema is the form's name for "schema"
        assert standard[name]["hidden"] is True, name
    for name in ("password", "host"):
        assert standard[name] == {
            "hidden": False,
            "title": RELABELING[name],
            "placeholder": PLACEHOLDERS[name],
        }


@only_3x
def test_ui_extra_fields_every_field_labelled_and_described(ui_form):
    extra = ui_form["extra_fields"]
    assert list(extra) == list(CONN_FIELDS)
    for name, field in CONN_FIELDS.items():
        assert extra[name]["schema"]["title"] == field["label"], name
        assert extra[name]["description"] == field["description"], name


@only_3x
def test_ui_tokens_are_password_fields_and_nothing_else_is(ui_form):
    extra = ui_form["extra_fields"]
    assert {name for name, f in extra.items() if f["schema"].get("format") == "password"} == set(TOKENS)


@only_3x
def test_ui_data_center_is_a_choice_of_the_six_defaulting_to_us(ui_form):
    data_center = ui_form["extra_fields"]["data_center"]
    assert data_center["schema"]["enum"] == list(DATA_CENTERS)
    assert data_center["value"] == "us"


@only_3x
def test_ui_numbers_are_typed(ui_form):
    extra = ui_form["extra_fields"]
    for name in WHOLE_NUMBERS:
        assert "integer" in extra[name]["schema"]["type"], name
    # 3.0/3.1's mocks know no decimal field (a FloatField would be dropped from the form), so the
    # timeout is text there; the hook parses it. 3.2+ reads the JSON schema as written.
    timeout_type = "string" if LINE in ("3.0", "3.1") else "number"
    assert timeout_type in extra["timeout"]["schema"]["type"]


@pytest.mark.skipif(LINE != "3.0", reason="only Airflow 3.0 needs wtforms to show any provider's fields")
def test_airflow_3_0_without_fab_still_lists_cronofy():
    # 3.0's ProvidersManager imports wtforms before it asks any hook for its form; without FAB
    # (the default install) it shows no provider's extra fields. The type must still be listed.
    hide_fab = textwrap.dedent(
        """
        import sys
        class HideFab:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("wtforms", "flask_appbuilder", "flask_babel"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, HideFab())
        """
    )
    entry = cronofy_entry(hook_meta_data(hide_fab))
    assert entry["hook_name"] == "Cronofy"
    assert entry["extra_fields"] is None


@pytest.fixture(scope="module")
def flask_form():
    from airflow.www.forms import create_connection_form_class

    return create_connection_form_class()


@only_2_11
def test_flask_form_offers_cronofy_with_every_field(flask_form):
    from wtforms import IntegerField, PasswordField, StringField

    assert ("cronofy", "Cronofy") in flask_form.conn_type.kwargs["choices"]
    for name, field in CONN_FIELDS.items():
        unbound = getattr(flask_form, f"extra__cronofy__{name}")
        assert str(unbound.args[0]) == field["label"], name
        assert unbound.kwargs["description"] == field["description"], name
        expected = PasswordField if name in TOKENS else IntegerField if name in WHOLE_NUMBERS else StringField
        assert unbound.field_class is expected, name


@only_2_11
def test_flask_form_marks_tokens_sensitive():
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    sensitive = {
        info.field_name
        for key, info in widgets.items()
        if key.startswith("extra__cronofy__") and info.is_sensitive
    }
    assert sensitive == set(TOKENS)


@only_2_11
def test_flask_form_behaviours_hide_relabel_and_place_hold():
    from airflow.providers_manager import ProvidersManager

    behaviour = ProvidersManager().field_behaviours["cronofy"]
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "port", "extra"}
    assert behaviour["relabeling"] == RELABELING
    # What the page's JavaScript receives: extra fields under their form names.
    for name, text in PLACEHOLDERS.items():
        key = name if name in ("password", "host") else f"extra__cronofy__{name}"
        assert behaviour["placeholders"][key] == text, name


@only_2_11
@pytest.mark.parametrize(
    ("data_center", "max_retries", "valid"),
    [("uk", "7", True), ("", "", True), ("mars", "7", False), ("uk", "seven", False)],
)
def test_flask_form_validates_choices_and_numbers(flask_form, data_center, max_retries, valid):
    from flask import Flask

    app = Flask(__name__)
    app.config.update(WTF_CSRF_ENABLED=False, SECRET_KEY="form-test")
    data = {
        "conn_id": "cronofy_form",
        "conn_type": "cronofy",
        "extra__cronofy__data_center": data_center,
        "extra__cronofy__max_retries": max_retries,
    }
    with app.test_request_context(method="POST", data=data):
        form = flask_form()
        ok = form.validate()
        assert ok is valid, form.errors
        if valid and max_retries:
            assert form.data["extra__cronofy__max_retries"] == int(max_retries)

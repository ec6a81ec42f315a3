"""The ``cronofy`` connection form for the Airflow lines that ask the hook for it (2.11, 3.0, 3.1),
built from :data:`~airflow_provider_cronofy.get_provider_info.CONN_FIELDS`, with only the wtforms
names 3.0/3.1's UI mocks (docs/development.md, "Airflow lines").
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cronofy.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR


def connection_form_widgets() -> dict[str, Any]:
    """The form's extra fields, ``{name: wtforms field}``, in :data:`CONN_FIELDS` order (``ImportError``
    without wtforms or Flask-AppBuilder, as Airflow expects)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, PasswordField, StringField
    from wtforms.validators import Optional, any_of

    widgets: dict[str, Any] = {}
    for name, field in CONN_FIELDS.items():
        schema = field["schema"]
        kind = _kind(schema)
        validators: list[Any] = [Optional()]
        if "enum" in schema:
            validators.append(any_of(list(schema["enum"])))
        field_class, widget = {
            "password": (PasswordField, BS3PasswordFieldWidget),
            "integer": (IntegerField, BS3TextFieldWidget),
            "string": (StringField, BS3TextFieldWidget),
        }[kind]
        widgets[name] = field_class(
            lazy_gettext(field["label"]),
            widget=widget(),
            description=field["description"],
            validators=validators,
            default=schema.get("default"),
        )
    return widgets


def _kind(schema: dict[str, Any]) -> str:
    """Which form field a conn-field's JSON schema becomes: password, integer or string."""
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if schema.get("format") == "password":
        return "password"
    if "integer" in types:
        return "integer"
    return "string"


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden, relabelled and placeholder fields, in the shape Airflow 2.11, 3.0 and 3.1 expect."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }

"""The ``cronofy`` connection form for the Airflow lines that ask the hook for it: 2.11, 3.0 and 3.1.

Airflow 3.2+ reads the form from the provider info (``conn-fields``) and never calls this. The
fields come from the one definition, :data:`~airflow_provider_cronofy.get_provider_info.CONN_FIELDS`.

- **2.11** renders the wtforms fields with Flask-AppBuilder widgets (FAB is always installed).
- **3.0 / 3.1**: the UI's ``HookMetaService`` swaps wtforms and FAB for its own mock classes while
  it calls the hook, and turns what they receive into a JSON schema. It mocks only
  ``StringField``, ``IntegerField``, ``PasswordField``, ``BooleanField``, ``Optional``, ``any_of``
  (not ``AnyOf``), ``lazy_gettext`` and three ``BS3*Widget`` classes, so this module uses those
  names and nothing else: any other class would come through unmocked and be dropped from the
  form. That is why the timeout (a decimal number) is a text field there.
- **3.0 without FAB** (its default install) shows no provider's extra fields at all: its
  ``ProvidersManager`` imports wtforms before it asks any hook, and without it skips every
  hook's form (the connection type is still listed). With ``apache-airflow-providers-fab``
  installed it shows this form, mocked as above.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cronofy.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR


def connection_form_widgets() -> dict[str, Any]:
    """Return the form's extra fields, ``{name: wtforms field}``, in :data:`CONN_FIELDS` order.

    Tokens are password fields; ``data_center`` accepts only the data-center ids (lower case,
    as the 3.2+ form's choice offers them); whole numbers are integer fields. Raises
    ``ImportError`` when wtforms or Flask-AppBuilder is missing, which Airflow expects.
    """
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

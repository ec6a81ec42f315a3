"""The ``cronofy`` connection form for Airflow 2.11, built from the one definition of its fields.

Airflow 3.2+ reads the form from the provider info (``conn-fields``, ``ui-field-behaviour``);
Airflow 2.11 asks the hook, which answers with what this module builds from the same
:data:`~airflow_provider_cronofy.get_provider_info.CONN_FIELDS`. Flask and WTForms are imported
only when the form is built (by the webserver), never when a task runs.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cronofy.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR


def connection_form_widgets() -> dict[str, Any]:
    """One WTForms field per extra: a password field for secrets, a text field otherwise."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField
    from wtforms.validators import AnyOf, Optional

    widgets: dict[str, Any] = {}
    for name, field in CONN_FIELDS.items():
        schema = field["schema"]
        validators: list[Any] = [Optional()]
        if "enum" in schema:
            validators.append(AnyOf([*schema["enum"], *(v.upper() for v in schema["enum"])]))
        if schema.get("format") == "password":
            widgets[name] = PasswordField(
                lazy_gettext(field["label"]),
                widget=BS3PasswordFieldWidget(),
                description=field["description"],
                validators=validators,
            )
        else:
            widgets[name] = StringField(
                lazy_gettext(field["label"]),
                widget=BS3TextFieldWidget(),
                description=field["description"],
                validators=validators,
            )
    return widgets


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden, relabelled and placeholder fields, in the shape Airflow 2.11 expects."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }

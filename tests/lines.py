"""Which Airflow line this test venv holds, and the skips that depend on it (each says why)."""

from __future__ import annotations

import pytest

from airflow_provider_cronofy._compat import AIRFLOW_VERSION

LINES = ("2.11", "3.0", "3.1", "3.2", "3.3")
"""The lines the provider is tested on: every line ``apache-airflow>=2.11`` admits."""

LINE = ".".join(AIRFLOW_VERSION.split(".")[:2])

form_outside_the_ui = pytest.mark.skipif(
    LINE == "3.1",
    reason="Airflow 3.1 without FAB (its default install) builds a hook's form only inside its UI, "
    "which mocks wtforms; ProvidersManager and `airflow providers widgets/behaviours` show no "
    "provider's form fields there. tests/hooks/test_connection_form.py checks the form as the UI gets it.",
)

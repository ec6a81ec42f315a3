"""Provider discovery for Airflow, and the one definition of the ``cronofy`` connection form.

Airflow imports this module for every command it runs, so it imports nothing but the package's
version string. Airflow 3.2+ reads the form from ``conn-fields`` / ``ui-field-behaviour`` below;
Airflow 2.11 asks the hook, which builds its widgets from the same :data:`CONN_FIELDS`.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cronofy import __version__

DATA_CENTERS: dict[str, str] = {
    "us": "https://api.cronofy.com",
    "au": "https://api-au.cronofy.com",
    "ca": "https://api-ca.cronofy.com",
    "de": "https://api-de.cronofy.com",
    "sg": "https://api-sg.cronofy.com",
    "uk": "https://api-uk.cronofy.com",
}
"""Cronofy's data centers: id -> API base URL (the ids every official Cronofy SDK uses)."""

DEFAULT_CONN_ID = "cronofy_default"
DEFAULT_RATE_LIMIT_PER_SECOND = 50
DEFAULT_RATE_LIMIT_PER_MINUTE = 500

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "data_center": {
        "label": "Data center",
        "description": "Where the Cronofy application lives: us (default), au, ca, de, sg or uk. "
        "Unused when a Base URL override is set.",
        "schema": {"type": "string", "enum": list(DATA_CENTERS), "default": "us"},
    },
    "access_token": {
        "label": "Access token",
        "description": "A user's OAuth access token, for the calendar-event calls "
        "(integrated Meeting Agents).",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "client_id": {
        "label": "Client ID",
        "description": "The application's client id. With a refresh token, the hook gets fresh "
        "access tokens itself.",
        "schema": {"type": ["string", "null"]},
    },
    "refresh_token": {
        "label": "Refresh token",
        "description": "The user's OAuth refresh token, used with the client id and the API key "
        "(client secret) to refresh the access token.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Connect and read timeout of each request. Default 10 s connect, 30 s read.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries after the first attempt on 429, 5xx, timeouts and connection "
        "errors. Default 5.",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "rate_limit_per_second": {
        "label": "Rate limit per second",
        "description": f"Requests per second the hook allows itself. Default "
        f"{DEFAULT_RATE_LIMIT_PER_SECOND}, Cronofy's default limit; 0 turns it off.",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "rate_limit_per_minute": {
        "label": "Rate limit per minute",
        "description": f"Requests per minute the hook allows itself. Default "
        f"{DEFAULT_RATE_LIMIT_PER_MINUTE}, Cronofy's default limit; 0 turns it off.",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "max_concurrency": {
        "label": "Max concurrency",
        "description": "Requests a bulk run keeps in flight at once (1-100). Default: the "
        "per-second rate limit (50), so the first second's burst goes out at once; 20 without one. "
        "The rate limits still apply.",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
    },
    "batch_rate_cost": {
        "label": "Batch rate cost",
        "description": "How a POST /v1/batch counts against the rate limits: request (one, "
        "default) or entries (one per event in it).",
        "schema": {"type": "string", "enum": ["request", "entries"], "default": "request"},
    },
}
"""The connection's extra fields: name -> label, description, JSON schema."""

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port", "extra"],
    "relabeling": {"password": "API key (client secret)", "host": "Base URL override"},
    "placeholders": {
        "password": "The application's API key (its client secret)",
        "host": "Optional: a proxy or the local emulator, e.g. http://127.0.0.1:8765",
        "data_center": "us",
        "client_id": "Only needed to refresh access tokens",
        "timeout": "30",
        "max_retries": "5",
        "rate_limit_per_second": str(DEFAULT_RATE_LIMIT_PER_SECOND),
        "rate_limit_per_minute": str(DEFAULT_RATE_LIMIT_PER_MINUTE),
    },
}
"""Which standard connection fields the form hides, relabels and fills with placeholders."""


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata (the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-cronofy",
        "name": "Cronofy",
        "description": "Cancel Cronofy Meeting Agents (scheduled and integrated) from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Cronofy",
                "external-doc-url": "https://docs.cronofy.com/developers/api/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "Cronofy", "python-modules": ["airflow_provider_cronofy.hooks.cronofy"]}
        ],
        "operators": [
            {
                "integration-name": "Cronofy",
                "python-modules": ["airflow_provider_cronofy.operators.meeting_agents"],
            }
        ],
        "triggers": [
            {"integration-name": "Cronofy", "python-modules": ["airflow_provider_cronofy.triggers.resume_at"]}
        ],
        "connection-types": [
            {
                "connection-type": "cronofy",
                "hook-class-name": "airflow_provider_cronofy.hooks.cronofy.CronofyHook",
                "hook-name": "Cronofy",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }

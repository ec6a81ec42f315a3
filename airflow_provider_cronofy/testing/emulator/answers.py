"""Cronofy's answers: the response every route returns, and Cronofy's error bodies and body rules.

Error bodies have Cronofy's shape, ``{"errors": {field: [{"key": ..., "description": ...}]}}``.
A route raises ``Reject`` to answer at once (a missing credential, a body that is not JSON, ...).
"""

from __future__ import annotations

import http
import json
from dataclasses import dataclass, field
from typing import Any, cast

from airflow_provider_cronofy.testing.emulator.records import RecordedBatchEntry

JSON = "application/json; charset=utf-8"
REQUIRED = [{"key": "errors.required", "description": "required"}]

FieldErrors = dict[str, list[dict[str, str]]]


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # A batch's entries as handled, for its record.
    batch_entries: tuple[RecordedBatchEntry, ...] = ()


class Reject(Exception):
    """Raised inside a route to answer with ``response`` straight away."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), JSON, dict(headers or {}))


def errors(status: int, field_errors: FieldErrors) -> Response:
    return json_response(status, {"errors": field_errors})


def error(status: int, field_name: str, key: str, description: str) -> Response:
    return errors(status, {field_name: [{"key": key, "description": description}]})


def invalid(description: str) -> list[dict[str, str]]:
    return [{"key": "errors.invalid", "description": description}]


def internal_error() -> Response:
    return error(500, "base", "errors.internal", "emulator error")


def default_error_body(status: int) -> bytes:
    """Cronofy-shaped error body for an injected fault: ``errors.too_many_requests`` for 429, ..."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    key = "errors." + phrase.lower().replace(" ", "_").replace("-", "_")
    return json.dumps({"errors": {"base": [{"key": key, "description": phrase}]}}).encode()


def parse_json_lenient(body: bytes) -> object | None:
    if not body.strip():
        return None
    try:
        return cast(object, json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return None


def json_body(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The JSON object of a request body (``{}`` when empty); 415 or 422 through ``Reject``."""
    if not body.strip():
        return {}
    if not headers.get("content-type", "").lower().startswith("application/json"):
        raise Reject(
            error(415, "body", "errors.unsupported_media_type", "Content-Type must be application/json")
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Reject(error(422, "body", "errors.invalid_json", "body is not valid JSON")) from None
    if not isinstance(data, dict):
        raise Reject(error(422, "body", "errors.invalid_json", "body must be a JSON object"))
    return data


def require_string(data: dict[str, Any], name: str, field_errors: FieldErrors) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        field_errors[name] = REQUIRED
        return None
    if not isinstance(value, str):
        field_errors[name] = invalid("must be a string")
        return None
    return value

"""Who may call: the API key, access tokens and their scopes, and the OAuth endpoints.

``require_*`` check a request's credentials (401 or 403 through ``Reject``, never echoing the
credential); ``refresh_access_token`` is ``POST /oauth/token`` and ``userinfo`` is
``GET /v1/userinfo``. All run with the state's lock held.
"""

from __future__ import annotations

import hmac
import secrets
import urllib.parse

from airflow_provider_cronofy.testing.emulator.answers import (
    Reject,
    Response,
    error,
    json_response,
    parse_json_lenient,
)
from airflow_provider_cronofy.testing.emulator.state import AccessToken, CronofyState


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == "bearer" and credential else None


def _unauthorized(description: str) -> Reject:
    # The description never contains the credential: clients log error bodies.
    return Reject(
        json_response(
            401,
            {"error": "invalid_token", "error_description": description},
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    )


def require_api_key(state: CronofyState, headers: dict[str, str]) -> None:
    credential = _bearer(headers)
    if credential is None:
        raise _unauthorized("missing Bearer credentials")
    if not hmac.compare_digest(credential.encode(), state.settings.api_key.encode()):
        raise _unauthorized("API key not recognised")


def require_access_token(state: CronofyState, headers: dict[str, str], now: float) -> AccessToken:
    credential = _bearer(headers)
    if credential is None:
        raise _unauthorized("missing Bearer credentials")
    token = state.access_tokens.get(credential)
    if token is None:
        raise _unauthorized("access token not recognised")
    if not token.is_valid(now):
        raise _unauthorized("access token expired")
    return token


def require_scope(token: AccessToken, scope: str) -> None:
    if scope not in token.scopes:
        raise Reject(error(403, "scope", "errors.missing_scope", scope))


def userinfo(state: CronofyState, headers: dict[str, str], now: float) -> Response:
    token = require_access_token(state, headers, now)
    return json_response(
        200,
        {
            "sub": token.account_id,
            "cronofy.type": "account",
            "cronofy.data": {"authorization": {"scope": " ".join(token.scopes), "status": "active"}},
        },
    )


_NO_STORE = {"Cache-Control": "no-store"}


def _oauth_error(status: int, error_code: str, description: str) -> Response:
    return json_response(status, {"error": error_code, "error_description": description}, _NO_STORE)


def _token_params(headers: dict[str, str], body: bytes) -> dict[str, object] | Response:
    content_type = headers.get("content-type", "").lower()
    if content_type.startswith("application/json"):
        parsed = parse_json_lenient(body)
        if not isinstance(parsed, dict):
            return _oauth_error(400, "invalid_request", "body must be a JSON object")
        return parsed
    if content_type.startswith("application/x-www-form-urlencoded") or not body.strip():
        try:
            form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            return _oauth_error(400, "invalid_request", "body is not valid form data")
        return {name: values[0] for name, values in form.items()}
    return _oauth_error(400, "invalid_request", "body must be JSON or form-encoded")


def refresh_access_token(state: CronofyState, headers: dict[str, str], body: bytes, now: float) -> Response:
    """``POST /oauth/token`` with ``grant_type=refresh_token``: a new access token, or an OAuth error."""
    params = _token_params(headers, body)
    if isinstance(params, Response):
        return params

    def param(name: str) -> str:
        value = params.get(name)
        return value if isinstance(value, str) else ""

    settings = state.settings
    if not (
        hmac.compare_digest(param("client_id").encode(), settings.client_id.encode())
        and hmac.compare_digest(param("client_secret").encode(), settings.api_key.encode())
    ):
        return _oauth_error(401, "invalid_client", "client credentials not recognised")
    grant_type = param("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is required")
    if grant_type != "refresh_token":
        return _oauth_error(400, "unsupported_grant_type", "only refresh_token is supported")
    refresh_token = param("refresh_token")
    if not refresh_token:
        return _oauth_error(400, "invalid_request", "refresh_token is required")
    grant = state.refresh_tokens.get(refresh_token)
    if grant is None:
        return _oauth_error(400, "invalid_grant", "refresh token not recognised or revoked")

    access_token = "emu_at_" + _random_token()
    state.access_tokens[access_token] = AccessToken(
        grant.scopes, grant.account_id, expires_at=now + settings.access_token_lifetime
    )
    if settings.rotate_refresh_tokens:
        del state.refresh_tokens[refresh_token]
        state.dead_refresh_tokens.add(refresh_token)
        refresh_token = "emu_rt_" + _random_token()
        state.refresh_tokens[refresh_token] = grant
    payload = {
        "token_type": "bearer",
        "access_token": access_token,
        "expires_in": settings.access_token_lifetime,
        "refresh_token": refresh_token,
        "scope": " ".join(grant.scopes),
        "account_id": grant.account_id,
    }
    return json_response(200, payload, _NO_STORE)


def _random_token() -> str:
    return secrets.token_urlsafe(24)

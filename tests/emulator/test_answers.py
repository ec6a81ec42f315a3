"""Cronofy's answers to bad requests: body rules (415, 422) and error bodies (404, no credential echoed)."""

from __future__ import annotations

from tests.emulator._support import (
    REFRESH,
    TIMEOUT,
    TOKEN,
    api_key,
    bearer,
    cancel,
    error_keys,
    refresh,
    upsert,
)

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_non_json_body_is_415(emu, session):
    emu.schedule_agent("k1")
    response = session.delete(
        f"{emu.url}/v1/meeting_agents",
        data="scheduling_key=k1",
        headers={**api_key(emu), "Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 415
    assert error_keys(response) == {"body": "errors.unsupported_media_type"}
    assert emu.scheduled_agents["k1"]["status"] == "scheduled"


def test_malformed_json_is_422(emu, session):
    response = session.delete(
        f"{emu.url}/v1/meeting_agents",
        data=b'{"scheduling_key": ',
        headers={**api_key(emu), "Content-Type": "application/json; charset=utf-8"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 422
    assert error_keys(response) == {"body": "errors.invalid_json"}


def test_unknown_path_is_404_json(emu, session):
    response = session.get(f"{emu.url}/v1/nothing", headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "errors" in response.json()
    assert (
        session.get(f"{emu.url}/v1/meeting_agents", headers=api_key(emu), timeout=TIMEOUT).status_code == 404
    )


def test_error_bodies_never_echo_credentials(emu, session):
    emu.add_refresh_token(REFRESH)
    responses = [
        cancel(session, emu, "k", headers=bearer("secret-wrong-key")),
        cancel(session, emu, "k", headers=bearer(TOKEN)),
        upsert(session, emu, {"event_id": "e"}, token="secret-unknown-token"),
        upsert(session, emu, {"event_id": "e"}, calendar="cal_bob"),
        refresh(session, emu, client_secret="secret-wrong-secret"),
        refresh(session, emu, refresh_token="secret-unknown-refresh"),
    ]
    for response in responses:
        assert response.status_code >= 400
        for secret in ("secret-", emu.api_key, TOKEN, REFRESH):
            assert secret not in response.text

"""Access tokens, ``GET /v1/userinfo`` and ``POST /oauth/token`` (refresh, rotation, revocation)."""

from __future__ import annotations

import pytest

from tests.emulator._support import REFRESH, TIMEOUT, TOKEN, api_key, bearer, refresh, upsert

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_userinfo(emu, session):
    response = session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT)
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == "acc_alice"
    assert body["cronofy.type"] == "account"
    assert body["cronofy.data"]["authorization"]["scope"] == "read_events create_event delete_event"
    assert session.get(f"{emu.url}/v1/userinfo", headers=api_key(emu), timeout=TIMEOUT).status_code == 401


def test_expired_access_token_is_401(emu, session):
    emu.add_access_token("tok_old", account_id="acc_alice", expired=True)
    assert (
        session.get(f"{emu.url}/v1/userinfo", headers=bearer("tok_old"), timeout=TIMEOUT).status_code == 401
    )
    assert session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT).status_code == 200
    emu.expire_access_token(TOKEN)
    response = session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    with pytest.raises(KeyError):
        emu.expire_access_token("never-registered")


def test_refresh_issues_a_working_token_for_the_account(emu, session):
    emu.add_refresh_token(REFRESH, account_id="acc_alice")
    emu.expire_access_token(TOKEN)
    response = refresh(session, emu)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"] == REFRESH
    assert body["scope"] == "read_events create_event delete_event"
    new_token = body["access_token"]
    assert new_token not in (TOKEN, REFRESH)
    emu.add_event("cal_1", "evt_1")
    # The calendar belongs to the account, so the new token reaches it.
    assert upsert(session, emu, {"event_id": "evt_1"}, token=new_token).status_code == 202
    assert refresh(session, emu).json()["access_token"] != new_token


def test_refresh_accepts_a_form_body(emu, session):
    emu.add_refresh_token(REFRESH)
    form = {
        "client_id": emu.client_id,
        "client_secret": emu.api_key,
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
    }
    response = session.post(f"{emu.url}/oauth/token", data=form, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["access_token"]


def test_issued_tokens_expire_after_their_lifetime(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(access_token_lifetime=0)
    emulator.add_refresh_token(REFRESH)
    body = refresh(session, emulator).json()
    assert body["expires_in"] == 0
    response = session.get(
        f"{emulator.url}/v1/userinfo", headers=bearer(body["access_token"]), timeout=TIMEOUT
    )
    assert response.status_code == 401


def test_refresh_errors(emu, session):
    emu.add_refresh_token(REFRESH)
    wrong_secret = refresh(session, emu, client_secret="nope")
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert refresh(session, emu, client_id="nope").json()["error"] == "invalid_client"
    unknown = refresh(session, emu, refresh_token="rt_unknown")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"
    other_grant = refresh(session, emu, grant_type="authorization_code")
    assert other_grant.status_code == 400
    assert other_grant.json()["error"] == "unsupported_grant_type"


def test_refresh_token_rotation(emu, session):
    emu.add_refresh_token(REFRESH, account_id="acc_alice")
    emu.rotate_refresh_tokens = True
    first = refresh(session, emu).json()
    assert first["refresh_token"] != REFRESH
    assert refresh(session, emu).json()["error"] == "invalid_grant"  # the old one is dead
    second = refresh(session, emu, refresh_token=first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (REFRESH, first["refresh_token"])


def test_refresh_token_revocation(emu, session):
    emu.add_refresh_token(REFRESH)
    assert refresh(session, emu).status_code == 200
    emu.revoke_refresh_token(REFRESH)
    response = refresh(session, emu)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    emu.revoke_refresh_token(REFRESH)  # already revoked: no-op
    with pytest.raises(KeyError):
        emu.revoke_refresh_token("never-registered")

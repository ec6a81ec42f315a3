"""The connection side of the hook (hooks/connection.py) over requests-mock: settings read from the
connection, credentials, the one HTTP session, proxies and CA bundles from the environment."""

from __future__ import annotations

import pytest

from airflow_provider_cronofy.exceptions import (
    CronofyConfigError,
)
from airflow_provider_cronofy.get_provider_info import DATA_CENTERS
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from tests.conftest import API_KEY

US = "https://api.cronofy.com"
NO_PACING = {"rate_limit_per_second": 0, "rate_limit_per_minute": 0}


def make_hook(**kwargs) -> CronofyHook:
    return CronofyHook(**kwargs)


def test_one_session_reused_and_closed(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)
    hook = make_hook()
    session = hook.session
    hook.cancel_scheduled_meeting_agent("a")
    hook.cancel_scheduled_meeting_agent("b")
    assert hook.session is session
    hook.close()
    assert "session" not in hook.__dict__
    with make_hook() as other:
        other.cancel_scheduled_meeting_agent("c")
    assert "session" not in other.__dict__


@pytest.mark.parametrize(
    ("value", "base"),
    [
        ("UK", DATA_CENTERS["uk"]),
        (" de ", DATA_CENTERS["de"]),
        (None, US),
        ("", US),
        ("sg", DATA_CENTERS["sg"]),
    ],
)
def test_data_center_case_insensitive_default_us(set_connection, value, base):
    set_connection(**({"data_center": value} if value is not None else {}))
    hook = make_hook()
    assert hook.base_url == base


def test_hook_argument_overrides_extra(set_connection):
    set_connection(data_center="uk", timeout=5, max_retries=2)
    hook = make_hook(data_center="au", timeout=7, max_retries=1)
    assert hook.base_url == DATA_CENTERS["au"]
    assert hook.settings.timeout == (7.0, 7.0)
    assert hook.settings.max_retries == 1


@pytest.mark.parametrize("value", ["eu", "usa", "api-uk", "u k", 3])
def test_unknown_data_center_lists_the_six(set_connection, requests_mock, value):
    set_connection(data_center=value)
    with pytest.raises(CronofyConfigError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    for dc in DATA_CENTERS:
        assert dc in str(info.value)
    assert repr(value) in str(info.value)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("proxy.example.com", "https://proxy.example.com"),
        ("https://proxy.example.com/cronofy/", "https://proxy.example.com/cronofy"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://127.0.0.5:81", "http://127.0.0.5:81"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("HTTPS://API.example.com", "https://API.example.com"),
    ],
)
def test_host_accepted(set_connection, host, base):
    set_connection(host=host, data_center="uk")
    hook = make_hook()
    assert hook.base_url == base
    assert hook.settings.data_center is None


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("http://proxy.example.com", "loopback"),
        ("http://10.0.0.1", "loopback"),
        ("https://user:pw@proxy.example.com", "user info"),
        ("https://proxy.example.com/?a=1", "query"),
        ("https://proxy.example.com/#x", "fragment"),
        ("ftp://proxy.example.com", "scheme"),
        ("https://api.cronofy.com/v1", "/v1"),
        ("https://proxy.example.com/a/../b", "'..'"),
        ("https://proxy.example.com:99999", "not a valid URL"),
        ("https://bad host.example.com", "white space"),
        ("https://proxy.example.com/a\tb", "white space"),
        ("https://proxy.example.com/\x00", "control character"),
    ],
)
def test_host_refused(set_connection, requests_mock, host, why):
    set_connection(host=host)
    with pytest.raises(CronofyConfigError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert why in str(info.value)
    assert "pw" not in str(info.value)
    assert requests_mock.call_count == 0


def test_host_port_field_is_used(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", "cronofy://:key@localhost:8123")
    # A URI connection carries no scheme: a non-loopback host would be https, loopback too.
    assert make_hook().base_url == "https://localhost:8123"


def test_default_timeout_is_bounded_and_sent(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)
    make_hook().cancel_scheduled_meeting_agent("k")
    assert requests_mock.last_request.timeout == (10.0, 30.0)


def test_timeout_extra_is_sent(set_connection, requests_mock):
    set_connection(timeout="2.5")
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)
    make_hook().cancel_scheduled_meeting_agent("k")
    assert requests_mock.last_request.timeout == (2.5, 2.5)


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": "many"}, "max_retries"),
        ({"rate_limit_per_second": -5}, "rate_limit_per_second"),
        ({"rate_limit_per_minute": "fast"}, "rate_limit_per_minute"),
    ],
)
def test_bad_numeric_settings_refused(set_connection, requests_mock, extra, name):
    set_connection(**extra)
    with pytest.raises(CronofyConfigError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert name in str(info.value)
    assert repr(next(iter(extra.values()))) in str(info.value)
    assert requests_mock.call_count == 0


def test_missing_api_key_reported_before_any_request(set_connection, requests_mock):
    set_connection(password=None)
    with pytest.raises(CronofyConfigError, match="needs the API key in the connection's password"):
        make_hook().cancel_scheduled_meeting_agent("k")
    assert requests_mock.call_count == 0


def test_missing_access_token_reported_before_any_request(set_connection, requests_mock):
    set_connection()
    with pytest.raises(CronofyConfigError, match="access_token"):
        make_hook().delete_event("cal", "evt")
    assert requests_mock.call_count == 0


def test_prefixed_extra_names_are_read(set_connection):
    set_connection(**{"extra__cronofy__data_center": "sg", "extra__cronofy__timeout": "4"})
    hook = make_hook()
    assert hook.base_url == DATA_CENTERS["sg"]
    assert hook.settings.timeout == (4.0, 4.0)


def test_bare_extra_name_wins_over_prefixed(set_connection):
    set_connection(**{"extra__cronofy__data_center": "sg", "data_center": "ca"})
    assert make_hook().base_url == DATA_CENTERS["ca"]


def test_proxies_read_once_from_environment(set_connection, monkeypatch):
    set_connection()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = make_hook().session
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.internal:3128"


def test_no_proxy_is_respected(set_connection, monkeypatch):
    set_connection()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api.cronofy.com")
    assert "https" not in make_hook().session.proxies


def test_ca_bundle_from_environment(set_connection, monkeypatch):
    set_connection()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    assert make_hook().session.verify == "/etc/ssl/corporate.pem"


def test_netrc_never_replaces_the_authorization_header(set_connection, requests_mock, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.cronofy.com login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)
    make_hook().cancel_scheduled_meeting_agent("k")
    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {API_KEY}"

"""Bad input is refused before any request, with a message naming the bad value.

Each case points the connection at a running emulator, so that a check that let the value through
would show up as a recorded request. Calendar ids holding ``/``, ``?``, ``#``, ``%`` or non-ASCII
are not bad: they are sent percent-encoded as one path segment, and must reach that calendar only.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_cronofy.exceptions import CronofyConfigError, CronofyInputError
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator

API_KEY = "rel-bad-input-api-key-0001"
TOKEN = "rel-bad-input-access-token-0001"
DECOY = "cal_decoy"


@pytest.fixture(scope="module")
def module_emulator():
    with CronofyEmulator(api_key=API_KEY, rate_limit_per_second=None, rate_limit_per_minute=None) as emu:
        emu.add_access_token(TOKEN)
        for calendar in ("cal_1", DECOY):
            emu.add_calendar(calendar, access_token=TOKEN)
            emu.add_event(calendar, "evt_1")
        yield emu


@pytest.fixture
def emulator(module_emulator):
    module_emulator.reset_requests()
    module_emulator.clear_faults()
    return module_emulator


def connect(emu: CronofyEmulator, *, host: str | None = "{url}", password: str | None = API_KEY, **extra):
    """Point cronofy_default at the emulator; ``None`` for an extra leaves it out."""
    extras: dict[str, Any] = {"access_token": TOKEN, "rate_limit_per_second": 0, "rate_limit_per_minute": 0}
    extras.update(extra)
    conn: dict[str, Any] = {
        "conn_type": "cronofy",
        "extra": {k: v for k, v in extras.items() if v is not None},
    }
    if host is not None:
        conn["host"] = host.format(url=emu.url, port=emu.url.rsplit(":", 1)[1])
    if password is not None:
        conn["password"] = password
    os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = json.dumps(conn)


def scheduled(keys: Any) -> CancelScheduledMeetingAgentOperator:
    return CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys)


def integrated(event_id: Any = "evt_1", calendar_id: Any = "cal_1", **kwargs: Any):
    return CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id=calendar_id, event_id=event_id, **kwargs
    )


def rendered(operator, **params: Any):
    """The operator after Airflow rendered its templates (non-native: a list becomes its text)."""
    operator.render_template_fields(context={"params": params})
    return operator


@dataclass
class Case:
    make: Any  # () -> operator
    error: type[Exception]
    parts: list[str]
    conn: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    # ---- scheduling keys
    "key-none": Case(
        lambda: scheduled(None),
        CronofyInputError,
        ["scheduling_key must be a string or a list of strings, got NoneType: None"],
    ),
    "key-int": Case(lambda: scheduled(42), CronofyInputError, ["got int: 42"]),
    "key-float": Case(lambda: scheduled(4.5), CronofyInputError, ["got float: 4.5"]),
    "key-bool": Case(lambda: scheduled(True), CronofyInputError, ["got bool: True"]),
    "key-empty": Case(
        lambda: scheduled(""), CronofyInputError, ["scheduling_key must be a non-blank string, got ''"]
    ),
    "key-blank": Case(lambda: scheduled("   "), CronofyInputError, ["non-blank string, got '   '"]),
    "key-tab-newline": Case(lambda: scheduled("\t\n"), CronofyInputError, ["non-blank string, got '\\t\\n'"]),
    "key-list-holding-int": Case(
        lambda: scheduled(["ok", 7]),
        CronofyInputError,
        ["scheduling_key[1] must be a string, got int: 7", "1 of the 2 items", "nothing was sent"],
    ),
    "key-list-holding-none": Case(
        lambda: scheduled(["ok", None]), CronofyInputError, ["scheduling_key[1]", "NoneType"]
    ),
    "key-list-holding-blank": Case(
        lambda: scheduled(["ok", " "]),
        CronofyInputError,
        ["scheduling_key[1] must be a non-blank string, got ' '"],
    ),
    "key-nested-list": Case(
        lambda: scheduled([["a", "b"]]),
        CronofyInputError,
        ["scheduling_key[0] must be a string, got list: ['a', 'b']"],
    ),
    "key-list-holding-empty-list": Case(
        lambda: scheduled(["a", []]), CronofyInputError, ["scheduling_key[1] must be a string, got list: []"]
    ),
    "key-dict": Case(lambda: scheduled({"k": "v"}), CronofyInputError, ["got dict: {'k': 'v'}"]),
    "key-bytes": Case(lambda: scheduled(b"key"), CronofyInputError, ["got bytes: b'key'"]),
    "key-several-bad": Case(
        lambda: scheduled(["a", 1, None, "", "b"]),
        CronofyInputError,
        ["3 of the 5 items", "scheduling_key[1]", "scheduling_key[2]", "scheduling_key[3]"],
    ),
    "key-python-list-as-text": Case(
        lambda: scheduled("['a', 'b']"),
        CronofyInputError,
        ["\"['a', 'b']\" looks like a list rendered to a string"],
    ),
    "key-json-list-as-text": Case(
        lambda: scheduled('["a", "b"]'), CronofyInputError, ['\'["a", "b"]\' looks like a list rendered']
    ),
    "key-jinja-rendered-list": Case(
        lambda: rendered(scheduled("{{ params.key_list }}"), key_list=["sk_1", "sk_2"]),
        CronofyInputError,
        ["\"['sk_1', 'sk_2']\" looks like a list rendered to a string", "render_template_as_native_obj"],
    ),
    "key-in-list-jinja-rendered-list": Case(
        lambda: rendered(scheduled(["{{ params.key_list }}"]), key_list=["sk_1"]),
        CronofyInputError,
        ["scheduling_key[0] \"['sk_1']\" looks like a list"],
    ),
    # ---- event ids
    "event-none": Case(
        lambda: integrated(None),
        CronofyInputError,
        ["event_id must be a string or a list of strings, got NoneType: None"],
    ),
    "event-int": Case(
        lambda: integrated(12),
        CronofyInputError,
        ["event_id must be a string or a list of strings, got int: 12"],
    ),
    "event-empty": Case(
        lambda: integrated(""), CronofyInputError, ["event_id must be a non-blank string, got ''"]
    ),
    "event-nested-list": Case(
        lambda: integrated(["e1", ["e2"]]),
        CronofyInputError,
        ["event_id[1] must be a string, got list: ['e2']"],
    ),
    "event-list-as-text": Case(
        lambda: integrated("['e1', 'e2']"), CronofyInputError, ["event_id \"['e1', 'e2']\" looks like a list"]
    ),
    "event-jinja-rendered-list": Case(
        lambda: rendered(integrated("{{ params.ids }}"), ids=["evt_1", "evt_2"]),
        CronofyInputError,
        ["event_id \"['evt_1', 'evt_2']\" looks like a list"],
    ),
    # ---- calendar ids that cannot be sent
    "calendar-dot": Case(
        lambda: integrated(calendar_id="."), CronofyInputError, ["calendar_id '.' is a path dot segment"]
    ),
    "calendar-dot-dot": Case(
        lambda: integrated(calendar_id=".."), CronofyInputError, ["calendar_id '..' is a path dot segment"]
    ),
    "calendar-inner-space": Case(
        lambda: integrated(calendar_id="cal 1"), CronofyInputError, ["calendar_id 'cal 1' holds whitespace"]
    ),
    "calendar-leading-space": Case(
        lambda: integrated(calendar_id=" cal_1"),
        CronofyInputError,
        ["calendar_id ' cal_1' has leading or trailing white space", "('cal_1')"],
    ),
    "calendar-newline": Case(
        lambda: integrated(calendar_id="cal_1\n"),
        CronofyInputError,
        ["calendar_id 'cal_1\\n' has leading or trailing white space", "('cal_1')"],
    ),
    "calendar-nul": Case(
        lambda: integrated(calendar_id="cal\x001"),
        CronofyInputError,
        ["'cal\\x001' holds whitespace or control"],
    ),
    "calendar-zero-width-space": Case(
        lambda: integrated(calendar_id="cal\u200b1"),
        CronofyInputError,
        ["holds whitespace or control characters"],
    ),
    "calendar-no-break-space": Case(
        lambda: integrated(calendar_id="cal\u00a01"),
        CronofyInputError,
        ["holds whitespace or control characters"],
    ),
    "calendar-none": Case(
        lambda: integrated(calendar_id=None),
        CronofyInputError,
        ["calendar_id must be a string, got NoneType"],
    ),
    "calendar-list": Case(
        lambda: integrated(calendar_id=["cal_1"]),
        CronofyInputError,
        ["calendar_id must be a string, got list: ['cal_1']"],
    ),
    "calendar-list-as-text": Case(
        lambda: integrated(calendar_id="['cal_1']"),
        CronofyInputError,
        ["calendar_id \"['cal_1']\" looks like a list"],
    ),
    # ---- delete_event
    "delete-event-yes": Case(
        lambda: integrated(delete_event="yes"),
        CronofyInputError,
        ["delete_event must be True or False, got str: 'yes'"],
    ),
    "delete-event-text-false": Case(
        lambda: integrated(delete_event="False"), CronofyInputError, ["got str: 'False'"]
    ),
    "delete-event-one": Case(lambda: integrated(delete_event=1), CronofyInputError, ["got int: 1"]),
    "delete-event-none": Case(
        lambda: integrated(delete_event=None), CronofyInputError, ["got NoneType: None"]
    ),
    # ---- data center
    "data-center-typo": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["Unknown Cronofy data center 'uk1': use one of us, au, ca, de, sg, uk"],
        {"data_center": "uk1"},
    ),
    "data-center-gb": Case(
        lambda: scheduled("k"), CronofyConfigError, ["data center 'gb'"], {"data_center": "gb"}
    ),
    "data-center-eu": Case(
        lambda: integrated(), CronofyConfigError, ["data center 'eu'"], {"data_center": "eu"}
    ),
    "data-center-host-name": Case(
        lambda: scheduled("k"), CronofyConfigError, ["data center 'api-uk'"], {"data_center": "api-uk"}
    ),
    "data-center-number": Case(
        lambda: scheduled("k"), CronofyConfigError, ["data center 5"], {"data_center": 5}
    ),
    # ---- host
    "host-http-not-loopback": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["'http://10.0.0.5:8080' is refused", "http:// is only allowed for loopback hosts"],
        {"host": "http://10.0.0.5:8080"},
    ),
    "host-http-lookalike-of-localhost": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["http:// is only allowed for loopback"],
        {"host": "http://localhost.example.com:{port}"},
    ),
    "host-with-credentials": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["holds user info (credentials belong in the password field)", "'<redacted>'"],
        {"host": "http://user:hunter2@127.0.0.1:{port}"},
    ),
    "host-with-query": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["holds a query or a fragment"],
        {"host": "{url}?via=proxy"},
    ),
    "host-with-fragment": Case(
        lambda: scheduled("k"), CronofyConfigError, ["holds a query or a fragment"], {"host": "{url}#top"}
    ),
    "host-with-dot-dot-segment": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["path holds a '.' or '..' segment"],
        {"host": "{url}/proxy/../x"},
    ),
    "host-with-encoded-dot-dot-segment": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["path holds a '.' or '..' segment"],
        {"host": "{url}/%2e%2e/x"},
    ),
    "host-with-half-encoded-dot-dot": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["path holds a '.' or '..' segment"],
        {"host": "{url}/p/.%2E"},
    ),
    "host-ending-in-v1": Case(
        lambda: scheduled("k"), CronofyConfigError, ["ends in /v1"], {"host": "{url}/v1"}
    ),
    "host-ending-in-v1-slash": Case(
        lambda: scheduled("k"), CronofyConfigError, ["ends in /v1"], {"host": "{url}/v1/"}
    ),
    "host-prefix-ending-in-v1": Case(
        lambda: scheduled("k"), CronofyConfigError, ["ends in /v1"], {"host": "{url}/proxy/v1"}
    ),
    "host-ftp": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["scheme must be https:// (not ftp://)"],
        {"host": "ftp://127.0.0.1"},
    ),
    # ---- credentials
    "no-api-key-for-scheduled-cancel": Case(
        lambda: scheduled(["k1", "k2"]),
        CronofyConfigError,
        ["needs the API key in the connection's password", "'cronofy_default' has none"],
        {"password": None},
    ),
    "no-access-token-for-event-call": Case(
        lambda: integrated(),
        CronofyConfigError,
        ["needs a user's access token", "access_token", "client_id and refresh_token"],
        {"access_token": None},
    ),
    "refresh-token-without-client-id": Case(
        lambda: integrated(),
        CronofyConfigError,
        ["needs a user's access token"],
        {"access_token": None, "refresh_token": "rel-bad-input-refresh-0001"},
    ),
    # ---- numbers
    "timeout-text": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["timeout must be a number of seconds greater than 0, got 'abc'"],
        {"timeout": "abc"},
    ),
    "timeout-zero": Case(
        lambda: scheduled("k"), CronofyConfigError, ["greater than 0, got 0"], {"timeout": 0}
    ),
    "timeout-negative": Case(
        lambda: scheduled("k"), CronofyConfigError, ["greater than 0, got -1"], {"timeout": -1}
    ),
    "timeout-nan": Case(
        lambda: scheduled("k"), CronofyConfigError, ["greater than 0, got 'nan'"], {"timeout": "nan"}
    ),
    "timeout-bool": Case(
        lambda: scheduled("k"), CronofyConfigError, ["greater than 0, got True"], {"timeout": True}
    ),
    "rate-per-second-negative": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["rate_limit_per_second must be a whole number, 0 or more, got -5"],
        {"rate_limit_per_second": -5},
    ),
    "rate-per-minute-negative-text": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["rate_limit_per_minute must be a whole number, 0 or more, got '-1'"],
        {"rate_limit_per_minute": "-1"},
    ),
    "rate-per-second-fraction": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["rate_limit_per_second must be a whole number"],
        {"rate_limit_per_second": 2.5},
    ),
    "max-retries-negative": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["max_retries must be a whole number, 0 or more, got -1"],
        {"max_retries": -1},
    ),
    "max-retries-fraction": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["max_retries must be a whole number, 0 or more, got 1.5"],
        {"max_retries": 1.5},
    ),
    "max-retries-text": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["max_retries must be a whole number, 0 or more, got 'many'"],
        {"max_retries": "many"},
    ),
    "max-retries-bool": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["max_retries must be a whole number, 0 or more, got True"],
        {"max_retries": True},
    ),
    "max-retries-infinite": Case(
        lambda: scheduled("k"),
        CronofyConfigError,
        ["max_retries must be a whole number, 0 or more, got 'inf'"],
        {"max_retries": "inf"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_before_any_request(emulator, name):
    case = CASES[name]
    connect(emulator, **case.conn)
    operator = case.make()
    with pytest.raises(case.error) as info:
        operator.execute({})
    message = str(info.value)
    for part in case.parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert "hunter2" not in message
    assert emulator.requests == []


# ---------------------------------------------------------------------- sent safely encoded

ENCODED_IDS = [
    "cal/1",
    "cal?x=1",
    "cal#frag",
    "cal_日本",
    "cal%2F1",
    "../" + DECOY,
    "cal/../../v1/meeting_agents",
    "..%2F" + DECOY,
    "cal;x=1&y",
    "...",
]


@pytest.mark.parametrize("use_batch", [False, True])
@pytest.mark.parametrize("delete_event", [False, True])
@pytest.mark.parametrize("calendar_id", ENCODED_IDS)
def test_odd_calendar_ids_are_sent_as_one_segment_to_that_calendar_only(
    emulator, calendar_id, delete_event, use_batch
):
    emulator.add_calendar(calendar_id, access_token=TOKEN)
    emulator.add_event(calendar_id, "evt_1")
    connect(emulator)
    operator = integrated(calendar_id=calendar_id, delete_event=delete_event, use_batch=use_batch)
    assert operator.execute({}) == {"cancelled": ["evt_1"]}

    (request,) = emulator.requests
    if use_batch:  # the same request, as the one entry of a batch
        assert (request.method, request.path, request.status) == ("POST", "/v1/batch", 207)
        (entry,) = request.batch_entries
        method, path, status = entry.method, entry.relative_url, entry.status
    else:
        method, path, status = request.method, request.path, request.status
    assert method == ("DELETE" if delete_event else "POST")
    assert status == 202
    segments = path.split("/")
    assert segments[:3] == ["", "v1", "calendars"] and segments[4:] == ["events"], path
    assert not any(ch in segments[3] for ch in "?#"), path
    assert urllib.parse.unquote(segments[3]) == calendar_id
    event = emulator.events[(calendar_id, "evt_1")]
    assert (event["deleted"] if delete_event else event["meeting_agent"] is None) is True
    decoy = emulator.events[(DECOY, "evt_1")]
    assert decoy["meeting_agent"] == "cronofy" and not decoy["deleted"]


def test_a_path_prefix_is_kept_by_design(emulator):
    """A proxy prefix is allowed: the request goes to {host}/prefix/v1/..., nowhere else."""
    connect(emulator, host="{url}/cronofy-proxy")
    emulator.schedule_agent("k1")
    scheduled("k1").execute({})
    (request,) = emulator.requests
    assert request.path == "/cronofy-proxy/v1/meeting_agents"

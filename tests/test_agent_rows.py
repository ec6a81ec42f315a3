"""normalise_agents: the agents= rows of ScheduleMeetingAgentOperator checked, as Cronofy's bodies."""

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_cronofy.agent_rows import normalise_agents
from airflow_provider_cronofy.exceptions import CronofyInputError

NOW = datetime(2030, 1, 1, 9, 0, 0, tzinfo=timezone.utc)


def _agent(key="k1", **fields):
    return {
        "scheduling_key": key,
        "join_url": "https://meet.example.com/abc",
        "join_time": "2030-01-01T10:00:00Z",
        **fields,
    }


def _refused(value) -> str:
    with pytest.raises(CronofyInputError) as caught:
        normalise_agents(value, now=NOW)
    message = str(caught.value)
    assert message.endswith("Nothing was sent.")
    return message


def test_a_valid_row_becomes_the_body_cronofy_receives():
    assert normalise_agents([_agent()], now=NOW) == [
        {
            "scheduling_key": "k1",
            "join_url": "https://meet.example.com/abc",
            "join_time": "2030-01-01T10:00:00Z",
        }
    ]


def test_an_empty_list_gives_an_empty_list():
    assert normalise_agents([], now=NOW) == []


def test_other_keys_of_a_warehouse_row_are_dropped_and_the_optional_fields_kept():
    attendee = {"email": "host@example.com"}
    subscriptions = [
        {
            "type": "webhook",
            "uri": "https://hooks.example.com/cronofy",
            "interactions": [{"type": "meeting_agent_complete"}],
        }
    ]
    row = _agent(
        meeting_id=42,
        status="confirmed",
        attendees="a@example.com",
        on_behalf_of_attendee=attendee,
        subscriptions=subscriptions,
    )
    (agent,) = normalise_agents([row], now=NOW)
    assert list(agent) == [
        "scheduling_key",
        "join_url",
        "join_time",
        "on_behalf_of_attendee",
        "subscriptions",
    ]
    assert agent["on_behalf_of_attendee"] == attendee and agent["subscriptions"] == subscriptions


def test_optional_fields_given_as_none_are_left_out():
    (agent,) = normalise_agents([_agent(on_behalf_of_attendee=None, subscriptions=None)], now=NOW)
    assert set(agent) == {"scheduling_key", "join_url", "join_time"}


@pytest.mark.parametrize(
    "join_time",
    [
        "2030-01-01T10:00:00Z",
        "2030-01-01T10:00:00z",
        "2030-01-01T10:00Z",
        "2030-01-01T10:00:00.999999Z",
        "2030-01-01T11:00:00+01:00",
        "2030-01-01T11:00:00+0100",
        "2030-01-01T11:00:00+01",
        "2030-01-01 05:00:00-05:00",
        "2030-01-01T10:00:00,5+00:00",
        datetime(2030, 1, 1, 10, 0, 0, tzinfo=timezone.utc),
        datetime(2030, 1, 1, 10, 0, 0, 700000, tzinfo=timezone.utc),
        datetime(2030, 1, 1, 19, 0, 0, tzinfo=timezone(timedelta(hours=9))),
    ],
)
def test_every_form_of_the_same_instant_is_sent_as_the_same_utc_string(join_time):
    (agent,) = normalise_agents([_agent(join_time=join_time)], now=NOW)
    assert agent["join_time"] == "2030-01-01T10:00:00Z"


def test_fractions_of_a_second_are_truncated_not_rounded():
    (agent,) = normalise_agents([_agent(join_time="2030-01-01T10:00:59.9Z")], now=NOW)
    assert agent["join_time"] == "2030-01-01T10:00:59Z"


@pytest.mark.parametrize(
    ("join_time", "said"),
    [
        ("2030-01-01T10:00:00", "has no zone offset"),
        (datetime(2030, 1, 1, 10), "is a naive datetime"),
        ("2030-01-01", "is not an ISO 8601 date and time"),
        ("tomorrow at ten", "is not an ISO 8601 date and time"),
        ("2030-13-01T10:00:00Z", "is not a valid time"),
        ("2030-01-01T10:00:00+25:00", "is not a valid time"),
        (1893492000, "must be an ISO 8601 string with a zone or an aware datetime, got int"),
        ("2029-12-31T23:00:00Z", "is not in the future"),
        ("2030-01-01T09:00:00Z", "is not in the future"),  # == now
        ("2030-01-01T09:00:00.5Z", "is not in the future"),  # == now once truncated
    ],
)
def test_a_bad_join_time_is_refused_naming_position_and_field(join_time, said):
    message = _refused([_agent("ok"), _agent("bad", join_time=join_time)])
    assert "1 of the 2 entries of agents are invalid" in message
    if isinstance(join_time, str):
        assert f"agents[1].join_time: {join_time!r}" in message
    else:
        assert "agents[1].join_time: " in message
    assert said in message
    assert "agents[0]" not in message


def test_the_past_is_judged_against_the_injected_now():
    later = NOW + timedelta(hours=2)
    assert normalise_agents([_agent()], now=NOW)  # 10:00 is after 09:00
    message = _refused_at([_agent()], later)
    assert "agents[0].join_time: '2030-01-01T10:00:00Z' is not in the future" in message
    assert "now is 2030-01-01T11:00:00Z" in message


def _refused_at(value, now) -> str:
    with pytest.raises(CronofyInputError) as caught:
        normalise_agents(value, now=now)
    return str(caught.value)


@pytest.mark.parametrize("now", [datetime(2030, 1, 1), "2030-01-01T00:00:00Z", None])
def test_now_must_be_an_aware_datetime(now):
    with pytest.raises(CronofyInputError, match="now must be an aware datetime"):
        normalise_agents([_agent()], now=now)


@pytest.mark.parametrize(
    ("join_url", "said"),
    [
        ("http://meet.example.com/abc", "is not an https:// URL (scheme 'http')"),
        ("meet.example.com/abc", "is not an https:// URL"),
        ("https:///abc", "has no host"),
        ("https://", "has no host"),
        ("https://meet.example.com:port/abc", "is not a URL"),
        ("https://meet.example.com/a b", "holds white space or control characters"),
        (" https://meet.example.com/abc", "has leading or trailing white space"),
        (None, "must be an https:// URL (a string), got NoneType"),
    ],
)
def test_a_join_url_that_is_not_an_https_url_with_a_host_is_refused_naming_it(join_url, said):
    message = _refused([_agent(join_url=join_url)])
    assert "agents[0].join_url: " in message
    assert said in message
    if isinstance(join_url, str):
        assert repr(join_url) in message


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("", "must be a non-blank string"),
        ("   ", "must be a non-blank string"),
        (17, "must be a string, got int"),
        (None, "must be a string, got NoneType"),
        ("deal-1   ", "has leading or trailing white space"),
    ],
)
def test_a_bad_scheduling_key_is_refused_naming_position_and_field(key, said):
    message = _refused([_agent("fine"), _agent("fine-2"), _agent(key)])
    assert "agents[2].scheduling_key: scheduling_key" in message and said in message
    assert message.count("Nothing was sent.") == 1


def test_white_space_inside_a_scheduling_key_is_kept():
    (agent,) = normalise_agents([_agent("deal 1")], now=NOW)
    assert agent["scheduling_key"] == "deal 1"


def test_missing_fields_are_each_named_with_the_keys_the_entry_has():
    message = _refused([{"scheduling_key": "k1", "meeting_id": 7}])
    assert "agents[0].join_url: missing (the entry's keys: scheduling_key, meeting_id)." in message
    assert "agents[0].join_time: missing" in message
    assert "1 of the 1 entry of agents are invalid" in message


@pytest.mark.parametrize("entry", ["k1", ["k1", "https://meet.example.com/abc"], None])
def test_an_entry_that_is_not_a_dict_is_refused_naming_its_position(entry):
    message = _refused([_agent(), entry])
    assert (
        f"agents[1]: must be a dict with scheduling_key, join_url and join_time, got {type(entry).__name__}"
        in message
    )


@pytest.mark.parametrize(
    ("attendee", "said"),
    [
        ("host@example.com", 'must be a dict {"email": ...}, got str'),
        ({}, 'must hold an "email" address'),
        ({"email": "host.example.com"}, "'host.example.com'"),
        ({"email": "@"}, "'@'"),
        ({"email": " host@example.com"}, "' host@example.com'"),
        ({"email": 7}, "got 7"),
    ],
)
def test_a_bad_on_behalf_of_attendee_is_refused(attendee, said):
    message = _refused([_agent(on_behalf_of_attendee=attendee)])
    assert "agents[0].on_behalf_of_attendee: " in message and said in message


@pytest.mark.parametrize(
    ("subscriptions", "said"),
    [
        ({"type": "webhook", "uri": "https://h.example.com"}, "must be a list of"),
        ("webhook", "must be a list of"),
        (["webhook"], "[0] must be a dict with type and uri, got str"),
        ([{"type": "webhook"}], "[0].uri must be a non-blank string, got None"),
        (
            [{"type": "webhook", "uri": "https://h.example.com"}, {"uri": "https://h.example.com"}],
            "[1].type must be",
        ),
        (
            [{"type": "webhook", "uri": "https://h.example.com", "since": datetime(2030, 1, 1)}],
            "is not JSON-serialisable",
        ),
    ],
)
def test_bad_subscriptions_are_refused(subscriptions, said):
    message = _refused([_agent(subscriptions=subscriptions)])
    assert "agents[0].subscriptions: " in message and said in message


def test_the_same_key_twice_for_the_same_meeting_is_sent_once():
    rows = [
        _agent("k1", meeting_id=1),
        _agent("k2"),
        _agent("k1", join_time="2030-01-01T11:00:00+01:00", meeting_id=1, status="seen again"),
    ]
    assert [agent["scheduling_key"] for agent in normalise_agents(rows, now=NOW)] == ["k1", "k2"]


@pytest.mark.parametrize(
    ("change", "differ"),
    [
        ({"join_time": "2030-01-02T10:00:00Z"}, "(join_time differs)"),
        ({"join_url": "https://meet.example.com/other"}, "join_url differ"),
        ({"on_behalf_of_attendee": {"email": "a@example.com"}}, "on_behalf_of_attendee differ"),
        (
            {"join_url": "https://meet.example.com/other", "join_time": "2030-01-02T10:00:00Z"},
            "join_url and join_time differ",
        ),
    ],
)
def test_the_same_key_for_two_different_meetings_is_refused_naming_both_positions(change, differ):
    message = _refused([_agent("k1"), _agent("k2"), _agent("k1", **change)])
    assert "agents[2].scheduling_key: 'k1' is also the key of agents[0], for another meeting" in message
    assert differ in message
    assert "1 of the 3 entries of agents are invalid" in message


def test_every_bad_entry_is_named_but_at_most_ten_problems_are_shown():
    rows = [_agent(f"k{i}", join_url=f"http://meet.example.com/{i}") for i in range(13)]
    message = _refused(rows)
    assert "13 of the 13 entries of agents are invalid" in message
    assert "agents[9].join_url" in message and "agents[10].join_url" not in message
    assert "... and 3 more." in message


def test_several_bad_fields_of_one_entry_are_each_named():
    message = _refused([{"scheduling_key": "", "join_url": "ftp://x", "join_time": "soon"}])
    for field in ("scheduling_key", "join_url", "join_time"):
        assert f"agents[0].{field}: " in message
    assert "1 of the 1 entry of agents are invalid" in message


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("[{'scheduling_key': 'k1'}]", "render_template_as_native_obj=True"),
        ({"scheduling_key": "k1"}, "One agent goes in a one-item list"),
        (None, "got NoneType"),
        (b"k1", "got bytes"),
        ({"k1"}, "got set"),
    ],
)
def test_a_value_that_is_not_a_list_is_refused_with_a_hint(value, hint):
    message = _refused(value)
    assert message.startswith(
        'agents must be a list of {"scheduling_key": ..., "join_url": ..., "join_time": ...} dicts'
    )
    assert hint in message


def test_a_tuple_of_rows_is_accepted():
    assert len(normalise_agents((_agent("a"), _agent("b")), now=NOW)) == 2

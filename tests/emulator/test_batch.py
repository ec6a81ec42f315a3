"""``POST /v1/batch``: up to 50 event upserts and deletes in one request, answered 207."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_cronofy.testing import CronofyEmulator, RecordedBatchEntry
from tests.emulator._support import (
    OTHER_TOKEN,
    TIMEOUT,
    TOKEN,
    api_key,
    batch,
    bearer,
    entry,
    error_keys,
    remove_agent,
    set_up_accounts,
    statuses,
    upsert,
)

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_each_entry_is_handled_as_it_would_be_on_its_own_in_order(emu, session):
    emu.add_event("cal_1", "evt_1")
    emu.add_event("cal_1", "evt_2")
    entries = [
        remove_agent("evt_1"),
        entry("DELETE", "evt_2"),
        entry("POST", "evt_new"),  # a new event needs summary, start and end
        remove_agent("evt_x", calendar="cal_bob"),  # Bob's calendar
        remove_agent("evt_x", calendar="cal_unknown"),
        {"method": "DELETE", "relative_url": "/v1/meeting_agents", "data": {"scheduling_key": "k"}},
    ]
    response = batch(session, emu, entries)
    assert response.status_code == 207
    assert statuses(response) == [202, 202, 422, 404, 404, 422]
    answers = response.json()["batch"]
    assert "data" not in answers[0]
    assert set(answers[2]["data"]["errors"]) == {"summary", "start", "end"}
    assert answers[3]["data"]["errors"]["calendar_id"][0]["key"] == "errors.not_found"
    assert answers[5]["data"]["errors"]["relative_url"][0]["key"] == "errors.not_batchable"

    assert emu.events[("cal_1", "evt_1")]["meeting_agent"] is None
    assert emu.events[("cal_1", "evt_2")]["deleted"] is True
    assert emu.event_writes == {("cal_1", "evt_1"): 1, ("cal_1", "evt_2"): 1}
    (record,) = emu.requests
    assert (record.method, record.path, record.status) == ("POST", "/v1/batch", 207)
    assert record.batch_entries[0] == RecordedBatchEntry(
        "POST",
        "/v1/calendars/cal_1/events",
        {"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}},
        202,
    )
    assert [e.status for e in record.batch_entries] == [202, 202, 422, 404, 404, 422]


def test_entries_use_the_batch_token_scope_and_percent_encoded_calendars(emu, session):
    emu.add_access_token("tok_read_only", scopes=("read_events",), account_id="acc_alice")
    emu.add_calendar("cal/x", access_token=TOKEN)
    emu.add_event("cal/x", "evt_1")
    response = batch(session, emu, [remove_agent("evt_1", calendar="cal%2Fx")], token="tok_read_only")
    assert statuses(response) == [403]
    assert emu.events[("cal/x", "evt_1")]["meeting_agent"] == "cronofy"
    response = batch(session, emu, [remove_agent("evt_1", calendar="cal%2Fx")])
    assert statuses(response) == [202]
    assert emu.events[("cal/x", "evt_1")]["meeting_agent"] is None


def test_event_writes_count_direct_and_batched_changes(emu, session):
    emu.add_event("cal_1", "evt_1")
    upsert(session, emu, {"event_id": "evt_1", "summary": "Renamed"})
    batch(session, emu, [remove_agent("evt_1"), entry("POST", "evt_1", summary="Again")])
    assert emu.event_writes == {("cal_1", "evt_1"): 3}


@pytest.mark.parametrize(
    ("body", "field", "key"),
    [
        ({}, "batch", "errors.required"),
        ({"batch": "all"}, "batch", "errors.invalid"),
        ({"batch": []}, "batch", "errors.invalid"),
        ({"batch": [entry("DELETE", f"evt_{n}") for n in range(51)]}, "batch", "errors.invalid"),
        ({"batch": [entry("DELETE", "evt_1"), "DELETE"]}, "batch.1", "errors.invalid"),
        ({"batch": [{"relative_url": "/v1/calendars/cal_1/events"}]}, "batch.0.method", "errors.required"),
        ({"batch": [{"method": "DELETE", "relative_url": 7}]}, "batch.0.relative_url", "errors.invalid"),
        (
            {"batch": [{"method": "DELETE", "relative_url": "/v1/x", "data": [1]}]},
            "batch.0.data",
            "errors.invalid",
        ),
    ],
)
def test_malformed_batches_are_422_and_change_nothing(emu, session, body, field, key):
    emu.add_event("cal_1", "evt_1")
    response = session.post(f"{emu.url}/v1/batch", json=body, headers=bearer(TOKEN), timeout=TIMEOUT)
    assert response.status_code == 422
    assert error_keys(response)[field] == key
    assert emu.events[("cal_1", "evt_1")]["deleted"] is False
    assert emu.event_writes == {}


def test_fifty_entries_is_the_limit(emu, session):
    response = batch(session, emu, [entry("DELETE", f"evt_{n}") for n in range(50)])
    assert response.status_code == 207
    assert statuses(response) == [202] * 50
    too_many = batch(session, emu, [entry("DELETE", f"evt_{n}") for n in range(51)])
    assert too_many.status_code == 422
    assert "got 51" in too_many.json()["errors"]["batch"][0]["description"]


@pytest.mark.parametrize("headers", [{}, bearer("tok_nobody"), "api_key", "expired"])
def test_the_batch_needs_a_valid_access_token(emu, session, headers):
    emu.add_event("cal_1", "evt_1")
    if headers == "api_key":
        headers = api_key(emu)
    elif headers == "expired":
        emu.expire_access_token(OTHER_TOKEN)
        headers = bearer(OTHER_TOKEN)
    response = session.post(
        f"{emu.url}/v1/batch", json={"batch": [remove_agent("evt_1")]}, headers=headers, timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert emu.event_writes == {}


def test_whole_batch_faults_leave_every_entry_unhandled(emu, session):
    emu.add_event("cal_1", "evt_1")
    emu.fail_next(1, 503, path="/v1/batch")
    assert batch(session, emu, [remove_agent("evt_1")]).status_code == 503
    emu.drop_next(1, path="/v1/batch")
    with pytest.raises(requests.ConnectionError):
        batch(session, emu, [remove_agent("evt_1")])
    assert emu.event_writes == {}
    assert batch(session, emu, [remove_agent("evt_1")]).status_code == 207
    assert emu.event_writes == {("cal_1", "evt_1"): 1}


def test_scripted_entry_faults_then_a_resend_changes_each_event_once(emu, session):
    for n in range(3):
        emu.add_event("cal_1", f"evt_{n}")
    emu.fail_next_batch_entries(2, 429)
    response = batch(session, emu, [remove_agent(f"evt_{n}") for n in range(3)])
    assert response.status_code == 207
    assert statuses(response) == [429, 429, 202]
    assert response.json()["batch"][0]["data"]["errors"]["base"][0]["key"] == "errors.too_many_requests"
    assert emu.event_writes == {("cal_1", "evt_2"): 1}
    assert emu.events[("cal_1", "evt_0")]["meeting_agent"] == "cronofy"
    # The client re-sends the failed entries in a later batch.
    assert statuses(batch(session, emu, [remove_agent("evt_0"), remove_agent("evt_1")])) == [202, 202]
    assert emu.event_writes == {("cal_1", f"evt_{n}"): 1 for n in range(3)}
    assert emu.fault_counts["entry_429"] == 2
    assert emu.status_counts == {207: 2}


def test_fail_next_batch_entries_validates_and_clears(emu, session):
    with pytest.raises(ValueError, match="got 202"):
        emu.fail_next_batch_entries(1, 202)
    with pytest.raises(ValueError, match="count"):
        emu.fail_next_batch_entries(-1)
    emu.fail_next_batch_entries(5, 503)
    emu.clear_faults()
    assert statuses(batch(session, emu, [entry("DELETE", "evt_1")])) == [202]


def _random_entry_statuses(seed: int) -> list[int]:
    with CronofyEmulator() as emulator, requests.Session() as session:
        set_up_accounts(emulator)
        emulator.set_random_faults(seed=seed, p_entry_503=0.3, p_entry_429=0.3)
        response = batch(session, emulator, [entry("DELETE", f"evt_{n}") for n in range(40)])
        assert response.status_code == 207
        found = statuses(response)
        counts = emulator.fault_counts
        assert counts.get("entry_503", 0) == found.count(503)
        assert counts.get("entry_429", 0) == found.count(429)
        return found


def test_random_entry_faults_are_deterministic_for_a_seed():
    first = _random_entry_statuses(7)
    assert first == _random_entry_statuses(7)
    assert {202, 429, 503} <= set(first)
    assert first != _random_entry_statuses(8)


def test_random_entry_faults_leave_request_level_faults_alone(emu, session):
    # Entry faults only: every request gets through, only entries fail.
    emu.set_random_faults(seed=1, p_entry_503=1.0)
    assert statuses(batch(session, emu, [entry("DELETE", "evt_1")])) == [503]
    assert (
        upsert(session, emu, {"event_id": "evt_1", "summary": "s", "start": "a", "end": "b"}).status_code
        == 202
    )


@pytest.mark.parametrize(("name", "value"), [("p_entry_503", 1.5), ("p_entry_429", -0.1)])
def test_random_entry_fault_probabilities_are_checked(emu, name, value):
    with pytest.raises(ValueError, match=name):
        emu.set_random_faults(seed=1, **{name: value})
    with pytest.raises(ValueError, match="p_entry_503 \\+ p_entry_429"):
        emu.set_random_faults(seed=1, p_entry_503=0.6, p_entry_429=0.6)


def test_a_batch_counts_as_one_request_by_default(cronofy_emulator_factory, session):
    emu = set_up_accounts(cronofy_emulator_factory(rate_limit_per_second=None, rate_limit_per_minute=3))
    ten = [entry("DELETE", f"evt_{n}") for n in range(10)]
    assert [batch(session, emu, ten).status_code for _ in range(4)] == [207, 207, 207, 429]
    assert emu.fault_counts["rate_limited"] == 1


def test_a_batch_counts_once_per_entry_with_batch_rate_cost_entries(cronofy_emulator_factory, session):
    emu = set_up_accounts(
        cronofy_emulator_factory(
            rate_limit_per_second=None, rate_limit_per_minute=25, batch_rate_cost="entries"
        )
    )
    ten = [entry("DELETE", f"evt_{n}") for n in range(10)]
    five = ten[:5]
    codes = [batch(session, emu, entries).status_code for entries in (ten, ten, ten, five, [ten[0]])]
    # 10 + 10 fit, 10 more would make 30 > 25: the whole batch is refused; 5 more make 25.
    assert codes == [207, 207, 429, 207, 429]
    assert emu.event_writes == {("cal_1", f"evt_{n}"): 3 if n < 5 else 2 for n in range(10)}
    assert emu.status_counts[429] == 2


def test_batch_rate_cost_is_checked_and_settable(emu):
    with pytest.raises(ValueError, match="batch_rate_cost must be one of 'request', 'entries', got 'entry'"):
        CronofyEmulator(batch_rate_cost="entry")
    emu.batch_rate_cost = "entries"
    assert emu.batch_rate_cost == "entries"
    with pytest.raises(ValueError, match="batch_rate_cost"):
        emu.batch_rate_cost = "batch"

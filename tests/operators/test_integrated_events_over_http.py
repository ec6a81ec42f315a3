"""``events`` over real HTTP against the emulator: several accounts, several calendars each.

Each account has its own connection (its own access token); one operator per account cancels
that account's events across its calendars in mixed batches. A calendar of another account is
unknown to a token (404): it costs only its own events.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_cronofy.exceptions import CronofyBulkError, CronofyFatalBulkError
from airflow_provider_cronofy.operators.meeting_agents import CancelIntegratedMeetingAgentOperator
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import FakeTI

TOKENS = {"acme": "acme-access-token-4e1f", "globex": "globex-access-token-9b27"}
CALENDARS = {"acme": ["cal_acme_1", "cal_acme_2", "cal_acme_3"], "globex": ["cal_globex_1"]}


def ev(calendar_id, event_id):
    return {"calendar_id": calendar_id, "event_id": event_id}


@pytest.fixture
def cronofy(monkeypatch):
    with CronofyEmulator() as emulator:
        for account, token in TOKENS.items():
            emulator.add_access_token(token, account_id=f"acc_{account}")
            for calendar in CALENDARS[account]:
                emulator.add_calendar(calendar, access_token=token)
                for n in range(30):
                    emulator.add_event(calendar, f"{calendar}-evt-{n:02d}")
            monkeypatch.setenv(
                f"AIRFLOW_CONN_CRONOFY_{account.upper()}",
                emulator.airflow_connection_json(
                    access_token=token, rate_limit_per_second=0, rate_limit_per_minute=0, max_retries=0
                ),
            )
        yield emulator


def events_of(account, per_calendar=30):
    return [
        ev(calendar, f"{calendar}-evt-{n:02d}")
        for n in range(per_calendar)
        for calendar in CALENDARS[account]
    ]


def batches(emulator):
    return [r for r in emulator.requests if r.path == "/v1/batch"]


@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_one_task_cancels_an_accounts_events_across_calendars_in_mixed_batches(cronofy, max_concurrency):
    events = events_of("acme")  # 90 events, the 3 calendars interleaved
    op = CancelIntegratedMeetingAgentOperator(
        task_id="cancel", cronofy_conn_id="cronofy_acme", events=events, max_concurrency=max_concurrency
    )
    assert op.execute({}) == {"cancelled": events}
    sent = batches(cronofy)
    assert sorted(len(r.json["batch"]) for r in sent) == [40, 50]  # type: ignore[index]
    assert all(len({e["relative_url"] for e in r.json["batch"]}) == 3 for r in sent)  # type: ignore[index]
    for event in events:
        assert cronofy.events[(event["calendar_id"], event["event_id"])]["meeting_agent"] is None
    # The other account's events are untouched.
    assert all(
        cronofy.events[("cal_globex_1", f"cal_globex_1-evt-{n:02d}")]["meeting_agent"] for n in range(30)
    )


def test_two_accounts_one_with_a_calendar_it_cannot_see(cronofy):
    acme = events_of("acme", per_calendar=2)
    # cal_globex_1 belongs to the other account: acme's token gets 404 for it.
    foreign = [ev("cal_globex_1", "cal_globex_1-evt-00"), ev("cal_globex_1", "cal_globex_1-evt-01")]
    mixed = [acme[0], foreign[0], *acme[1:], foreign[1]]
    ti = FakeTI()
    with pytest.raises(CronofyBulkError) as info:
        CancelIntegratedMeetingAgentOperator(
            task_id="acme", cronofy_conn_id="cronofy_acme", events=mixed, max_concurrency=1
        ).execute({"ti": ti})
    error = info.value
    assert not isinstance(error, CronofyFatalBulkError)
    assert error.results == {"cancelled": acme}
    assert [(f.item, f.status_code) for f in error.failures] == [(e, 404) for e in foreign]
    assert str(error).count("calendar 'cal_globex_1'") == 1
    assert [f["calendar_id"] for f in ti.pushed["failures"]] == ["cal_globex_1", "cal_globex_1"]
    assert all(cronofy.events[(e["calendar_id"], e["event_id"])]["meeting_agent"] is None for e in acme)
    assert all(
        cronofy.events[(e["calendar_id"], e["event_id"])]["meeting_agent"] == "cronofy" for e in foreign
    )

    # The other account's own task cancels them with its own connection.
    globex = CancelIntegratedMeetingAgentOperator(
        task_id="globex", cronofy_conn_id="cronofy_globex", events=foreign, delete_event=True
    )
    assert globex.execute({}) == {"cancelled": foreign}
    assert all(cronofy.events[(e["calendar_id"], e["event_id"])]["deleted"] for e in foreign)
    tokens = {r.headers.get("authorization") for r in batches(cronofy)}
    assert tokens == {f"Bearer {t}" for t in TOKENS.values()}


def test_not_yet_sent_events_of_an_unknown_calendar_are_never_sent(cronofy):
    unknown = [ev("cal_nowhere", f"n{i:02d}") for i in range(70)]
    known = events_of("acme", per_calendar=1)
    with pytest.raises(CronofyBulkError) as info:
        CancelIntegratedMeetingAgentOperator(
            task_id="acme", cronofy_conn_id="cronofy_acme", events=unknown + known, max_concurrency=1
        ).execute({})
    sent = [e for r in batches(cronofy) for e in r.json["batch"]]  # type: ignore[index]
    nowhere = [e for e in sent if "cal_nowhere" in e["relative_url"]]
    assert len(nowhere) == 50  # the first batch; the other 20 were not sent
    assert info.value.results == {"cancelled": known}
    unsent = [f for f in info.value.failures if f.status_code is None]
    assert [f.item for f in unsent] == unknown[50:]
    assert "Its 70 events failed (20 not sent)" in str(info.value)


def test_a_calendar_of_each_account_per_event_without_batch(cronofy):
    events = [*events_of("acme", per_calendar=1), ev("cal_globex_1", "cal_globex_1-evt-05")]
    with pytest.raises(CronofyBulkError) as info:
        CancelIntegratedMeetingAgentOperator(
            task_id="acme", cronofy_conn_id="cronofy_acme", events=events, use_batch=False
        ).execute({})
    assert [f.item for f in info.value.failures] == [events[-1]]
    paths = sorted(r.path for r in cronofy.requests)
    assert paths == sorted(f"/v1/calendars/{e['calendar_id']}/events" for e in events)


def test_a_revoked_token_stops_the_run_and_no_token_leaks(cronofy, monkeypatch):
    cronofy.expire_access_token(TOKENS["acme"])
    ti = FakeTI()
    with pytest.raises(CronofyFatalBulkError) as info:
        CancelIntegratedMeetingAgentOperator(
            task_id="acme", cronofy_conn_id="cronofy_acme", events=events_of("acme"), max_concurrency=1
        ).execute({"ti": ti})
    assert len(batches(cronofy)) == 1
    assert len(info.value.not_attempted) == 40
    for text in (str(info.value), json.dumps(ti.pushed)):
        assert all(token not in text for token in TOKENS.values())


def test_with_batches_in_flight_an_unknown_calendar_costs_at_most_one_batch_per_worker(cronofy):
    """Only batches already on the wire when the first 404 came back carry the unknown calendar."""
    cronofy.latency = 0.05  # batches overlap
    unknown = [ev("cal_nowhere", f"n{i:03d}") for i in range(400)]
    known = events_of("acme", per_calendar=10)
    with pytest.raises(CronofyBulkError) as info:
        CancelIntegratedMeetingAgentOperator(
            task_id="acme", cronofy_conn_id="cronofy_acme", events=unknown + known, max_concurrency=2
        ).execute({})
    sent = [e for r in batches(cronofy) for e in r.json["batch"]]  # type: ignore[index]
    assert 50 <= sum(1 for e in sent if "cal_nowhere" in e["relative_url"]) <= 2 * 50
    assert [f.item for f in info.value.failures] == unknown  # every one listed, none lost
    assert info.value.results == {"cancelled": known}
    assert sum(1 for e in sent if "cal_nowhere" not in e["relative_url"]) == len(known)  # each once

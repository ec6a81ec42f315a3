"""--verbose's addition to the access log (emulator/request_log.py): ids only, never a credential."""

from __future__ import annotations

from airflow_provider_cronofy.testing.emulator.request_log import carried_ids
from tests.emulator._support import TOKEN, batch, entry, remove_agent, statuses

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_the_id_a_request_carried():
    assert carried_ids({"scheduling_key": "deal-1"}) == " scheduling_key='deal-1'"
    assert carried_ids({"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}}) == " event_id='evt_1'"


def test_a_batch_names_its_first_entries_as_calendar_colon_event():
    body = {"batch": [remove_agent(f"evt_{number}") for number in range(7)]}
    assert carried_ids(body) == (
        " batch of 7: calendar:event 'cal_1:evt_0', 'cal_1:evt_1', 'cal_1:evt_2', 'cal_1:evt_3', "
        "'cal_1:evt_4' and 2 more"
    )
    assert carried_ids({"batch": [entry("DELETE", "evt_9")]}) == " batch of 1: calendar:event 'cal_1:evt_9'"
    assert carried_ids({"batch": [{"method": "GET"}]}) == " batch of 1"


def test_a_batch_across_calendars_names_each_entrys_calendar():
    body = {
        "batch": [
            remove_agent("evt_1", "cal_team"),
            remove_agent("evt_1", "cal_sales"),
            entry("DELETE", "evt:2", "cal_team"),
        ]
    }
    assert carried_ids(body) == (
        " batch of 3: calendar:event 'cal_team:evt_1', 'cal_sales:evt_1', 'cal_team:evt:2'"
    )


def test_a_calendar_is_read_from_the_path_only():
    # Percent-encoding is decoded as the emulator routes it; a query string is never shown.
    encoded = {**remove_agent("evt_1"), "relative_url": "/v1/calendars/cal%2Fx/events?secret=s3"}
    assert carried_ids({"batch": [encoded]}) == " batch of 1: calendar:event 'cal/x:evt_1'"
    # An entry that names no calendar's events (the emulator answers it 422) shows '?'.
    for relative_url in ("/v1/userinfo", None, 7):
        odd = {**remove_agent("evt_1"), "relative_url": relative_url}
        assert carried_ids({"batch": [odd]}) == " batch of 1: calendar:event '?:evt_1'"


def test_nothing_else_of_a_body_is_shown():
    token_request = {
        "client_id": "cid",
        "client_secret": "secret-1",
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
    }
    assert carried_ids(token_request) == ""
    assert carried_ids(None) == ""
    assert carried_ids(["scheduling_key"]) == ""


def test_the_verbose_log_follows_a_batch_across_calendars(emu, session, capfd):
    emu.add_calendar("cal_2", access_token=TOKEN)
    for calendar, event in (("cal_1", "evt_a"), ("cal_2", "evt_b")):
        emu.add_event(calendar, event)
    emu.verbose = True
    answer = batch(session, emu, [remove_agent("evt_a", "cal_1"), remove_agent("evt_b", "cal_2")])
    assert statuses(answer) == [202, 202]
    log = capfd.readouterr().err
    assert "\"POST /v1/batch HTTP/1.1\" 207 - batch of 2: calendar:event 'cal_1:evt_a', 'cal_2:evt_b'" in log
    assert TOKEN not in log

"""--verbose's addition to the access log (emulator/request_log.py): ids only, never a credential."""

from __future__ import annotations

from airflow_provider_cronofy.testing.emulator.request_log import carried_ids
from tests.emulator._support import entry, remove_agent


def test_the_id_a_request_carried():
    assert carried_ids({"scheduling_key": "deal-1"}) == " scheduling_key='deal-1'"
    assert carried_ids({"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}}) == " event_id='evt_1'"


def test_a_batch_names_its_first_event_ids():
    body = {"batch": [remove_agent(f"evt_{number}") for number in range(7)]}
    assert carried_ids(body) == " batch of 7: event_id 'evt_0', 'evt_1', 'evt_2', 'evt_3', 'evt_4' and 2 more"
    assert carried_ids({"batch": [entry("DELETE", "evt_9")]}) == " batch of 1: event_id 'evt_9'"
    assert carried_ids({"batch": [{"method": "GET"}]}) == " batch of 1"


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

"""``partial_event_updates``: the emulator can play a Cronofy that wants summary/start/end on every
upsert (which one Cronofy is, is unconfirmed; ``make test-live`` finds out)."""

from __future__ import annotations

from tests.emulator._support import batch, error_keys, remove_agent, statuses, upsert

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]

FULL = {"summary": "Standup", "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T10:30:00Z"}


def test_partial_updates_are_accepted_by_default(emu, session):
    assert emu.partial_event_updates is True
    emu.add_event("cal_1", "evt_1")
    assert (
        upsert(session, emu, {"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}}).status_code
        == 202
    )


def test_off_a_partial_update_is_refused_alone_and_in_a_batch(emu, session):
    emu.partial_event_updates = False
    emu.add_event("cal_1", "evt_1")
    alone = upsert(session, emu, {"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}})
    assert alone.status_code == 422
    assert error_keys(alone) == {name: "errors.required" for name in ("summary", "start", "end")}
    assert statuses(batch(session, emu, [remove_agent("evt_1")])) == [422]
    assert emu.events[("cal_1", "evt_1")]["meeting_agent"] == "cronofy"

    full = upsert(session, emu, {"event_id": "evt_1", **FULL, "meeting_agent": {"profile_id": "none"}})
    assert full.status_code == 202
    assert emu.events[("cal_1", "evt_1")]["meeting_agent"] is None

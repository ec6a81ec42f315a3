"""The bulk error's message (operators/failure_report.py): one explanation per cause, every item
kept in the error's ``failures`` and the ``failures`` XCom."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cronofy.exceptions import CronofyBulkError, CronofyFatalBulkError, ItemFailure
from airflow_provider_cronofy.operators.failure_report import (
    ITEMS_SHOWN_PER_CAUSE,
    failure_message,
    format_item,
)
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from tests.conftest import API_KEY, FakeTI

AGENTS = "https://api.cronofy.com/v1/meeting_agents"
REJECTED = "Cronofy rejected the API key (401 Unauthorized) at https://api.cronofy.com. Check ..."


def test_items_failing_for_one_reason_share_one_explanation():
    failures = [ItemFailure("k1", 401, REJECTED), ItemFailure("k2", 401, REJECTED)]
    message = failure_message(
        failures, total=40, noun="scheduling key", summary="0 cancelled", not_attempted=38, fatal=True
    )
    assert message == (
        "2 of 40 scheduling keys failed (0 cancelled):\n"
        f"  - 2 failed: 401: {REJECTED}\n"
        "    'k1', 'k2'\n"
        "The run stopped at an error every other item would meet too: 38 items were not attempted."
    )
    assert message.count("Cronofy rejected the API key") == 1


def test_a_cause_of_one_item_reads_as_before_and_causes_keep_input_order():
    failures = [
        ItemFailure("a", 503, "Cronofy answered 503 Service Unavailable; gave up after 6 attempt(s)."),
        ItemFailure("b", 422, "Cronofy rejected the request (422 Unprocessable Entity): b"),
        ItemFailure("c", 503, "Cronofy answered 503 Service Unavailable; gave up after 6 attempt(s)."),
        ItemFailure(
            "d", None, "DELETE /v1/meeting_agents for 'd' failed after 6 attempt(s): no answer in time"
        ),
        ItemFailure(
            "e", None, "DELETE /v1/meeting_agents for 'e' failed after 6 attempt(s): no answer in time"
        ),
    ]
    lines = failure_message(failures, total=9, noun="scheduling key", summary="4 cancelled").splitlines()
    assert lines == [
        "5 of 9 scheduling keys failed (4 cancelled):",
        "  - 2 failed: 503: Cronofy answered 503 Service Unavailable; gave up after 6 attempt(s).",
        "    'a', 'c'",
        "  - 'b': 422: Cronofy rejected the request (422 Unprocessable Entity): b",
        # The request's own item is dropped from a shared cause, so that it reads for all of them.
        "  - 2 failed: DELETE /v1/meeting_agents failed after 6 attempt(s): no answer in time",
        "    'd', 'e'",
    ]


def test_one_item_and_one_not_attempted_agree_in_number():
    message = failure_message(
        [ItemFailure("k1", 401, REJECTED)],
        total=2,
        noun="scheduling key",
        summary="0 cancelled",
        not_attempted=1,
        fatal=True,
    )
    assert message.splitlines()[0] == "1 of 2 scheduling keys failed (0 cancelled):"
    assert message.endswith("1 item was not attempted.")
    single = failure_message([ItemFailure("k1", 422, "x")], total=1, noun="scheduling key", summary="")
    assert single.startswith("1 of 1 scheduling key failed")


def test_a_stop_after_every_item_was_sent_says_so():
    failures = [ItemFailure(f"e{number}", None, "TLS handshake failed.") for number in range(3)]
    message = failure_message(failures, total=3, noun="event", summary="0 cancelled", fatal=True)
    assert message.endswith("every other item would meet too: every item had been sent.")


def test_a_fatal_error_of_a_run_of_one_item_does_not_speak_of_other_items():
    message = failure_message(
        [ItemFailure("evt_1", None, "Connection refused by 127.0.0.1:8765")],
        total=1,
        noun="event",
        summary="0 cancelled",
        fatal=True,
    )
    assert message == "1 of 1 event failed (0 cancelled):\n  - 'evt_1': Connection refused by 127.0.0.1:8765"


def test_a_long_cause_lists_its_first_items_and_counts_the_rest():
    failures = [ItemFailure(f"k{number}", 401, REJECTED) for number in range(25)]
    message = failure_message(failures, total=25, noun="scheduling key", summary="0 cancelled")
    listed = message.splitlines()[2]
    assert listed.startswith("    'k0', 'k1',")
    assert f"'k{ITEMS_SHOWN_PER_CAUSE - 1}' and {25 - ITEMS_SHOWN_PER_CAUSE} more" in listed
    assert f"'k{ITEMS_SHOWN_PER_CAUSE}'" not in listed


def test_plural_nouns_of_their_own():
    message = failure_message(
        [ItemFailure("e1", 403, "no scope")],
        total=3,
        noun="event of calendar 'cal_1'",
        nouns="events of calendar 'cal_1'",
        summary="2 cancelled",
    )
    assert message.startswith("1 of 3 events of calendar 'cal_1' failed (2 cancelled):")


@pytest.mark.parametrize(
    ("item", "shown"),
    [("k1", "'k1'"), ("it's", '"it\'s"'), (("cal_1", "evt_1"), "'evt_1' in 'cal_1'"), (7, "7")],
)
def test_items_are_formatted_without_assuming_strings(item, shown):
    assert format_item(item) == shown


def test_tuple_items_group_and_read_well():
    failures = [
        ItemFailure(("cal_1", "e1"), 404, "calendar gone"),
        ItemFailure(("cal_1", "e2"), 404, "calendar gone"),
    ]
    message = failure_message(failures, total=2, noun="event", summary="0 cancelled")
    assert "  - 2 failed: 404: calendar gone\n    'e1' in 'cal_1', 'e2' in 'cal_1'" in message


# ---------------------------------------------------------------- through the operator


def test_a_wrong_api_key_over_many_keys_is_explained_once(set_connection, requests_mock):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=401)
    keys = [f"deal-{number}" for number in range(40)]
    ti = FakeTI()
    with pytest.raises(CronofyFatalBulkError) as info:
        CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=keys, max_concurrency=20
        ).execute({"ti": ti})
    error = info.value
    message = str(error)
    assert message.count("Cronofy rejected the API key") == 1
    sent = [json.loads(r.body)["scheduling_key"] for r in requests_mock.request_history]
    failed = [failure.item for failure in error.failures]
    assert failed == [key for key in keys if key in sent]  # every sent key kept, in input order
    assert error.not_attempted == [key for key in keys if key not in sent]
    assert f"{len(failed)} of 40 scheduling keys failed" in message
    assert (
        (f"  - {len(failed)} failed: 401: " in message) if len(failed) > 1 else ("'deal-0': 401" in message)
    )
    assert f"{len(error.not_attempted)} items were not attempted" in message or len(error.not_attempted) == 1
    assert [entry["item"] for entry in ti.pushed["failures"]] == failed
    assert all(entry["status_code"] == 401 for entry in ti.pushed["failures"])
    assert API_KEY not in message


def test_mixed_failures_keep_every_item_in_failures(set_connection, requests_mock, no_sleep, tiny_backoff):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0, max_retries=0)
    statuses = {"k1": 422, "k3": 503, "k4": 503, "k6": 503}

    def answer(request, context):
        context.status_code = statuses.get(json.loads(request.body)["scheduling_key"], 202)
        return ""

    requests_mock.delete(AGENTS, text=answer)
    with pytest.raises(CronofyBulkError) as info:
        CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=[f"k{n}" for n in range(8)], max_concurrency=1
        ).execute({})
    error = info.value
    assert not error.fatal
    assert [(f.item, f.status_code) for f in error.failures] == [
        ("k1", 422),
        ("k3", 503),
        ("k4", 503),
        ("k6", 503),
    ]
    message = str(error)
    assert "  - 'k1': 422: " in message
    assert (
        "  - 3 failed: 503: Cronofy answered 503 Service Unavailable; gave up after 1 attempt(s).\n"
        in message
    )
    assert "    'k3', 'k4', 'k6'" in message
    assert "not attempted" not in message

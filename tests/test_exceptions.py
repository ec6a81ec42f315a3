"""The errors users catch (exceptions.py): which skip Airflow's retries, which stop a bulk run, and
how a bulk error's message lists its failures (one explanation per cause, every item kept in the
error's ``failures``); the whole message through the operator is in tests/operators/test_bulk.py."""

from __future__ import annotations

import pytest

from airflow_provider_cronofy._compat import AirflowException, AirflowFailException
from airflow_provider_cronofy.exceptions import (
    ITEMS_SHOWN_PER_CAUSE,
    CronofyAPIError,
    CronofyBulkError,
    CronofyConfigError,
    CronofyError,
    CronofyFatalAPIError,
    CronofyFatalBulkError,
    CronofyInputError,
    ItemFailure,
    cause_lines,
    format_item,
    stopped_line,
    stops_a_bulk_run,
)

REJECTED = "Cronofy rejected the API key (401 Unauthorized) at https://api.cronofy.com. Check ..."


@pytest.mark.parametrize("kind", [CronofyConfigError, CronofyInputError, CronofyFatalAPIError])
def test_what_a_retry_cannot_fix_skips_airflows_retries(kind):
    error = kind("bad")
    assert isinstance(error, AirflowFailException) and isinstance(error, CronofyError)


def test_what_a_retry_may_fix_keeps_airflows_retries():
    error = CronofyAPIError("503", status_code=503)
    assert isinstance(error, AirflowException) and not isinstance(error, AirflowFailException)


def test_a_fatal_api_error_is_always_fatal_and_keeps_its_details():
    error = CronofyFatalAPIError("401", status_code=401, item="k1", errors={"x": []}, fatal=False)
    assert error.fatal is True
    assert (error.status_code, error.item, error.errors, str(error)) == (401, "k1", {"x": []}, "401")


@pytest.mark.parametrize(
    ("error", "stops"),
    [
        (CronofyFatalAPIError("401"), True),
        (CronofyAPIError("404 across calendars", status_code=404, fatal=False), False),
        (CronofyAPIError("503", status_code=503), False),
        (CronofyConfigError("no API key"), True),
        (CronofyInputError("bad key"), True),
        (RuntimeError("a bug"), False),
    ],
)
def test_what_stops_a_bulk_run(error, stops):
    assert stops_a_bulk_run(error) is stops


def test_a_bulk_error_of_a_fatal_run_skips_airflows_retries_and_carries_every_list():
    failures = [ItemFailure("k2", 401, "rejected"), ItemFailure("k3", None, "timeout")]
    results = {"cancelled": ["k1"], "not_found": []}
    fatal = CronofyBulkError.of(
        "2 failed", fatal=True, failures=failures, results=results, not_attempted=["k4"]
    )
    plain = CronofyBulkError.of("2 failed", failures=failures, results=results)
    assert type(fatal) is CronofyFatalBulkError and isinstance(fatal, AirflowFailException)
    assert type(plain) is CronofyBulkError and not isinstance(plain, AirflowFailException)
    assert fatal.failures == failures and fatal.results == results and fatal.not_attempted == ["k4"]
    assert plain.not_attempted == []
    # The error's status is the last failure's: what a caller catching CronofyAPIError reads.
    assert fatal.status_code is None and plain.fatal is False and fatal.fatal is True


# ---------------------------------------------------------------- a bulk error's lines


def test_items_failing_for_one_reason_share_one_explanation():
    failures = [ItemFailure("k1", 401, REJECTED), ItemFailure("k2", 401, REJECTED)]
    lines = cause_lines(failures)
    assert lines == [f"  - 2 failed: 401: {REJECTED}", "    'k1', 'k2'"]
    assert "\n".join(lines).count("Cronofy rejected the API key") == 1


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
    assert cause_lines(failures) == [
        "  - 2 failed: 503: Cronofy answered 503 Service Unavailable; gave up after 6 attempt(s).",
        "    'a', 'c'",
        "  - 'b': 422: Cronofy rejected the request (422 Unprocessable Entity): b",
        # The request's own item is dropped from a shared cause, so that it reads for all of them.
        "  - 2 failed: DELETE /v1/meeting_agents failed after 6 attempt(s): no answer in time",
        "    'd', 'e'",
    ]


def test_the_stopped_line_agrees_in_number():
    assert stopped_line(38) == (
        "The run stopped at an error every other item would meet too: 38 items were not attempted."
    )
    assert stopped_line(1).endswith(": 1 item was not attempted.")
    assert stopped_line(2, "event") == (
        "The run stopped at an error every other event would meet too: 2 events were not attempted."
    )


def test_a_stop_after_every_item_was_sent_says_so():
    assert stopped_line(0).endswith("every other item would meet too: every item had been sent.")
    assert stopped_line(0, "event").endswith("every other event would meet too: every event had been sent.")


def test_a_long_cause_lists_its_first_items_and_counts_the_rest():
    failures = [ItemFailure(f"k{number}", 401, REJECTED) for number in range(25)]
    listed = cause_lines(failures)[1]
    assert listed.startswith("    'k0', 'k1',")
    assert f"'k{ITEMS_SHOWN_PER_CAUSE - 1}' and {25 - ITEMS_SHOWN_PER_CAUSE} more" in listed
    assert f"'k{ITEMS_SHOWN_PER_CAUSE}'" not in listed
    assert "(all in the error's failures and the failures XCom)" in listed


def test_a_short_cause_lists_every_item_and_no_more():
    failures = [ItemFailure(f"k{number}", 401, REJECTED) for number in range(ITEMS_SHOWN_PER_CAUSE)]
    listed = cause_lines(failures)[1]
    assert listed == "    " + ", ".join(f"'k{number}'" for number in range(ITEMS_SHOWN_PER_CAUSE))


@pytest.mark.parametrize(
    ("item", "shown"),
    [
        ("k1", "'k1'"),
        ("it's", '"it\'s"'),
        ({"calendar_id": "cal_1", "event_id": "evt_1"}, "calendar 'cal_1', event 'evt_1'"),
        ({"event_id": "evt_1"}, "{'event_id': 'evt_1'}"),  # not an event of ``events``: as it is
        (7, "7"),
    ],
)
def test_items_are_formatted_without_assuming_strings(item, shown):
    assert format_item(item) == shown


def test_event_items_group_and_read_well():
    # The events form's items reach the message as {"calendar_id", "event_id"} dicts; the
    # transport names a request by its event id, which a shared cause drops too.
    failures = [
        ItemFailure(
            {"calendar_id": "cal_1", "event_id": event_id},
            None,
            f"POST /v1/calendars/cal_1/events for {event_id!r} failed after 3 attempt(s): no answer in time",
        )
        for event_id in ("e1", "e2")
    ]
    assert cause_lines(failures) == [
        "  - 2 failed: POST /v1/calendars/cal_1/events failed after 3 attempt(s): no answer in time",
        "    calendar 'cal_1', event 'e1', calendar 'cal_1', event 'e2'",
    ]
    one = cause_lines(failures[:1])
    assert one == [
        "  - calendar 'cal_1', event 'e1': POST /v1/calendars/cal_1/events for 'e1' failed after 3 "
        "attempt(s): no answer in time"
    ]


def test_event_cause_lines_group_an_unknown_calendar_under_it_and_count_what_was_not_sent():
    from airflow_provider_cronofy.exceptions import ItemFailure, event_cause_lines

    gone = "Cronofy answered 404 for calendar 'cal_gone': the calendar does not exist."

    def event(calendar_id, event_id):
        return {"calendar_id": calendar_id, "event_id": event_id}

    failures = [
        ItemFailure(event("cal_gone", "g1"), 404, gone),
        ItemFailure(event("cal_ok", "o1"), 422, "Cronofy rejected the request."),
        ItemFailure(event("cal_gone", "g2"), None, "not sent: calendar 'cal_gone' is unknown.", sent=False),
    ]
    assert event_cause_lines(failures) == [
        f"  - {gone} Its 2 events failed (1 not sent): 'g1', 'g2'",
        "  - calendar 'cal_ok', event 'o1': 422: Cronofy rejected the request.",
    ]

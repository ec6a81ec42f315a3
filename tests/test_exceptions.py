"""The errors users catch (exceptions.py): which skip Airflow's retries, which stop a bulk run."""

from __future__ import annotations

import pytest

from airflow_provider_cronofy._compat import AirflowException, AirflowFailException
from airflow_provider_cronofy.exceptions import (
    CronofyAPIError,
    CronofyBulkError,
    CronofyConfigError,
    CronofyError,
    CronofyFatalAPIError,
    CronofyFatalBulkError,
    CronofyInputError,
    ItemFailure,
    stops_a_bulk_run,
)


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

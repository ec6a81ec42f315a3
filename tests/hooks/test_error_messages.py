"""The wording of Cronofy's answers as errors (hooks/error_messages.py): class, fatality, message."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyFatalAPIError, stops_a_bulk_run
from airflow_provider_cronofy.hooks.error_messages import (
    Where,
    api_error,
    describe_errors,
    unknown_calendar_error,
)
from airflow_provider_cronofy.hooks.transport import Reply

WHERE = Where("cronofy_uk", "https://api-uk.cronofy.com", "uk")


def reply(status: int, body: object = b"", attempts: int = 1) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, {}, data, attempts)


@pytest.mark.parametrize("status", [401, 402, 403, 423])
def test_statuses_every_other_item_would_meet_are_fatal(status):
    error = api_error(reply(status), WHERE, item="k1", credential="API key")
    assert isinstance(error, CronofyFatalAPIError) and isinstance(error, AirflowFailException)
    assert error.fatal and stops_a_bulk_run(error)
    assert (error.status_code, error.item) == (status, "k1")


@pytest.mark.parametrize("status", [400, 409, 422, 429, 500, 503])
def test_other_statuses_keep_airflows_retries(status):
    error = api_error(reply(status), WHERE, item="k1", credential="API key")
    assert type(error) is CronofyAPIError
    assert not error.fatal and not stops_a_bulk_run(error)


def test_a_rejected_api_key_names_the_connection_and_the_data_center():
    message = str(api_error(reply(401), WHERE, item=None, credential="API key"))
    assert (
        "rejected the API key (401 Unauthorized) at data center 'uk' (https://api-uk.cronofy.com)" in message
    )
    assert "password of connection 'cronofy_uk'" in message


@pytest.mark.parametrize(
    ("can_refresh", "fix"),
    [(True, "even after refreshing it"), (False, "add client_id and refresh_token")],
)
def test_a_rejected_access_token_says_what_to_fix(can_refresh, fix):
    error = api_error(reply(401), WHERE, item="evt", credential="access token", can_refresh=can_refresh)
    assert "rejected the access token (401 Unauthorized)" in str(error)
    assert fix in str(error)


def test_a_403_names_the_missing_scope_from_cronofys_errors_or_the_calls_own():
    from_body = api_error(
        reply(403, {"errors": {"scope": [{"key": "errors.missing_scope", "description": "delete_event"}]}}),
        WHERE,
        item="evt",
        credential="access token",
        scope="create_event",
    )
    fallback = api_error(reply(403), WHERE, item="evt", credential="access token", scope="create_event")
    assert "lacks the 'create_event' scope" in str(fallback)
    assert "lacks the 'delete_event' scope. Re-authorise the user with that scope." in str(from_body)


def test_a_retryable_status_after_the_budget_says_how_many_attempts():
    error = api_error(reply(503, attempts=6), WHERE, item="k1", credential="API key")
    assert str(error) == "Cronofy answered 503 Service Unavailable; gave up after 6 attempt(s)."


def test_a_422_gives_cronofys_error_keys():
    body = {"errors": {"scheduling_key": [{"key": "errors.required", "description": "required"}]}}
    error = api_error(reply(422, body), WHERE, item="k1", credential="API key")
    assert str(error).startswith("Cronofy rejected the request (422 Unprocessable Entity): ")
    assert "scheduling_key" in str(error)
    assert describe_errors(body["errors"]) in str(error)


@pytest.mark.parametrize(("fatal", "kind"), [(True, CronofyFatalAPIError), (False, CronofyAPIError)])
def test_an_unknown_calendar_is_fatal_for_one_calendar_only(fatal, kind):
    error = unknown_calendar_error("cal_gone", reply(404), item="evt_1", fatal=fatal)
    assert type(error) is kind
    assert error.fatal is fatal and stops_a_bulk_run(error) is fatal
    assert (error.status_code, error.item) == (404, "evt_1")
    assert str(error).startswith("Cronofy answered 404 for calendar 'cal_gone': the calendar does not exist")

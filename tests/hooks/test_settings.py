"""A connection's extras as a UI form or a secrets backend stores them (hooks/settings.py).

Numbers arrive as JSON numbers or as strings ("10", " 2.5 "); an empty field as null, "" or white
space. Each is read as the number or the default; anything else is refused naming the extra, the
value and what is allowed.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_provider_cronofy.exceptions import CronofyConfigError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.settings import (
    DEFAULT_TIMEOUT,
    SETTING_NAMES,
    CronofySettings,
    resolve_settings,
)


def settings(overrides: dict | None = None, **extra) -> CronofySettings:
    conn = SimpleNamespace(conn_id="c", host=None, port=None, extra_dejson=extra)
    return resolve_settings(conn, overrides or {})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(10, 10.0), (2.5, 2.5), ("10", 10.0), ("2.5", 2.5), (" 30 ", 30.0), ("0.25", 0.25)],
)
def test_timeout_is_seconds_as_a_number_or_a_numeric_string(value, seconds):
    assert settings(timeout=value).timeout == (seconds, seconds)


@pytest.mark.parametrize(
    "name", ["max_retries", "rate_limit_per_second", "rate_limit_per_minute", "max_concurrency"]
)
@pytest.mark.parametrize(("value", "number"), [(10, 10), (10.0, 10), ("10", 10), (" 10 ", 10), ("10.0", 10)])
def test_counts_are_whole_numbers_as_numbers_or_numeric_strings(name, value, number):
    assert getattr(settings(**{name: value}), name) == number


@pytest.mark.parametrize("unset", [None, "", "   ", "\t"])
def test_an_empty_field_means_the_default(unset):
    assert len(SETTING_NAMES) == 7
    assert settings(**dict.fromkeys(SETTING_NAMES, unset)) == settings()
    resolved = settings()
    assert (resolved.data_center, resolved.timeout, resolved.max_retries) == ("us", DEFAULT_TIMEOUT, 5)
    assert (resolved.rate_limit_per_second, resolved.rate_limit_per_minute) == (50, 500)
    assert (resolved.max_concurrency, resolved.batch_rate_cost) == (50, "request")


def test_zero_turns_a_rate_limit_off_and_the_concurrency_default_follows():
    resolved = settings(rate_limit_per_second="0", rate_limit_per_minute="0")
    assert (resolved.rate_limit_per_second, resolved.rate_limit_per_minute) == (0, 0)
    assert resolved.max_concurrency == 20


def test_choices_ignore_case_and_surrounding_blanks():
    resolved = settings(data_center=" UK ", batch_rate_cost=" Entries ")
    assert (resolved.data_center, resolved.base_url) == ("uk", "https://api-uk.cronofy.com")
    assert resolved.batch_rate_cost == "entries"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"timeout": "soon"}, "timeout must be a number of seconds greater than 0, got 'soon'."),
        ({"timeout": "30s"}, "timeout must be a number of seconds greater than 0, got '30s'."),
        ({"timeout": "0"}, "timeout must be a number of seconds greater than 0, got '0'."),
        ({"timeout": -1}, "timeout must be a number of seconds greater than 0, got -1."),
        ({"timeout": "nan"}, "timeout must be a number of seconds greater than 0, got 'nan'."),
        ({"timeout": "true"}, "timeout must be a number of seconds greater than 0, got 'true'."),
        ({"timeout": True}, "timeout must be a number of seconds greater than 0, got True."),
        ({"max_retries": "2.5"}, "max_retries must be a whole number, 0 or more, got '2.5'."),
        ({"max_retries": "-1"}, "max_retries must be a whole number, 0 or more, got '-1'."),
        (
            {"rate_limit_per_minute": "ten"},
            "rate_limit_per_minute must be a whole number, 0 or more, got 'ten'.",
        ),
        (
            {"rate_limit_per_second": "false"},
            "rate_limit_per_second must be a whole number, 0 or more, got 'false'.",
        ),
        (
            {"rate_limit_per_second": False},
            "rate_limit_per_second must be a whole number, 0 or more, got False.",
        ),
        (
            {"rate_limit_per_minute": "inf"},
            "rate_limit_per_minute must be a whole number, 0 or more, got 'inf'.",
        ),
        ({"max_concurrency": "0"}, "max_concurrency must be a whole number from 1 to 100, got '0'."),
        ({"max_concurrency": "101"}, "max_concurrency must be a whole number from 1 to 100, got '101'."),
        ({"max_concurrency": "many"}, "max_concurrency must be a whole number from 1 to 100, got 'many'."),
        ({"batch_rate_cost": "each"}, "batch_rate_cost 'each' is refused: use one of request, entries."),
        (
            {"data_center": "eu"},
            "Unknown Cronofy data center 'eu': use one of us, au, ca, de, sg, uk (the data_center extra).",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_extra_the_value_and_what_is_allowed(extra, expected):
    with pytest.raises(CronofyConfigError) as info:
        settings(**extra)
    assert str(info.value) == expected


@pytest.mark.parametrize("name", ["timeout", "max_retries", "rate_limit_per_minute", "max_concurrency"])
def test_a_number_beyond_a_floats_range_is_refused_not_crashed_on(name):
    # JSON parses 10**400 as an int; float() of it raises OverflowError, which must not escape.
    with pytest.raises(CronofyConfigError) as info:
        settings(**{name: 10**400})
    message = str(info.value)
    assert message.startswith(f"{name} must be a ")
    assert len(message) < 200  # the value is cut, not printed whole


def test_a_hook_argument_is_read_the_same_way_and_wins():
    resolved = settings({"timeout": " 5 ", "max_concurrency": "3"}, timeout="10", max_concurrency=8)
    assert (resolved.timeout, resolved.max_concurrency) == ((5.0, 5.0), 3)
    with pytest.raises(CronofyConfigError, match="max_retries must be a whole number, 0 or more, got 'x'"):
        settings({"max_retries": "x"}, max_retries=2)


def test_a_connection_whose_extras_are_all_strings_works_end_to_end(set_connection):
    # What a secrets backend holding the extras as text gives the hook (through Airflow).
    set_connection(
        data_center="uk",
        timeout="12.5",
        max_retries="3",
        rate_limit_per_second="10",
        rate_limit_per_minute="100",
        max_concurrency=" 4 ",
        batch_rate_cost="entries",
    )
    resolved = CronofyHook().settings
    assert resolved == CronofySettings(
        base_url="https://api-uk.cronofy.com",
        data_center="uk",
        timeout=(12.5, 12.5),
        max_retries=3,
        rate_limit_per_second=10,
        rate_limit_per_minute=100,
        max_concurrency=4,
        batch_rate_cost="entries",
    )


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_hook_argument_leaves_the_connections_extra_in_force(blank):
    # Blank means "unset" for an argument as for an extra: the extra applies, not the default.
    resolved = settings({"timeout": blank, "max_retries": blank}, timeout="5", max_retries="2")
    assert resolved.timeout == (5.0, 5.0)
    assert resolved.max_retries == 2
    assert settings({"timeout": 7}, timeout="5").timeout == (7.0, 7.0)  # a real argument still wins

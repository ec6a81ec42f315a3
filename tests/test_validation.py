import subprocess
import sys

import pytest

from airflow_provider_cronofy.exceptions import CronofyInputError
from airflow_provider_cronofy.validation import refuse_comma_joined, validate_item


def test_a_comma_joined_id_is_refused_with_the_list_to_pass_instead():
    with pytest.raises(CronofyInputError) as caught:
        refuse_comma_joined("scheduling_key", "deal-1,deal-2,deal-3")
    message = str(caught.value)
    assert "'deal-1,deal-2,deal-3'" in message
    assert "3 ids joined by commas" in message
    assert "['deal-1', 'deal-2', 'deal-3']" in message
    assert "one-item list (['deal-1,deal-2,deal-3'])" in message


def test_an_id_without_a_comma_passes():
    refuse_comma_joined("event_id", "evt-1")


@pytest.mark.parametrize("value", ["deal-1 ", " deal-1", "deal-1\t", "\ndeal-1", "deal-1\u00a0"])
def test_leading_or_trailing_white_space_is_refused_with_the_stripped_id(value):
    with pytest.raises(CronofyInputError) as caught:
        validate_item("scheduling_key", value)
    message = str(caught.value)
    assert f"scheduling_key {value!r} has leading or trailing white space" in message
    assert f"({value.strip()!r})" in message
    assert "Nothing was sent." in message


@pytest.mark.parametrize("value", ["deal 1", "meeting with a b c", "Ünïcode-key", "a"])
def test_white_space_inside_an_id_passes(value):
    validate_item("scheduling_key", value)


# ---------------------------------------------------------------- normalise_agents


def test_validation_does_not_import_requests():
    # Airflow 2.11 imports requests itself: what counts is that the checks add nothing to it.
    code = (
        "import sys, airflow_provider_cronofy._compat; before = 'requests' in sys.modules; "
        "import airflow_provider_cronofy.validation, airflow_provider_cronofy.agent_rows; "
        "print(before, 'requests' in sys.modules, any(m.startswith('airflow_provider_cronofy.hooks') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    before, after, hooks = result.stdout.splitlines()[-1].split()  # after Airflow's own log line, if any
    assert (after, hooks) == (before, "False")

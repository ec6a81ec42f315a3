import pytest

from airflow_provider_cronofy.exceptions import CronofyInputError
from airflow_provider_cronofy.validation import refuse_comma_joined


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

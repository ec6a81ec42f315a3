import pytest

from airflow_provider_cronofy.wording import plural


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 scheduling keys"), (1, "1 scheduling key"), (2, "2 scheduling keys")],
)
def test_plural_agrees_with_the_count(count, expected):
    assert plural(count, "scheduling key") == expected


def test_plural_takes_an_irregular_form():
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(3, "entry", "entries") == "3 entries"

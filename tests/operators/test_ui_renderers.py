"""The UI renders the list fields as JSON (one item a line), as the HTTP provider's headers."""

from __future__ import annotations

import pytest

from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from tests.lines import LINE


@pytest.mark.parametrize(
    ("operator", "fields"),
    [
        (CancelScheduledMeetingAgentOperator, ["scheduling_key"]),
        (CancelIntegratedMeetingAgentOperator, ["event_id", "events"]),
    ],
)
def test_the_list_fields_render_as_json(operator, fields):
    assert operator.template_fields_renderers == dict.fromkeys(fields, "json")
    assert set(fields) <= set(operator.template_fields)


@pytest.mark.skipif(
    not LINE.startswith("2."),
    reason="Airflow 3's UI renders the field in the browser, from its renderer name",
)
def test_airflow_2_renders_a_list_one_item_a_line():
    from airflow.www.utils import get_attr_renderer

    html = get_attr_renderer()["json"]([f"deal-{number}" for number in range(3)])
    # Pygments marks up each string; one item a line means the three are on three lines.
    lines_with_items = [line for line in html.splitlines() if "deal-" in line]
    assert len(lines_with_items) == 3

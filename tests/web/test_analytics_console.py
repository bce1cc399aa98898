"""The analytics API's month detail over HTTP: the spread beside the rolled-up figures,
the per-engineer table, and whether the baseline is still the default."""

from __future__ import annotations

import pytest

from models.rollup import roll_up
from tests.factories import new_handoff
from web.pages.present import bar_chart, format_duration, nice_ticks

URL = "/api/v1/analytics/escalation-metrics"


def test_the_month_detail_names_the_engineer_and_the_baseline_state(client, tenant):
    handoff = new_handoff(client, tenant)
    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
    client.post(
        f"/api/v1/sessions/{handoff['session_id']}/messages",
        json={"body": "On it"},
        headers=tenant.auth("eng"),
    )
    new_handoff(client, tenant)  # an escalation nobody acted on
    roll_up()
    acted = client.get(f"/api/v1/escalations/{handoff['id']}", headers=tenant.auth("eng"))
    seconds = acted.get_json()["time_to_first_action_seconds"]

    body = client.get(URL, headers=tenant.auth("eng")).get_json()
    assert (body["escalations"], body["first_actions"]) == (2, 1)
    assert body["time_to_first_action_sample_size"] == 1
    # One value: its median and p90 are itself.
    assert body["median_time_to_first_action_minutes"] == round(seconds / 60, 2)
    assert body["p90_time_to_first_action_minutes"] == round(seconds / 60, 2)
    assert body["hours_recovered"] == round((45 * 60 - seconds) / 3600, 2)
    assert body["baseline_is_default"] is True
    [engineer] = body["engineers"]
    assert (engineer["id"], engineer["name"], engineer["first_actions"]) == (
        tenant.users["eng"],
        "Alpha MSP Eng",
        1,
    )

    patched = client.patch(
        "/api/v1/account", json={"manual_baseline_minutes": 45}, headers=tenant.auth("admin")
    )
    assert patched.status_code == 200 and patched.get_json()["baseline_is_set"] is True
    # Set to the same number, it is no longer a default nobody chose.
    assert client.get(URL, headers=tenant.auth("eng")).get_json()["baseline_is_default"] is False
    refused = client.patch(
        "/api/v1/account", json={"manual_baseline_minutes": 50}, headers=tenant.auth("eng")
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(None, "—"), (0, "0 s"), (0.5, "30 s"), (59 / 60, "59 s"), (1, "1 min"), (12.34, "12.3 min")],
)
def test_durations_under_a_minute_read_in_seconds(minutes, text):
    assert format_duration(minutes) == text


def test_the_y_axis_has_round_ticks_through_zero():
    assert nice_ticks(0, 44.8) == [0, 20, 40, 60]
    assert nice_ticks(-12, 30) == [-20, 0, 20, 40]  # a step of 20 covers 42 in four
    chart = bar_chart([("2026-01", 44.8), ("2026-02", None)])
    assert [tick["text"] for tick in chart["y_ticks"]] == ["0", "20", "40", "60"]
    zero = next(tick for tick in chart["y_ticks"] if tick["value"] == 0)
    assert zero["y"] == chart["zero_y"]

"""What the pages compute for display: assessment gists, waiting times, minutes, the chart's
geometry, and which `next` targets a sign-in may redirect to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from web.pages.present import assessment_gist, bar_chart, format_minutes, waiting_text
from web.pages.security import safe_next


@pytest.mark.parametrize(
    ("assessment", "gist"),
    [
        ({"confidence": 0.4, "summary": "  Stale   VPN profile "}, "Stale VPN profile"),
        ({"likely_cause": "DNS", "diagnosis": "Expired certificate"}, "Expired certificate"),
        ({"confidence": 0.9, "notes": "", "hypothesis": "Bad cable"}, "Bad cable"),
        ({"confidence": 0.9, "steps": ["a"]}, ""),
        ({}, ""),
        (None, ""),
        (["not", "an", "object"], ""),
    ],
)
def test_the_gist_is_the_summary_else_the_first_text_field(assessment, gist):
    assert assessment_gist(assessment) == gist


def test_a_long_gist_is_clipped():
    gist = assessment_gist({"summary": "word " * 200})
    assert len(gist) == 240 and gist.endswith("…")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (61, "1 min 01 s"), (3599, "59 min 59 s"), (3660, "1 h 01 min"),
     (90000, "1 d 1 h"), (-5, "0 s")],
)  # fmt: skip
def test_waiting_time_reads_naturally(seconds, text):
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert waiting_text(now - timedelta(seconds=seconds), now) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (0, "0"), (0.04, "0.04"), (0.5, "0.5"), (44.96, "45"), (12.34, "12.3"),
     (-3.5, "-3.5")],
)  # fmt: skip
def test_minutes_show_one_decimal_and_seconds_do_not_read_as_zero(value, text):
    assert format_minutes(value) == text


def test_the_chart_grows_bars_up_and_down_from_one_zero_line():
    chart = bar_chart([("2025-01", 30.0), ("2025-02", None), ("2025-03", -10.0)], height=240)
    up, empty, down = chart["bars"]
    assert up["y"] + up["height"] == pytest.approx(chart["zero_y"], abs=0.1)
    assert down["y"] == chart["zero_y"]
    assert up["height"] == pytest.approx(3 * down["height"], rel=0.01)
    assert empty["height"] == 0 and empty["text"] == "—"
    assert [bar["short_label"] for bar in chart["bars"]] == ["Jan", "Feb", "Mar"]
    assert up["x"] < empty["x"] < down["x"]


def test_a_chart_with_no_figures_has_no_bars():
    chart = bar_chart([("2025-01", None), ("2025-02", None)])
    assert all(bar["height"] == 0 for bar in chart["bars"])


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("/escalations", "/escalations"),
        ("/pilot/7?tab=chat", "/pilot/7?tab=chat"),
        ("", None),
        (None, None),
        ("escalations", None),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("/ok\r\nSet-Cookie: x", None),
    ],
)
def test_sign_in_redirects_only_to_paths_on_this_site(target, allowed):
    assert safe_next(target) == allowed

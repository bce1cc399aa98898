"""The month's distribution beside the rolled-up mean: median, p90 (nearest rank), hours
recovered and per-engineer figures, on SQLite and PostgreSQL. Expected values are worked
out here by hand from fixed timestamps, not by the code under test."""

from __future__ import annotations

import pytest

from models import db
from models.entities import Account
from models.rollup import Month, median, month_distribution, percentile
from tests.models.rollup_dataset import (  # noqa: F401  (the two-backend fixture)
    CHICAGO,
    add_handoff,
    database_url,
    tenant_without_passwords,
)


def test_median_and_nearest_rank_p90_by_hand():
    assert median([]) is None and percentile([], 0.9) is None
    assert median([7.0]) == 7.0 and percentile([7.0], 0.9) == 7.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    # Ten values: the 9th smallest (ceil(0.9 × 10) = 9) is the p90.
    assert percentile([float(v) for v in range(10, 0, -1)], 0.9) == 9.0
    # Eleven values: ceil(9.9) = 10, the 10th smallest.
    assert percentile([float(v) for v in range(1, 12)], 0.9) == 10.0


def test_a_month_in_chicago_by_hand(app):
    tenant = tenant_without_passwords("Spread MSP", CHICAGO, baseline=45)
    erin, sam = tenant.users["eng"], tenant.users["eng2"]
    # March 2026 in Chicago. TTFA: Erin 10, 20, 30 and 50 min (one past midnight local,
    # 2026-03-31 23:50 → 04-01 00:40 is April's, excluded); Sam 30 s and 5 min.
    for created, acted, who in [
        ("2026-03-02 09:00", "2026-03-02 09:10", erin),
        ("2026-03-03 09:00", "2026-03-03 09:20", erin),
        ("2026-03-04 09:00", "2026-03-04 09:30", erin),
        ("2026-03-05 09:00", "2026-03-05 09:50", erin),
        ("2026-03-06 09:00", "2026-03-06 09:00:30", sam),
        ("2026-03-07 09:00", "2026-03-07 09:05", sam),
        ("2026-03-31 23:50", "2026-04-01 00:40", erin),  # acted in April
        ("2026-02-28 23:55", "2026-03-01 00:05", sam),  # escalated in Feb, acted in March: 10 min
    ]:
        add_handoff(tenant.account_id, who, CHICAGO, created, acted)
    add_handoff(tenant.account_id, erin, CHICAGO, "2026-03-10 10:00")  # never acted on

    account = db.session.get(Account, tenant.account_id)
    march = month_distribution(account, Month(2026, 3))
    # Seconds, sorted: 30, 300, 600 (Erin), 600 (Sam), 1200, 1800, 3000 → n = 7.
    assert march.ttfa.count == 7
    assert march.ttfa.median_seconds == 600.0
    assert march.ttfa.p90_seconds == 3000.0  # ceil(6.3) = 7th
    assert march.ttfa.mean_seconds == pytest.approx(7530 / 7)
    # Hours recovered: 7 × 45 min − 7530 s = 18900 s − 7530 s = 11370 s = 3.1583 h.
    assert march.hours_recovered == pytest.approx(3.16, abs=0.005)

    by_name = {e.name: e for e in march.engineers}
    assert [e.name for e in march.engineers] == ["Spread MSP Eng", "Spread MSP Eng2"]
    erin_figures, sam_figures = by_name["Spread MSP Eng"], by_name["Spread MSP Eng2"]
    assert (erin_figures.ttfa.count, erin_figures.ttfa.median_seconds) == (4, 1500.0)
    assert erin_figures.ttfa.mean_seconds == 1650.0  # (600 + 1200 + 1800 + 3000) / 4
    assert erin_figures.minutes_recovered_per_escalation == 17.5  # 45 − 27.5
    assert (sam_figures.ttfa.count, sam_figures.ttfa.median_seconds) == (3, 300.0)
    # (30 + 300 + 600) / 3 = 310 s = 5.1667 min; 45 − 5.1667, to the hundredth.
    assert sam_figures.minutes_recovered_per_escalation == 39.83

    april = month_distribution(account, Month(2026, 4))
    assert (april.ttfa.count, april.ttfa.median_seconds) == (1, 3000.0)
    empty = month_distribution(account, Month(2026, 5))
    assert (empty.ttfa.count, empty.ttfa.median_seconds, empty.hours_recovered) == (0, None, None)
    assert empty.engineers == []

"""The monthly rollup: calendar months in each account's time zone, set-based, rerunnable."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from models import MonthlyRollup, db
from models.accounts import update_account
from models.entities import Account
from models.errors import NotFound, ValidationFailed
from models.rollup import Month, metrics_for, months_due, recent_months, roll_up, utc_bounds
from tests.models.rollup_dataset import (  # noqa: F401 - database_url is a fixture
    CHICAGO,
    EXPECTED,
    TOKYO,
    add_handoff,
    chicago_handoffs,
    database_url,
    tenant_without_passwords,
    tokyo_handoffs,
)

# 12:00 UTC on April 1st: 07:00 in Chicago, 21:00 in Tokyo; both within the grace days.
APRIL_FIRST_NOON = datetime(2026, 4, 1, 12, 0)
FIGURES = list(EXPECTED["chicago"]["2026-03"])


@pytest.fixture
def accounts(app):
    chicago = tenant_without_passwords("Chicago MSP", CHICAGO)
    tokyo = tenant_without_passwords("Tokyo MSP", TOKYO, baseline=30)
    idle = tenant_without_passwords("Idle MSP", "UTC")
    chicago_handoffs(chicago.account_id, chicago.users["eng"])
    tokyo_handoffs(tokyo.account_id, tokyo.users["eng"])
    return {"chicago": chicago, "tokyo": tokyo, "idle": idle}


def stored(account_id: int) -> dict[str, dict]:
    rows = db.session.scalars(
        select(MonthlyRollup).where(MonthlyRollup.account_id == account_id)
    ).all()
    return {row.month: {name: getattr(row, name) for name in FIGURES} for row in rows}


def all_rows() -> list[tuple]:
    db.session.expire_all()
    return [
        tuple(row)
        for row in db.session.execute(
            select(MonthlyRollup.__table__).order_by(MonthlyRollup.account_id, MonthlyRollup.month)
        )
    ]


# --- months and their bounds (no database) ---


@pytest.mark.parametrize(
    "text",
    ["2026-13", "2026-00", "abc", "2026-1", "26-01", "2026/01", "", "２０２６-０３", "1969-12"],
)
def test_a_malformed_month_is_a_validation_error(text):
    with pytest.raises(ValidationFailed) as raised:
        Month.parse(text)
    assert list(raised.value.details) == ["month"]


def test_month_arithmetic_crosses_years():
    assert str(Month.parse("2026-01").shifted(-1)) == "2025-12"
    assert str(Month.parse("2025-12").shifted(1)) == "2026-01"
    assert [str(m) for m in recent_months(Month(2026, 2), 3)] == ["2026-02", "2026-01", "2025-12"]


def test_month_bounds_are_local_midnights_in_utc_across_dst():
    # Chicago is UTC-6 (CST) on March 1st and UTC-5 (CDT) on April 1st.
    assert utc_bounds(Month(2026, 3), CHICAGO) == (
        datetime(2026, 3, 1, 6, 0),
        datetime(2026, 4, 1, 5, 0),
    )
    # Tokyo is UTC+9 all year: its months start the previous day in UTC.
    assert utc_bounds(Month(2026, 4), TOKYO) == (
        datetime(2026, 3, 31, 15, 0),
        datetime(2026, 4, 30, 15, 0),
    )


def test_previous_month_is_due_only_in_the_first_days():
    assert months_due(date(2026, 4, 1)) == [Month(2026, 3), Month(2026, 4)]
    assert months_due(date(2026, 4, 3)) == [Month(2026, 3), Month(2026, 4)]
    assert months_due(date(2026, 4, 4)) == [Month(2026, 4)]
    assert months_due(date(2026, 1, 2)) == [Month(2025, 12), Month(2026, 1)]


# --- the rollup against a database ---


def test_rollup_matches_the_hand_computation_in_two_time_zones(accounts):
    run = roll_up(now=APRIL_FIRST_NOON)

    # Three accounts, each with its March and April (April 1st is within the grace days).
    assert (run.accounts, run.rows, run.batches) == (3, 6, 1)
    assert stored(accounts["chicago"].account_id) == {
        month: EXPECTED["chicago"][month] for month in ("2026-03", "2026-04")
    }
    assert stored(accounts["tokyo"].account_id) == EXPECTED["tokyo"]
    # An account without handoffs gets zeros and nulls, with its baseline.
    nothing = {
        "escalations": 0,
        "first_actions": 0,
        "avg_time_to_first_action_minutes": None,
        "manual_baseline_minutes": 45,
        "minutes_recovered_per_escalation": None,
    }
    assert stored(accounts["idle"].account_id) == {"2026-03": nothing, "2026-04": nothing}


def test_a_month_with_escalations_but_no_first_action_has_null_averages(accounts):
    roll_up([Month(2026, 2)], account_id=accounts["chicago"].account_id, now=APRIL_FIRST_NOON)
    assert stored(accounts["chicago"].account_id) == {"2026-02": EXPECTED["chicago"]["2026-02"]}
    assert stored(accounts["tokyo"].account_id) == {}


def test_the_previous_month_follows_each_accounts_local_date(accounts):
    # 2026-04-04 02:00 UTC: still the 3rd in Chicago (21:00), the 4th in UTC and in Tokyo.
    roll_up(now=datetime(2026, 4, 4, 2, 0))
    assert set(stored(accounts["chicago"].account_id)) == {"2026-03", "2026-04"}
    assert set(stored(accounts["tokyo"].account_id)) == {"2026-04"}
    assert set(stored(accounts["idle"].account_id)) == {"2026-04"}


def test_a_rerun_changes_nothing(accounts):
    roll_up(now=APRIL_FIRST_NOON)
    first = all_rows()
    roll_up(now=APRIL_FIRST_NOON)
    assert all_rows() == first
    # Later on the same day: the same rows with the same figures; only computed_at moves.
    later = datetime(2026, 4, 1, 12, 0, 30)
    roll_up(now=later)
    again = all_rows()
    assert [row[:-1] for row in again] == [row[:-1] for row in first]
    assert {row[-1] for row in again} == {later}


def test_small_batches_give_the_same_rows(accounts):
    roll_up(now=APRIL_FIRST_NOON)
    whole = all_rows()
    db.session.execute(MonthlyRollup.__table__.delete())
    db.session.commit()
    run = roll_up(now=APRIL_FIRST_NOON, batch_size=1)
    assert run.batches == 3
    assert all_rows() == whole


def test_a_new_first_action_and_a_new_baseline_show_after_the_next_run(accounts):
    chicago = accounts["chicago"]
    roll_up(now=APRIL_FIRST_NOON)
    # A handoff acted on 2 minutes after escalation, then the owner lowers the baseline.
    add_handoff(
        chicago.account_id, chicago.users["eng"], CHICAGO, "2026-04-01 06:00", "2026-04-01 06:02"
    )
    update_account(db.session.get(Account, chicago.account_id), manual_baseline_minutes=40)
    roll_up(now=datetime(2026, 4, 10, 12, 0))  # April only: March keeps its stored baseline
    april = stored(chicago.account_id)["2026-04"]
    # (40 + 60 + 2) / 3 = 34 minutes; 40 - 34 = 6.
    assert april == {
        "escalations": 3,
        "first_actions": 3,
        "avg_time_to_first_action_minutes": 34.0,
        "manual_baseline_minutes": 40,
        "minutes_recovered_per_escalation": 6.0,
    }
    assert stored(chicago.account_id)["2026-03"] == EXPECTED["chicago"]["2026-03"]


def test_one_account_only(accounts):
    run = roll_up(account_id=accounts["tokyo"].account_id, now=APRIL_FIRST_NOON)
    assert (run.accounts, run.rows) == (1, 2)
    total = db.session.scalar(select(func.count()).select_from(MonthlyRollup))
    assert total == 2
    with pytest.raises(NotFound):
        roll_up(account_id=999_999, now=APRIL_FIRST_NOON)


def test_metrics_for_reads_rows_and_fills_months_not_rolled_up(accounts):
    roll_up(now=APRIL_FIRST_NOON)
    tokyo = db.session.get(Account, accounts["tokyo"].account_id)
    history = metrics_for(tokyo, recent_months(Month(2026, 4), 3))
    assert [m.month for m in history] == ["2026-04", "2026-03", "2026-02"]
    assert history[0].computed_at == APRIL_FIRST_NOON
    assert (history[2].escalations, history[2].avg_time_to_first_action_minutes) == (0, None)
    assert (history[2].manual_baseline_minutes, history[2].computed_at) == (30, None)


def test_an_account_with_an_unknown_time_zone_is_rolled_up_in_utc(accounts):
    # The API never stores one, but a bad row must not stop everyone else's rollup.
    idle = db.session.get(Account, accounts["idle"].account_id)
    idle.timezone = "Mars/Olympus_Mons"
    db.session.commit()
    add_handoff(
        idle.id, accounts["idle"].users["eng"], "UTC", "2026-03-31 23:30", "2026-04-01 00:00"
    )
    roll_up(now=APRIL_FIRST_NOON)
    assert stored(idle.id)["2026-03"]["escalations"] == 1
    assert stored(idle.id)["2026-04"]["avg_time_to_first_action_minutes"] == 30.0
    assert stored(accounts["tokyo"].account_id) == EXPECTED["tokyo"]


def test_november_in_chicago_starts_at_local_midnight_and_ends_after_the_dst_change():
    # DST ends 2026-11-01 at 02:00 CDT: November starts at midnight CDT (UTC-5) and ends at
    # midnight CST (UTC-6) on December 1st, so it is 30 days and one hour long.
    assert utc_bounds(Month(2026, 11), CHICAGO) == (
        datetime(2026, 11, 1, 5, 0),
        datetime(2026, 12, 1, 6, 0),
    )
    assert utc_bounds(Month(2026, 10), CHICAGO)[1] == datetime(2026, 11, 1, 5, 0)


def test_an_escalation_at_exactly_local_midnight_on_the_first_counts_in_the_new_month(app):
    chicago = tenant_without_passwords("Chicago MSP", CHICAGO)
    eng = chicago.users["eng"]
    # Given in UTC, the Chicago local time beside each, by hand.
    for created in (
        "2026-11-01 04:59:59",  # Oct 31 23:59:59 CDT -> October
        "2026-11-01 05:00:00",  # Nov 1 00:00:00 CDT, exactly midnight -> November
        "2026-11-01 06:30:00",  # Nov 1 01:30 CDT, the first pass -> November
        "2026-11-01 07:30:00",  # Nov 1 01:30 CST, the repeated hour -> November
        "2026-12-01 05:30:00",  # Nov 30 23:30 CST (an hour later than CDT would say) -> November
        "2026-12-01 06:00:00",  # Dec 1 00:00:00 CST, exactly midnight -> December
    ):
        add_handoff(chicago.account_id, eng, "UTC", created)
    db.session.commit()
    roll_up(
        [Month(2026, 10), Month(2026, 11), Month(2026, 12)],
        account_id=chicago.account_id,
        now=datetime(2026, 12, 1, 6, 0),
    )
    counts = {month: row["escalations"] for month, row in stored(chicago.account_id).items()}
    assert counts == {"2026-10": 1, "2026-11": 4, "2026-12": 1}

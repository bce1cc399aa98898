"""The owner's metric: escalation figures per account and calendar month.

Per account and month (the account's time zone):

- escalations: handoffs created in the month;
- first_actions: handoffs whose first action falls in the month;
- avg_time_to_first_action_minutes: the average TTFA of those, null when there are none;
- minutes_recovered_per_escalation: the account's manual baseline minus that average;
- avg_time_to_claim_minutes: over the handoffs first claimed in the month, the average time
  from creation to that first claim (null when there are none);
- escalated_to_admins: handoffs whose unclaimed escalation to the admins happened in the month.

A handoff escalated on the 31st and first acted on the 1st counts as an escalation of the
old month and is averaged in the new one: both sides of the metric are dated by what happened.

The rollup is set-based: each time zone's months become [start, end) windows in naive UTC
(computed in Python), a batch of accounts joins those windows in one query whose figures are
index range scans over the handoffs, and the results are upserted, so running it again only
rewrites the same figures.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import DateTime, String, and_, column, func, select, values

from models.db import db, insert_on_conflict, transaction, utcnow
from models.entities import Account, Handoff, MonthlyRollup, User
from models.errors import NotFound, ValidationFailed

log = logging.getLogger(__name__)

#: In the first days of a month the previous month is recomputed too: it picks up the
#: first actions of the month's last seconds (after the last run in it) and anything a
#: worker or beat outage around the month's end left out.
PREVIOUS_MONTH_GRACE_DAYS = 3
#: Accounts per aggregate query (and per upsert transaction, kept short for SQLite's
#: single writer). The query's parameters are per time zone, not per account.
ACCOUNTS_PER_BATCH = 500
#: Months the API and the CLI accept.
FIRST_MONTH, LAST_MONTH = "1970-01", "2999-12"
#: Figures are kept to the hundredth of a minute, so every database gives the same row.
DECIMALS = 2

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month, written `YYYY-MM`."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str, field: str = "month") -> Month:
        """`YYYY-MM` between FIRST_MONTH and LAST_MONTH, else ValidationFailed."""
        # Exactly YYYY-MM in ASCII digits: no surrounding spaces (a "+" in a URL is one).
        match = _MONTH.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValidationFailed("Invalid month.", {field: ["Must be a month as YYYY-MM."]})
        parsed = cls(int(match[1]), int(match[2]))
        if not 1 <= parsed.month <= 12:
            raise ValidationFailed("Invalid month.", {field: ["The month must be 01 to 12."]})
        if not FIRST_MONTH <= str(parsed) <= LAST_MONTH:
            raise ValidationFailed(
                "Invalid month.", {field: [f"Must be between {FIRST_MONTH} and {LAST_MONTH}."]}
            )
        return parsed

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shifted(self, months: int) -> Month:
        index = self.year * 12 + (self.month - 1) + months
        return Month(index // 12, index % 12 + 1)

    def first_day(self) -> date:
        return date(self.year, self.month, 1)


@lru_cache(maxsize=1024)
def zone_of(account_timezone: str | None) -> ZoneInfo:
    """The account's zone; a name that is not a zone (never accepted by the API) counts as UTC
    so one bad row cannot stop everyone's rollup. Cached: zoneinfo itself keeps only a few
    zones loaded, and every metrics request asks for one."""
    try:
        return ZoneInfo(account_timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("Unknown time zone %r: rolling up in UTC", account_timezone)
        return ZoneInfo("UTC")


def local_today(zone: ZoneInfo, now: datetime | None = None) -> date:
    """Today's date in `zone`, for a naive-UTC `now` (default: the current time)."""
    return (now or utcnow()).replace(tzinfo=UTC).astimezone(zone).date()


def current_month(account: Account, now: datetime | None = None) -> Month:
    return Month.of(local_today(zone_of(account.timezone), now))


@lru_cache(maxsize=4096)
def utc_bounds(month: Month, zone_name: str) -> tuple[datetime, datetime]:
    """The month's [start, end) in naive UTC: local midnight on the 1st of it and of the next.

    A midnight that does not exist locally (a DST jump) resolves to the jump's instant."""
    zone = zone_of(zone_name)

    def utc_midnight(day: date) -> datetime:
        local = datetime(day.year, day.month, day.day, tzinfo=zone)
        return local.astimezone(UTC).replace(tzinfo=None)

    return utc_midnight(month.first_day()), utc_midnight(month.shifted(1).first_day())


def months_due(today: date, grace_days: int = PREVIOUS_MONTH_GRACE_DAYS) -> list[Month]:
    """What a scheduled run recomputes for an account whose local date is `today`."""
    this_month = Month.of(today)
    if today.day <= grace_days:
        return [this_month.shifted(-1), this_month]
    return [this_month]


@dataclass(frozen=True)
class MonthlyMetrics:
    """The endpoint's object; `computed_at` is None for a month no rollup has written yet."""

    month: str
    escalations: int
    first_actions: int
    avg_time_to_first_action_minutes: float | None
    manual_baseline_minutes: int
    minutes_recovered_per_escalation: float | None
    computed_at: datetime | None
    avg_time_to_claim_minutes: float | None = None
    escalated_to_admins: int = 0


@dataclass(frozen=True)
class RollupRun:
    """What one run did: rows upserted, accounts seen, batches (one query each), seconds."""

    rows: int
    accounts: int
    batches: int
    seconds: float
    months: tuple[str, ...]


def claim_figures(avg_claim_seconds: float | None, escalated_to_admins: int) -> dict[str, Any]:
    """The unclaimed-handoff figures: the average time to the first claim, in minutes (null
    with none), and how many handoffs reached the admin step."""
    return {
        "avg_time_to_claim_minutes": (
            None if avg_claim_seconds is None else round(float(avg_claim_seconds) / 60.0, DECIMALS)
        ),
        "escalated_to_admins": int(escalated_to_admins or 0),
    }


def figures(
    escalations: int, first_actions: int, avg_seconds: float | None, baseline: int
) -> dict[str, Any]:
    """The stored figures from the raw aggregates (the averages are null with nothing to
    average; minutes recovered can be negative when first actions take longer than before)."""
    if not first_actions or avg_seconds is None:
        avg_minutes = recovered = None
    else:
        exact = float(avg_seconds) / 60.0
        avg_minutes = round(exact, DECIMALS)
        recovered = round(baseline - exact, DECIMALS)
    return {
        "escalations": int(escalations),
        "first_actions": int(first_actions),
        "avg_time_to_first_action_minutes": avg_minutes,
        "manual_baseline_minutes": int(baseline),
        "minutes_recovered_per_escalation": recovered,
    }


Window = tuple[str, str, datetime, datetime]


def _windows_table(windows: list[Window]) -> Any:
    """The (time zone, month, start, end) windows as a VALUES common table expression."""
    return (
        values(
            column("timezone", String(64)),
            column("month", String(7)),
            column("start_at", DateTime),
            column("end_at", DateTime),
            name="windows",
        )
        .data(windows)
        .cte("windows")
    )


def _in_window(moment: Any, window: Any) -> Any:
    """The account's handoffs whose `moment` column falls in the window: an index range."""
    return and_(
        Handoff.account_id == Account.id, moment >= window.c.start_at, moment < window.c.end_at
    )


def _count_in(moment: Any, window: Any, label: str) -> Any:
    return select(func.count()).where(_in_window(moment, window)).scalar_subquery().label(label)


def _average_in(seconds: Any, moment: Any, window: Any, label: str) -> Any:
    return (
        select(func.avg(seconds)).where(_in_window(moment, window)).scalar_subquery().label(label)
    )


def _aggregate(first_id: int, last_id: int, windows: list[Window]) -> list[Any]:
    """One query for the accounts with ids first_id..last_id and their (time zone, month,
    start, end) windows: per account and window, the handoffs created in it, the first
    actions in it and their average TTFA in seconds, with the account's baseline.

    Windows are per time zone, not per account, so the statement stays small; accounts join
    them on their `timezone`. The figures are correlated subqueries rather than a join +
    GROUP BY: each is a range scan of an (account_id, timestamp) index, so a run reads only
    the months it recomputes. (With a join, PostgreSQL's planner cannot see the ranges'
    selectivity and hashes the whole table; see docs/metrics.md.)"""
    window = _windows_table(windows)
    acted_at, claimed_at = Handoff.first_action_at, Handoff.first_claimed_at
    query = (
        select(
            Account.id.label("account_id"),
            Account.manual_baseline_minutes.label("baseline"),
            window.c.month,
            _count_in(Handoff.created_at, window, "escalations"),
            _count_in(acted_at, window, "first_actions"),
            _average_in(Handoff.time_to_first_action_seconds, acted_at, window, "avg_seconds"),
            _average_in(Handoff.time_to_claim_seconds, claimed_at, window, "avg_claim_seconds"),
            _count_in(Handoff.escalated_to_admins_at, window, "escalated_to_admins"),
        )
        .join_from(Account, window, Account.timezone == window.c.timezone)
        .where(Account.id.between(first_id, last_id))
    )
    return list(db.session.execute(query))


def _upsert(rows: list[dict[str, Any]]) -> None:
    """Insert or overwrite each (account_id, month) row: a rerun rewrites the same figures."""
    statement = insert_on_conflict(MonthlyRollup)
    updated = {
        name: statement.excluded[name] for name in rows[0] if name not in ("account_id", "month")
    }
    statement = statement.on_conflict_do_update(
        index_elements=["account_id", "month"], set_=updated
    )
    db.session.execute(statement, rows)


def _account_batches(account_id: int | None, batch_size: int) -> Iterable[list[Any]]:
    """(id, timezone) of every account, in id order, a batch at a time."""
    query = select(Account.id, Account.timezone).order_by(Account.id)
    if account_id is not None:
        query = query.where(Account.id == account_id)
    after = 0
    while True:
        batch = list(db.session.execute(query.where(Account.id > after).limit(batch_size)))
        if not batch:
            return
        yield batch
        after = batch[-1].id


class _ZoneWindows:
    """The windows a run recomputes, per time zone, worked out once per zone: the given
    `months`, or (None) what a scheduled run does in that zone on `now`'s local date."""

    def __init__(self, months: Sequence[Month] | None, now: datetime, grace_days: int) -> None:
        self._months, self._now, self._grace_days = months, now, grace_days
        self._by_zone: dict[str, list[Window]] = {}

    def of_zone(self, name: str) -> list[Window]:
        if name not in self._by_zone:
            zone = zone_of(name)
            due = self._months
            if due is None:
                due = months_due(local_today(zone, self._now), self._grace_days)
            self._by_zone[name] = [
                (name, str(month), *utc_bounds(month, zone.key)) for month in due
            ]
        return self._by_zone[name]

    def of_accounts(self, accounts: Sequence[Any]) -> list[Window]:
        return [window for name in {a.timezone for a in accounts} for window in self.of_zone(name)]


def _rollup_rows(accounts: Sequence[Any], windows: list[Window], now: datetime) -> list[dict]:
    """One batch's rows to upsert, in (account, month) order: concurrent runs on
    PostgreSQL then lock rows in the same order."""
    rows = [
        {
            "account_id": result.account_id,
            "month": result.month,
            **figures(
                result.escalations, result.first_actions, result.avg_seconds, result.baseline
            ),
            **claim_figures(result.avg_claim_seconds, result.escalated_to_admins),
            "computed_at": now,
        }
        for result in _aggregate(accounts[0].id, accounts[-1].id, windows)
    ]
    rows.sort(key=lambda row: (row["account_id"], row["month"]))
    return rows


def roll_up(
    months: Sequence[Month] | None = None,
    account_id: int | None = None,
    now: datetime | None = None,
    grace_days: int = PREVIOUS_MONTH_GRACE_DAYS,
    batch_size: int = ACCOUNTS_PER_BATCH,
) -> RollupRun:
    """Recompute and upsert the rollup rows; one query and one transaction per batch of
    accounts.

    `months` None means what a scheduled run does: each account's current month in its
    time zone, plus the previous one in the month's first `grace_days` days. Otherwise the
    given months, for every account or just `account_id`. `now` (naive UTC) fixes the clock
    and is stored as computed_at.
    """
    started = time.perf_counter()
    now = now or utcnow()
    if account_id is not None and db.session.get(Account, account_id) is None:
        raise NotFound(f"No account with id {account_id}.")
    windows = _ZoneWindows(months, now, grace_days)
    rows_written = accounts_seen = batches = 0
    months_seen: set[str] = set()
    for accounts in _account_batches(account_id, batch_size):
        rows = _rollup_rows(accounts, windows.of_accounts(accounts), now)
        if rows:
            with transaction():
                _upsert(rows)
        rows_written += len(rows)
        accounts_seen += len(accounts)
        batches += 1
        months_seen.update(row["month"] for row in rows)
    seconds = time.perf_counter() - started
    log.info(
        "Rolled up %d account-months for %d accounts in %d batches (%.3f s)",
        rows_written,
        accounts_seen,
        batches,
        seconds,
    )
    return RollupRun(rows_written, accounts_seen, batches, seconds, tuple(sorted(months_seen)))


def _not_rolled_up(account: Account, month: Month) -> MonthlyMetrics:
    """A month without a row yet (before the first run, or never rolled up): zero counts,
    null averages, the account's current baseline, computed_at null."""
    return MonthlyMetrics(str(month), 0, 0, None, account.manual_baseline_minutes, None, None)


def metrics_for(account: Account, months: Sequence[Month]) -> list[MonthlyMetrics]:
    """The stored figures of `months` (in that order) for the account: primary-key reads."""
    wanted = [str(month) for month in months]
    stored = {
        row.month: row
        for row in db.session.scalars(
            select(MonthlyRollup).where(
                MonthlyRollup.account_id == account.id, MonthlyRollup.month.in_(wanted)
            )
        )
    }
    result = []
    for month in months:
        row = stored.get(str(month))
        if row is None:
            result.append(_not_rolled_up(account, month))
            continue
        result.append(
            MonthlyMetrics(
                row.month,
                row.escalations,
                row.first_actions,
                row.avg_time_to_first_action_minutes,
                row.manual_baseline_minutes,
                row.minutes_recovered_per_escalation,
                row.computed_at,
                row.avg_time_to_claim_minutes,
                row.escalated_to_admins,
            )
        )
    return result


# --- the month's distribution: median, p90 and per engineer ------------------------------


@dataclass(frozen=True)
class TtfaSummary:
    """Times to first action (seconds) of one group of handoffs: their count and figures."""

    count: int
    mean_seconds: float | None
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class EngineerFigures:
    user_id: int
    name: str
    ttfa: TtfaSummary
    minutes_recovered_per_escalation: float | None


@dataclass(frozen=True)
class MonthDistribution:
    """The first actions of one account-month read from the handoffs (not the rollup):
    the spread of TTFA, the hours recovered and the same per engineer who acted."""

    month: str
    baseline_minutes: int
    ttfa: TtfaSummary
    hours_recovered: float | None
    engineers: list[EngineerFigures]


def median(values: Sequence[float]) -> float | None:
    """The middle value; the mean of the two middle ones for an even count."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return None
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest rank: the smallest value that at least `share` of the values do not exceed."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(math.ceil(share * len(ordered)), 1)
    return ordered[rank - 1]


def summarize(seconds: Sequence[float]) -> TtfaSummary:
    if not seconds:
        return TtfaSummary(0, None, None, None)
    return TtfaSummary(
        len(seconds), sum(seconds) / len(seconds), median(seconds), percentile(seconds, 0.9)
    )


def _recovered(baseline: int, summary: TtfaSummary) -> float | None:
    if summary.mean_seconds is None:
        return None
    return round(baseline - summary.mean_seconds / 60.0, DECIMALS)


def month_distribution(account: Account, month: Month) -> MonthDistribution:
    """One account-month's first actions (one index range scan): median and p90 as well as
    the mean, the hours recovered (baseline − TTFA, summed over the first actions) and the
    figures per engineer who took the first actions, busiest first."""
    start, end = utc_bounds(month, zone_of(account.timezone).key)
    # Credited to whoever took the first action, not to whoever holds the handoff now (a
    # reassignment after the first action keeps it). Rows from before the column existed
    # were backfilled from the timeline; the claimer is the last resort.
    acted_by = func.coalesce(Handoff.first_action_by_id, Handoff.claimed_by_id)
    rows = db.session.execute(
        select(acted_by, User.name, Handoff.time_to_first_action_seconds)
        .join(User, User.id == acted_by)
        .where(
            Handoff.account_id == account.id,
            Handoff.first_action_at >= start,
            Handoff.first_action_at < end,
            Handoff.time_to_first_action_seconds.is_not(None),
        )
    ).all()
    baseline = account.manual_baseline_minutes
    overall = summarize([float(row[2]) for row in rows])
    hours = None
    if overall.count:
        hours = round(sum(baseline * 60.0 - float(row[2]) for row in rows) / 3600.0, DECIMALS)
    by_engineer: dict[int, tuple[str, list[float]]] = {}
    for user_id, name, seconds in rows:
        by_engineer.setdefault(user_id, (name, []))[1].append(float(seconds))
    engineers = [
        EngineerFigures(user_id, name, summarize(values), _recovered(baseline, summarize(values)))
        for user_id, (name, values) in by_engineer.items()
    ]
    engineers.sort(key=lambda e: (-e.ttfa.count, e.name, e.user_id))
    return MonthDistribution(str(month), baseline, overall, hours, engineers)


def recent_months(newest: Month, count: int) -> list[Month]:
    """`count` months ending with `newest`, newest first."""
    return [newest.shifted(-back) for back in range(count)]

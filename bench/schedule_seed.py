"""Schedules for the notification benchmarks (bench/notify_rule_bench.py): rotations and
overrides in one account, and one rotation per account with a shift starting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert

# Business hours Monday to Friday 09:00-17:00 in the account's zone.
WEEKDAYS = {"windows": [{"day": d, "start": "09:00", "end": "17:00"}
                        for d in ("mon", "tue", "wed", "thu", "fri")], "holidays": []}  # fmt: skip


def seed(account: Any, senior_ids: list[int], rotations: int, overrides: int) -> None:
    """`rotations` weekly rotations over the seniors and `overrides` overrides of 8 hours
    spread over December, with business hours, in `account`."""
    from models.db import db
    from models.entities import OnCallOverride, Rotation

    account.business_hours = WEEKDAYS
    rows = [
        {"account_id": account.id, "name": f"Rotation {n}", "shift_length_days": 7,
         "participants": [senior_ids[(n + k) % len(senior_ids)] for k in range(4)],
         "handoff_time": "09:00", "start_date": date(2026, 1, 5), "timezone": "America/Chicago"}
        for n in range(rotations)
    ]  # fmt: skip
    ids = list(db.session.scalars(insert(Rotation).returning(Rotation.id), rows))
    start = datetime(2026, 12, 1)
    overrides_rows = [
        {"account_id": account.id, "rotation_id": ids[n % len(ids)],
         "user_id": senior_ids[n % len(senior_ids)], "created_by_id": senior_ids[0],
         "start_at": start + timedelta(hours=7 * n % 720),
         "end_at": start + timedelta(hours=7 * n % 720 + 8)}
        for n in range(overrides)
    ]  # fmt: skip
    db.session.execute(insert(OnCallOverride), overrides_rows)
    db.session.flush()


def seed_shift_accounts(accounts: int) -> datetime:
    """`accounts` accounts, each with an engineer and a daily rotation handing off at 09:00
    UTC; returns 09:00:30 UTC on a day of theirs (every rotation's shift just began)."""
    from models.db import db
    from models.entities import Account, Rotation, User

    ids = list(db.session.scalars(insert(Account).returning(Account.id),
                                  [{"name": f"Shift {n}", "timezone": "UTC"}
                                   for n in range(accounts)]))  # fmt: skip
    users = list(db.session.scalars(insert(User).returning(User.id), [
        {"account_id": a, "name": f"Eng {a}", "email": f"eng@shift-{a}.bench", "role": "engineer"}
        for a in ids
    ]))  # fmt: skip
    db.session.execute(insert(Rotation), [
        {"account_id": a, "name": "Nights", "participants": [u], "shift_length_days": 1,
         "handoff_time": "09:00", "start_date": date(2026, 12, 1), "timezone": "UTC"}
        for a, u in zip(ids, users, strict=True)
    ])  # fmt: skip
    db.session.commit()
    return datetime(2026, 12, 7, 9, 0, 30, tzinfo=UTC)

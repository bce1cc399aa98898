"""Handoffs with controlled timestamps for the rollup tests, and a database per backend.

Timestamps are given in the account's local time and stored as naive UTC, exactly as the
domain stores them; time_to_first_action_seconds is derived the way the domain derives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from models import db
from models.accounts import create_account, create_user
from models.entities import FlowSession, Handoff
from tests.factories import Tenant, own_database


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> Iterator[str]:
    """Overrides conftest's: every test using it runs on SQLite and on PostgreSQL."""
    with own_database(request.param, tmp_path, prefix="rollup") as url:
        yield url


def tenant_without_passwords(name: str, timezone: str = "UTC", baseline: int = 45) -> Tenant:
    """Like factories.make_tenant (an admin, "tech", "eng", "eng2", API tokens), minus the
    password hashing that makes it slow; these tests never log in with a password."""
    slug = name.lower().replace(" ", "-")
    account, owner, token = create_account(
        name, f"{name} Owner", f"owner@{slug}.example", None, timezone, baseline
    )
    tenant = Tenant(account.id, {"admin": token}, {"admin": owner.id})
    for who, role in [("tech", "technician"), ("eng", "engineer"), ("eng2", "engineer")]:
        user, user_token = create_user(
            account, f"{name} {who.title()}", f"{who}@{slug}.example", role
        )
        tenant.tokens[who], tenant.users[who] = user_token, user.id
    return tenant


def utc(local: str, zone: str) -> datetime:
    """'2026-03-31 23:30' in `zone` as naive UTC."""
    moment = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC).replace(tzinfo=None)


def add_handoff(
    account_id: int,
    user_id: int,
    zone: str,
    created: str,
    first_action: str | None = None,
    kind: str | None = None,
) -> int:
    """Insert a resolved handoff (its own session) with local timestamps; return its id."""
    created_at = utc(created, zone)
    first_action_at = utc(first_action, zone) if first_action else None
    session_id = db.session.execute(
        insert(FlowSession)
        .values(
            account_id=account_id,
            technician_id=user_id,
            title=f"Session {created}",
            snapshot={},
            ai_assessment={},
            status="resolved",
            created_at=created_at,
        )
        .returning(FlowSession.id)
    ).scalar_one()
    handoff_id = db.session.execute(
        insert(Handoff)
        .values(
            account_id=account_id,
            session_id=session_id,
            escalated_by_id=user_id,
            status="resolved" if first_action_at else "open",
            title=f"Session {created}",
            reason="stuck",
            escalation_package={},
            created_at=created_at,
            claimed_by_id=user_id if first_action_at else None,
            claimed_at=created_at if first_action_at else None,
            first_action_at=first_action_at,
            first_action_kind=(kind or "chat") if first_action_at else None,
            time_to_first_action_seconds=(
                (first_action_at - created_at).total_seconds() if first_action_at else None
            ),
        )
        .returning(Handoff.id)
    ).scalar_one()
    db.session.commit()
    return handoff_id


CHICAGO = "America/Chicago"
TOKYO = "Asia/Tokyo"


def chicago_handoffs(account_id: int, user_id: int) -> None:
    """Chicago (baseline 45). DST starts 2026-03-08, so March starts 06:00 UTC and April
    05:00 UTC. By hand:

    - 2026-02: escalations 1 (c0); first actions none -> averages null.
    - 2026-03: escalations 4 (c1, c2, c3, c4); first actions c0 15, c1 30, c2 20 min
      -> avg 65/3 = 21.67, recovered 45 - 21.666... = 23.33.
    - 2026-04: escalations 2 (c5, c6); first actions c4 40, c5 60 min -> avg 50,
      recovered -5.0 (slower than the baseline).
    """
    add = lambda *args: add_handoff(account_id, user_id, CHICAGO, *args)  # noqa: E731
    # c0: escalated in February locally (already March in UTC), first action in March.
    add("2026-02-28 23:50", "2026-03-01 00:05", "psa_writeback")
    add("2026-03-01 00:15", "2026-03-01 00:45", "chat")  # c1
    add("2026-03-15 10:00", "2026-03-15 10:20", "psa_writeback")  # c2
    add("2026-03-20 09:00")  # c3: never acted on; counted, not averaged
    # c4: the last half hour of March locally (April 04:30 UTC), first action in April.
    add("2026-03-31 23:30", "2026-04-01 00:10", "chat")
    # c5: 00:30 CDT on April 1st is 05:30 UTC; a fixed CST offset would call it March.
    add("2026-04-01 00:30", "2026-04-01 01:30", "chat")
    add("2026-04-02 08:00")  # c6: never acted on


def tokyo_handoffs(account_id: int, user_id: int) -> None:
    """Tokyo (baseline 30, UTC+9). By hand:

    - 2026-03: escalations 2 (t1, t3); first actions t1 20 min -> avg 20, recovered 10.
    - 2026-04: escalations 2 (t2, t4); first actions t2 10, t4 6 min -> avg 8, recovered 22.
    """
    add = lambda *args: add_handoff(account_id, user_id, TOKYO, *args)  # noqa: E731
    add("2026-03-31 23:30", "2026-03-31 23:50", "psa_writeback")  # t1 (14:30 UTC)
    # t2: April locally but 2026-03-31 15:30 UTC: a UTC month would count it in March.
    add("2026-04-01 00:30", "2026-04-01 00:40", "chat")
    add("2026-03-10 12:00")  # t3: never acted on
    add("2026-04-01 09:00", "2026-04-01 09:06", "chat")  # t4


def figures(escalations, first_actions, avg, baseline, recovered) -> dict:
    return {
        "escalations": escalations,
        "first_actions": first_actions,
        "avg_time_to_first_action_minutes": avg,
        "manual_baseline_minutes": baseline,
        "minutes_recovered_per_escalation": recovered,
    }


EXPECTED = {
    "chicago": {
        "2026-02": figures(1, 0, None, 45, None),
        "2026-03": figures(4, 3, 21.67, 45, 23.33),
        "2026-04": figures(2, 2, 50.0, 45, -5.0),
    },
    "tokyo": {
        "2026-03": figures(2, 1, 20.0, 30, 10.0),
        "2026-04": figures(2, 2, 8.0, 30, 22.0),
    },
}

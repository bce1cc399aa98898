"""The schedule the notification rule reads: resolved once per dispatch or tick, from the
rows of models/oncall.py, at a winter and a summer date (UTC instants written out)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event

from models import oncall
from models.db import db
from models.entities import Account, User
from models.oncall_view import moment_for, moments_for, segments_in_progress


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def setup_schedule(tenant):
    account = db.session.get(Account, tenant.account_id)
    rotation = oncall.create_rotation(
        account,
        {
            "name": "Servers",
            "participants": [tenant.users["eng"], tenant.users["eng2"]],
            "shift_length_days": 7,
            "handoff_time": "09:00",
            "start_date": "2026-01-05",
            "timezone": "America/Chicago",
        },
    )
    account.timezone = "America/Chicago"
    account.business_hours = oncall.validate_business_hours(
        {"windows": [{"day": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue")]}
    )
    db.session.commit()
    return account, rotation


def test_moment_inside_and_outside_business_hours(app, tenant):
    account, rotation = setup_schedule(tenant)
    eng, eng2 = tenant.users["eng"], tenant.users["eng2"]
    # Winter: Monday 12 January 2026 09:00 CST = 15:00Z starts eng2's week (shift 1).
    inside = moment_for(account.id, utc(2026, 1, 12, 15, 30))
    assert inside.business_hours and inside.on_call == frozenset({eng2})
    outside = moment_for(account.id, utc(2026, 1, 12, 14, 59))
    assert not outside.business_hours and outside.on_call == frozenset({eng})
    # Summer: Monday 13 July 2026 is shift 27 (eng2); 09:00 CDT = 14:00Z.
    assert moment_for(account.id, utc(2026, 7, 13, 14, 0)).on_call == frozenset({eng2})
    assert moment_for(account.id, utc(2026, 7, 13, 13, 59)).on_call == frozenset({eng})
    admin = db.session.get(User, tenant.users["admin"])
    oncall.create_override(
        admin,
        {
            "rotation_id": rotation.id,
            "user_id": admin.id,
            "start": utc(2026, 7, 13, 12),
            "end": utc(2026, 7, 13, 20),
        },
    )
    assert moment_for(account.id, utc(2026, 7, 13, 14, 0)).on_call == frozenset({admin.id})
    progress = segments_in_progress(utc(2026, 7, 13, 12, 1), utc(2026, 7, 13, 11, 59))
    assert [(s.user_id, s.start, s.end) for s in progress] == [
        (admin.id, utc(2026, 7, 13, 12), utc(2026, 7, 13, 20))
    ]
    assert segments_in_progress(utc(2026, 7, 13, 12, 5), utc(2026, 7, 13, 12, 1)) == []


def test_many_accounts_resolve_in_one_set_of_queries(app, tenant, other_tenant):
    setup_schedule(tenant)
    setup_schedule(other_tenant)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        found = moments_for([tenant.account_id, other_tenant.account_id], utc(2026, 1, 12, 16))
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert found[tenant.account_id].on_call == frozenset({tenant.users["eng2"]})
    assert found[other_tenant.account_id].on_call == frozenset({other_tenant.users["eng2"]})
    assert len(statements) == 4


def test_an_account_without_a_schedule_is_inside_with_nobody_on_call(app, tenant):
    moment = moment_for(tenant.account_id, utc(2026, 1, 12, 3))
    assert moment.business_hours and moment.on_call == frozenset()

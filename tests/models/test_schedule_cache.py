"""The copy of each account's schedule and seniors a process keeps (models/schedule_cache.py):
served while the account's schedule version holds, never after a write the decision reads,
whichever session or process made it, and never across tenants.

The account: America/Chicago, business hours Monday 09:00-17:00; the rotation "Servers",
weekly on Monday 09:00 Chicago from 5 January 2026, eng then eng2. Instants written out:
- OUT = 2026-01-13T03:00Z (Monday 12 January 21:00 CST): outside; shift 1, eng2's (it began
  Monday 12 January 09:00 CST = 15:00Z).
- IN = 2026-01-12T16:00Z (Monday 10:00 CST): inside.
- LATE = 2026-01-12T22:00Z (Monday 16:00 CST, 22:00 UTC): inside in Chicago, outside in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from models import schedule_cache, tenancy
from models.db import db
from models.entities import Rotation
from models.schedule_cache import decision_inputs

OUT = datetime(2026, 1, 13, 3, 0, tzinfo=UTC)
IN = datetime(2026, 1, 12, 16, 0, tzinfo=UTC)
LATE = datetime(2026, 1, 12, 22, 0, tzinfo=UTC)
MONDAY = {"windows": [{"day": "mon", "start": "09:00", "end": "17:00"}], "holidays": []}


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    schedule_cache.clear()
    yield
    schedule_cache.clear()


@contextmanager
def counted() -> Iterator[list[str]]:
    statements: list[str] = []

    def listener(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)


def ok(answer, status: int = 200):
    assert answer.status_code == status, answer.get_data(as_text=True)
    return answer.get_json()


def servers(client, tenant) -> int:
    ok(
        client.patch(
            "/api/v1/account",
            json={"timezone": "America/Chicago", "business_hours": MONDAY},
            headers=tenant.auth("admin"),
        )
    )
    body = {
        "name": "Servers",
        "participants": [tenant.users["eng"], tenant.users["eng2"]],
        "shift_length_days": 7,
        "handoff_time": "09:00",
        "start_date": "2026-01-05",
        "timezone": "America/Chicago",
    }
    answer = client.post("/api/v1/oncall/rotations", json=body, headers=tenant.auth("admin"))
    return ok(answer, 201)["id"]


def seen(tenant, at: datetime) -> tuple[bool, list[str], dict[str, str]]:
    """What the next decision reads, in a session of its own: inside business hours, who
    is on call (by tenant name) and each active senior's notify_email (by name)."""
    db.session.remove()
    names = {user_id: who for who, user_id in tenant.users.items()}
    seniors, moment = decision_inputs(tenant.account_id, at)
    db.session.remove()
    on_call = sorted(names.get(u, f"#{u}") for u in moment.on_call)
    return (
        moment.business_hours,
        on_call,
        {names.get(p.user_id, "new"): p.notify_email for p in seniors},
    )


EVERYONE = {"admin": "when_offline", "eng": "when_offline", "eng2": "when_offline"}


def _override(client, tenant, rotation_id: int) -> int:
    body = {
        "rotation_id": rotation_id,
        "user_id": tenant.users["admin"],
        "start": "2026-01-13T00:00:00Z",
        "end": "2026-01-13T06:00:00Z",
    }
    return ok(client.post("/api/v1/oncall/overrides", json=body, headers=tenant.auth("admin")), 201)


Write = Callable[..., object]

# (write, the instant observed, what the decision reads before it, after it)
WRITES: dict[str, tuple[Write, datetime, tuple, tuple]] = {
    "create rotation": (
        lambda c, t, r: ok(
            c.post(
                "/api/v1/oncall/rotations",
                json={
                    "name": "Network",
                    "participants": [t.users["admin"]],
                    "shift_length_days": 7,
                    "handoff_time": "09:00",
                    "start_date": "2026-01-05",
                },
                headers=t.auth("admin"),
            ),
            201,
        ),
        OUT,
        (False, ["eng2"], EVERYONE),
        (False, ["admin", "eng2"], EVERYONE),
    ),
    "update rotation": (
        lambda c, t, r: ok(
            c.patch(
                f"/api/v1/oncall/rotations/{r}",
                json={"participants": [t.users["eng2"], t.users["eng"]]},
                headers=t.auth("admin"),
            )
        ),
        OUT,
        (False, ["eng2"], EVERYONE),
        (False, ["eng"], EVERYONE),
    ),
    "delete rotation": (
        lambda c, t, r: c.delete(f"/api/v1/oncall/rotations/{r}", headers=t.auth("admin")),
        OUT,
        (False, ["eng2"], EVERYONE),
        (False, [], EVERYONE),
    ),
    "create override": (
        lambda c, t, r: _override(c, t, r),
        OUT,
        (False, ["eng2"], EVERYONE),
        (False, ["admin"], EVERYONE),
    ),
    "business hours": (
        lambda c, t, r: ok(
            c.patch(
                "/api/v1/account",
                json={
                    "business_hours": {
                        "windows": [{"day": "mon", "start": "09:00", "end": "22:00"}]
                    }
                },
                headers=t.auth("admin"),
            )
        ),
        OUT,
        (False, ["eng2"], EVERYONE),
        (True, ["eng2"], EVERYONE),
    ),
    "holidays": (
        lambda c, t, r: ok(
            c.patch(
                "/api/v1/account",
                json={"business_hours": {**MONDAY, "holidays": ["2026-01-12"]}},
                headers=t.auth("admin"),
            )
        ),
        IN,
        (True, ["eng2"], EVERYONE),
        (False, ["eng2"], EVERYONE),
    ),
    "time zone": (
        lambda c, t, r: ok(
            c.patch("/api/v1/account", json={"timezone": "UTC"}, headers=t.auth("admin"))
        ),
        LATE,
        (True, ["eng2"], EVERYONE),
        (False, ["eng2"], EVERYONE),
    ),
    "deactivation": (
        lambda c, t, r: ok(
            c.patch(
                f"/api/v1/users/{t.users['eng2']}", json={"active": False}, headers=t.auth("admin")
            )
        ),
        OUT,
        (False, ["eng2"], EVERYONE),
        (False, [], {"admin": "when_offline", "eng": "when_offline"}),
    ),
    "role change": (
        lambda c, t, r: ok(
            c.patch(
                f"/api/v1/users/{t.users['eng2']}",
                json={"role": "technician"},
                headers=t.auth("admin"),
            )
        ),
        OUT,
        (False, ["eng2"], EVERYONE),
        (False, [], {"admin": "when_offline", "eng": "when_offline"}),
    ),
    "preferences": (
        lambda c, t, r: ok(
            c.patch("/api/v1/me", json={"notify_email": "never"}, headers=t.auth("eng"))
        ),
        OUT,
        (False, ["eng2"], EVERYONE),
        (False, ["eng2"], {**EVERYONE, "eng": "never"}),
    ),
    "new senior": (
        lambda c, t, r: ok(
            c.post(
                "/api/v1/users",
                json={
                    "name": "New",
                    "email": "new@alpha.example",
                    "role": "engineer",
                    "password": "a long new password",
                },
                headers=t.auth("admin"),
            ),
            201,
        ),
        OUT,
        (False, ["eng2"], EVERYONE),
        (False, ["eng2"], {**EVERYONE, "new": "when_offline"}),
    ),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_the_next_decision_sees_each_kind_of_write(app, client, tenant, kind):
    write, at, before, after = WRITES[kind]
    rotation_id = servers(client, tenant)
    assert seen(tenant, at) == before
    with counted() as statements:
        assert seen(tenant, at) == before
    assert len(statements) == 1, statements  # the version only: the copy served
    write(client, tenant, rotation_id)
    assert seen(tenant, at) == after
    with counted() as statements:
        assert seen(tenant, at) == after
    assert len(statements) == 1, statements


def test_a_deleted_override_is_gone_from_the_next_decision(app, client, tenant):
    rotation_id = servers(client, tenant)
    override_id = _override(client, tenant, rotation_id)["id"]
    assert seen(tenant, OUT)[1] == ["admin"]
    deleted = client.delete(f"/api/v1/oncall/overrides/{override_id}", headers=tenant.auth("admin"))
    assert deleted.status_code == 204
    assert seen(tenant, OUT)[1] == ["eng2"]


def test_a_write_by_another_process_is_seen(app, client, tenant, database_url):
    """Another process: its own engine and a plain session, nothing shared with this one
    but the database."""
    rotation_id = servers(client, tenant)
    assert seen(tenant, OUT)[1] == ["eng2"]
    other = create_engine(database_url)
    try:
        with Session(other) as session:
            session.get(Rotation, rotation_id).participants = [
                tenant.users["eng2"],
                tenant.users["admin"],
            ]
            session.commit()
    finally:
        other.dispose()
    assert seen(tenant, OUT)[1] == ["admin"]


def test_an_instant_far_from_the_copy_loads_again(app, client, tenant):
    servers(client, tenant)
    assert seen(tenant, OUT)[1] == ["eng2"]
    # 2026-03-03T03:00Z (Monday 2 March 21:00 CST) is shift 8, eng's: weeks past the copy.
    later = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
    with counted() as statements:
        assert seen(tenant, later)[1] == ["eng"]
    assert len(statements) > 1


def test_one_tenants_write_leaves_the_others_copy_and_answers(app, client, tenant, other_tenant):
    alpha_rotation = servers(client, tenant)
    servers(client, other_tenant)
    assert seen(tenant, OUT)[1] == ["eng2"]
    assert seen(other_tenant, OUT)[1] == ["eng2"]
    _override(client, tenant, alpha_rotation)
    assert seen(tenant, OUT)[1] == ["admin"]
    with counted() as statements:
        beta = seen(other_tenant, OUT)
    assert len(statements) == 1, statements  # beta's copy still holds
    assert beta == (False, ["eng2"], EVERYONE)
    _, moment = decision_inputs(other_tenant.account_id, OUT)
    assert moment.on_call == frozenset({other_tenant.users["eng2"]})


# Row-level security: another tenant's copy is never served -------------------------------


@pytest.fixture(scope="module")
def roles():
    from devstack.three_roles import migrate, three_role_database
    from tests.factories import postgres_url

    base = postgres_url()
    if base is None:
        pytest.skip("PostgreSQL not configured: set TEST_POSTGRES_URL (make test does)")
    with three_role_database(base, prefix="rlsc") as three:
        migrate(three)
        yield three


@pytest.mark.postgres
def test_under_row_security_another_tenants_copy_is_not_served(roles):
    from tests.factories import app_config, make_tenant, running_app

    with running_app(app_config(roles.runtime_url, **roles.config())) as rls_app:
        try:
            client = rls_app.test_client()
            alpha, beta = make_tenant("Alpha Cache"), make_tenant("Beta Cache")
            servers(client, alpha)
            with tenancy.use_tenant(alpha.account_id):
                seniors, moment = decision_inputs(alpha.account_id, OUT)
            assert moment.on_call == frozenset({alpha.users["eng2"]}) and len(seniors) == 3
            db.session.remove()
            with tenancy.use_tenant(beta.account_id):  # alpha's copy is in the cache
                assert schedule_cache.loaded(alpha.account_id, OUT) is None
                seniors, moment = decision_inputs(alpha.account_id, OUT)
            assert seniors == [] and moment.on_call == frozenset()
        finally:
            db.session.remove()
            tenancy.system_engine().dispose()
            db.engine.dispose()


def test_the_kept_copy_answers_every_instant_as_a_fresh_load(app, client, tenant):
    """Across the 8 March 2026 change (CST to CDT) with overrides across a handoff, one
    copy asked hour by hour (each rotation's segment reused while it lasts) agrees with the
    schedule loaded afresh for each instant."""
    from models import oncall

    rotation_id = servers(client, tenant)
    for user, start, end in (
        ("admin", "2026-03-08T06:00:00Z", "2026-03-08T10:00:00Z"),
        ("eng", "2026-03-09T13:00:00Z", "2026-03-09T16:00:00Z"),  # across 09:00 CDT = 14:00Z
        ("eng2", "2026-03-09T15:00:00Z", "2026-03-09T15:30:00Z"),  # later: wins inside
    ):
        body = {
            "rotation_id": rotation_id,
            "user_id": tenant.users[user],
            "start": start,
            "end": end,
        }
        ok(client.post("/api/v1/oncall/overrides", json=body, headers=tenant.auth("admin")), 201)
    db.session.remove()
    first = datetime(2026, 3, 6, 0, 0, tzinfo=UTC)
    kept = schedule_cache.schedule_at(tenant.account_id, first)
    for half_hours in range(2 * 24 * 6):
        at = first + timedelta(minutes=30 * half_hours)
        assert schedule_cache.schedule_at(tenant.account_id, at) is kept
        assert kept.on_call(at) == oncall.schedule_at(tenant.account_id, at).on_call(at), at
    # Monday 9 March 09:00 CDT = 14:00Z starts shift 9 (eng2); the overrides cut into it.
    names = {user_id: who for who, user_id in tenant.users.items()}
    for at, who in (
        (datetime(2026, 3, 8, 8, 0, tzinfo=UTC), "admin"),
        (datetime(2026, 3, 9, 13, 30, tzinfo=UTC), "eng"),
        (datetime(2026, 3, 9, 15, 10, tzinfo=UTC), "eng2"),
        (datetime(2026, 3, 9, 15, 45, tzinfo=UTC), "eng"),
        (datetime(2026, 3, 9, 16, 30, tzinfo=UTC), "eng2"),
    ):
        assert [names[s.user_id] for s in kept.on_call(at)] == [who], at


def test_the_copies_are_bounded_least_recently_used_first(app, client, tenant, monkeypatch):
    from tests.factories import make_tenant

    monkeypatch.setattr(schedule_cache, "MAX_ACCOUNTS", 2)
    others = [make_tenant("Gamma MSP"), make_tenant("Delta MSP")]
    decision_inputs(tenant.account_id, OUT)
    decision_inputs(others[0].account_id, OUT)
    decision_inputs(tenant.account_id, OUT)  # used again: now the most recent
    decision_inputs(others[1].account_id, OUT)
    kept = {account_id for _, account_id in schedule_cache._entries}
    assert kept == {tenant.account_id, others[1].account_id}

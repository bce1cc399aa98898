"""On call with row-level security enforced (three PostgreSQL roles): the schedule, the
overrides and the calendar feed work per tenant; the feed finds its account before the
tenant is known; another account's rotation stays 404."""

from __future__ import annotations

from collections.abc import Iterator

import icalendar
import pytest
from flask import Flask

from devstack.three_roles import ThreeRoles, migrate, three_role_database
from models import tenancy
from models.db import db
from tests.factories import app_config, make_tenant, postgres_url, running_app

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def roles() -> Iterator[ThreeRoles]:
    base = postgres_url()
    if base is None:
        pytest.skip("PostgreSQL not configured: set TEST_POSTGRES_URL (make test does)")
    with three_role_database(base, prefix="rlso") as three:
        migrate(three)
        yield three


@pytest.fixture
def rls_app(roles: ThreeRoles) -> Iterator[Flask]:
    with running_app(app_config(roles.runtime_url, **roles.config())) as app:
        yield app
        db.session.remove()
        tenancy.system_engine().dispose()
        db.engine.dispose()


def test_schedule_and_feed_under_row_security(rls_app):
    client = rls_app.test_client()
    alpha, beta = make_tenant("Alpha RLS"), make_tenant("Beta RLS")
    body = {
        "name": "Servers",
        "participants": [alpha.users["eng"], alpha.users["eng2"]],
        "shift_length_days": 7,
        "handoff_time": "09:00",
        "start_date": "2026-03-02",
        "timezone": "America/Chicago",
    }
    rotation = client.post("/api/v1/oncall/rotations", json=body, headers=alpha.auth("admin"))
    assert rotation.status_code == 201, rotation.get_json()
    rotation_id = rotation.get_json()["id"]
    cover = client.post(
        "/api/v1/oncall/overrides",
        json={
            "rotation_id": rotation_id,
            "user_id": alpha.users["eng2"],
            "start": "2026-03-03T00:00:00Z",
            "end": "2026-03-04T00:00:00Z",
        },
        headers=alpha.auth("eng2"),
    )
    assert cover.status_code == 201, cover.get_json()
    now = client.get("/api/v1/oncall/now?at=2026-03-03T12:00:00Z", headers=alpha.auth("tech"))
    assert [e["user"]["id"] for e in now.get_json()["on_call"]] == [alpha.users["eng2"]]
    # 2 March 09:00 CST = 15:00Z, then the override, then eng again until 9 March 14:00Z.
    shifts = client.get(
        "/api/v1/oncall/shifts?from=2026-03-02T15:00:00Z&to=2026-03-09T14:00:00Z",
        headers=alpha.auth("tech"),
    ).get_json()["items"]
    assert [(s["source"], s["start"]) for s in shifts] == [
        ("rotation", "2026-03-02T15:00:00Z"),
        ("override", "2026-03-03T00:00:00Z"),
        ("rotation", "2026-03-04T00:00:00Z"),
    ]
    assert client.get("/api/v1/oncall/rotations", headers=beta.auth("admin")).get_json() == {
        "items": []
    }
    path = f"/api/v1/oncall/rotations/{rotation_id}"
    assert client.patch(path, json={"name": "x"}, headers=beta.auth("admin")).status_code == 404
    url = client.post("/api/v1/me/calendar", headers=alpha.auth("eng")).get_json()["url"]
    feed = client.get(url.split("127.0.0.1:5000", 1)[-1])
    assert feed.status_code == 200, feed.get_data(as_text=True)
    events = icalendar.Calendar.from_ical(feed.data).walk("VEVENT")
    assert events and all(str(e["summary"]) == "On call: Servers" for e in events)

"""On call over the API: rotations, overrides, /oncall/now, /oncall/shifts and the calendar
feed, with shift boundaries written out by hand (UTC) at a winter and a summer date; roles
and tenancy."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar
import pytest
import time_machine

from tests.factories import both_databases
from tests.web.contract import assert_error, assert_field_errors

WEEKLY = {
    "name": "Servers",
    "shift_length_days": 7,
    "handoff_time": "09:00",
    "start_date": "2026-03-02",
    "timezone": "America/Chicago",
}


def make_rotation(client, tenant, **changes):
    body = {**WEEKLY, "participants": [tenant.users["eng"], tenant.users["eng2"]], **changes}
    response = client.post("/api/v1/oncall/rotations", json=body, headers=tenant.auth("admin"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def shifts(client, tenant, start, end, who="tech", **extra):
    query = {"from": start, "to": end, **extra}
    response = client.get("/api/v1/oncall/shifts", query_string=query, headers=tenant.auth(who))
    assert response.status_code == 200, response.get_json()
    return [
        (i["source"], i["user"] and i["user"]["id"], i["start"], i["end"])
        for i in response.get_json()["items"]
    ]


def override(client, tenant, rotation, who, user, start, end):
    return client.post(
        "/api/v1/oncall/overrides",
        json={
            "rotation_id": rotation["id"],
            "user_id": tenant.users[user],
            "start": start,
            "end": end,
        },
        headers=tenant.auth(who),
    )


def test_rotation_crud_and_its_answer(client, tenant):
    rotation = make_rotation(client, tenant)
    assert rotation["participants"] == [
        {"id": tenant.users["eng"], "name": "Alpha MSP Eng"},
        {"id": tenant.users["eng2"], "name": "Alpha MSP Eng2"},
    ]
    assert {k: rotation[k] for k in WEEKLY} == WEEKLY
    listed = client.get("/api/v1/oncall/rotations", headers=tenant.auth("tech")).get_json()
    assert [r["id"] for r in listed["items"]] == [rotation["id"]]
    changed = client.patch(
        f"/api/v1/oncall/rotations/{rotation['id']}",
        json={"name": "Network"},
        headers=tenant.auth("admin"),
    )
    assert changed.status_code == 200 and changed.get_json()["name"] == "Network"
    gone = client.delete(f"/api/v1/oncall/rotations/{rotation['id']}", headers=tenant.auth("admin"))
    assert gone.status_code == 204
    assert (
        client.get("/api/v1/oncall/rotations", headers=tenant.auth("admin")).get_json()["items"]
        == []
    )


def test_timezone_defaults_to_the_accounts(client, tenant):
    body = {k: v for k, v in WEEKLY.items() if k != "timezone"}
    body["participants"] = [tenant.users["eng"]]
    response = client.post("/api/v1/oncall/rotations", json=body, headers=tenant.auth("admin"))
    assert response.status_code == 201 and response.get_json()["timezone"] == "UTC"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"participants": "dup"}, "participants"),
        ({"participants": "tech"}, "participants"),
        ({"participants": "other"}, "participants"),
        ({"participants": []}, "participants"),
        ({"shift_length_days": 29}, "shift_length_days"),
        ({"shift_length_days": 0}, "shift_length_days"),
        ({"handoff_time": "24:00"}, "handoff_time"),
        ({"start_date": "2026-02-30"}, "start_date"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_rotations_are_422(client, tenant, other_tenant, change, field):
    people = {
        "dup": [tenant.users["eng"], tenant.users["eng"]],
        "tech": [tenant.users["tech"]],
        "other": [other_tenant.users["eng"]],
    }
    if isinstance(change.get("participants"), str):
        change = {"participants": people[change["participants"]]}
    body = {**WEEKLY, "participants": [tenant.users["eng"]], **change}
    response = client.post("/api/v1/oncall/rotations", json=body, headers=tenant.auth("admin"))
    assert_field_errors(response, field)


@both_databases
def test_technician_and_engineer_cannot_edit_rotations_and_other_accounts_are_404(
    client, tenant, other_tenant
):
    body = {**WEEKLY, "participants": [tenant.users["eng"]]}
    for who in ("tech", "eng"):
        response = client.post("/api/v1/oncall/rotations", json=body, headers=tenant.auth(who))
        assert_error(response, 403, "forbidden")
    rotation = make_rotation(client, tenant)
    path = f"/api/v1/oncall/rotations/{rotation['id']}"
    assert_error(client.patch(path, json={"name": "x"}, headers=other_tenant.auth("admin")), 404)
    assert_error(client.delete(path, headers=other_tenant.auth("admin")), 404)
    assert (
        client.get("/api/v1/oncall/rotations", headers=other_tenant.auth("admin")).get_json()[
            "items"
        ]
        == []
    )
    theirs = override(
        client, tenant, rotation, "eng", "eng", "2026-03-03T00:00:00Z", "2026-03-04T00:00:00Z"
    )
    assert theirs.status_code == 201
    theirs_rotation = client.post(
        "/api/v1/oncall/overrides",
        json={
            "rotation_id": rotation["id"],
            "user_id": other_tenant.users["admin"],
            "start": "2026-03-03T00:00:00Z",
            "end": "2026-03-04T00:00:00Z",
        },
        headers=other_tenant.auth("admin"),
    )
    assert_error(theirs_rotation, 404)
    query = {"from": "2026-03-03T00:00:00Z", "to": "2026-03-04T00:00:00Z"}
    query["rotation_id"] = rotation["id"]
    peek = client.get("/api/v1/oncall/shifts", query_string=query, headers=other_tenant.auth("eng"))
    assert_error(peek, 404)
    foreign = client.delete(
        f"/api/v1/oncall/overrides/{theirs.get_json()['id']}", headers=other_tenant.auth("admin")
    )
    assert_error(foreign, 404)


def test_weekly_chicago_shifts_across_the_spring_change(client, tenant):
    make_rotation(client, tenant)
    eng, eng2 = tenant.users["eng"], tenant.users["eng2"]
    # 2 March 09:00 CST = 15:00Z; 9 March 09:00 CDT = 14:00Z; clipped at both ends.
    assert shifts(client, tenant, "2026-03-03T00:00:00Z", "2026-03-10T00:00:00-06:00") == [
        ("rotation", eng, "2026-03-03T00:00:00Z", "2026-03-09T14:00:00Z"),
        ("rotation", eng2, "2026-03-09T14:00:00Z", "2026-03-10T06:00:00Z"),
    ]
    # Before start_date: a gap, no shift.
    assert shifts(client, tenant, "2026-03-01T00:00:00Z", "2026-03-02T16:00:00Z") == [
        ("gap", None, "2026-03-01T00:00:00Z", "2026-03-02T15:00:00Z"),
        ("rotation", eng, "2026-03-02T15:00:00Z", "2026-03-02T16:00:00Z"),
    ]


@both_databases
def test_oncall_now_with_an_override_at_winter_and_summer(client, tenant):
    rotation = make_rotation(client, tenant)
    eng, eng2, admin = tenant.users["eng"], tenant.users["eng2"], tenant.users["admin"]
    # Summer: Monday 26 October 09:00 CDT = 14:00Z starts shift 34 (eng); ends 2 November
    # 09:00 CST = 15:00Z.
    got = client.get(
        "/api/v1/oncall/now",
        query_string={"at": "2026-10-30T12:00:00Z"},
        headers=tenant.auth("tech"),
    )
    assert got.get_json() == {
        "at": "2026-10-30T12:00:00Z",
        "business_hours": True,
        "on_call": [
            {
                "rotation": {"id": rotation["id"], "name": "Servers"},
                "user": {"id": eng, "name": "Alpha MSP Eng"},
                "source": "rotation",
                "start": "2026-10-26T14:00:00Z",
                "end": "2026-11-02T15:00:00Z",
            }
        ],
    }
    # An override spanning the 2 November handoff (winter side).
    created = override(
        client, tenant, rotation, "admin", "admin", "2026-11-02T12:00:00Z", "2026-11-02T18:00:00Z"
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["created_by"]["id"] == admin
    now = client.get(
        "/api/v1/oncall/now?at=2026-11-02T15:30:00Z", headers=tenant.auth("eng")
    ).get_json()
    assert [(e["user"]["id"], e["source"], e["start"], e["end"]) for e in now["on_call"]] == [
        (admin, "override", "2026-11-02T12:00:00Z", "2026-11-02T18:00:00Z")
    ]
    assert shifts(client, tenant, "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z") == [
        ("rotation", eng, "2026-11-02T00:00:00Z", "2026-11-02T12:00:00Z"),
        ("override", admin, "2026-11-02T12:00:00Z", "2026-11-02T18:00:00Z"),
        ("rotation", eng2, "2026-11-02T18:00:00Z", "2026-11-03T00:00:00Z"),
    ]
    assert shifts(client, tenant, "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", user_id=eng2) == [
        ("rotation", eng2, "2026-11-02T18:00:00Z", "2026-11-03T00:00:00Z"),
    ]


def test_now_follows_the_clock_and_business_hours(client, tenant):
    make_rotation(client, tenant)
    hours = {"windows": [{"day": "mon", "start": "09:00", "end": "17:00"}], "holidays": []}
    client.patch(
        "/api/v1/account",
        json={"business_hours": hours, "timezone": "America/Chicago"},
        headers=tenant.auth("admin"),
    )
    with time_machine.travel(datetime(2026, 3, 9, 13, 59, tzinfo=UTC), tick=False):
        body = client.get("/api/v1/oncall/now", headers=tenant.auth("tech")).get_json()
    assert body["at"] == "2026-03-09T13:59:00Z" and body["business_hours"] is False
    assert body["on_call"][0]["user"]["id"] == tenant.users["eng"]
    with time_machine.travel(datetime(2026, 3, 9, 14, 0, tzinfo=UTC), tick=False):
        body = client.get("/api/v1/oncall/now", headers=tenant.auth("tech")).get_json()
    assert (
        body["business_hours"] is True and body["on_call"][0]["user"]["id"] == tenant.users["eng2"]
    )


def test_deactivated_participant_leaves_a_gap(client, tenant):
    make_rotation(
        client,
        tenant,
        participants=[tenant.users["eng"], tenant.users["eng2"], tenant.users["admin"]],
    )
    client.patch(
        f"/api/v1/users/{tenant.users['eng2']}",
        json={"active": False},
        headers=tenant.auth("admin"),
    )
    assert shifts(client, tenant, "2026-03-09T14:00:00Z", "2026-03-23T14:00:00Z") == [
        ("gap", None, "2026-03-09T14:00:00Z", "2026-03-16T14:00:00Z"),
        ("rotation", tenant.users["admin"], "2026-03-16T14:00:00Z", "2026-03-23T14:00:00Z"),
    ]
    empty = client.get(
        "/api/v1/oncall/now?at=2026-03-10T00:00:00Z", headers=tenant.auth("eng")
    ).get_json()
    assert empty["on_call"] == []


@both_databases
def test_overlapping_overrides_later_wins_and_roles(client, tenant):
    rotation = make_rotation(client, tenant)
    assert (
        override(
            client, tenant, rotation, "eng", "eng2", "2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z"
        ).status_code
        == 403
    )
    assert (
        override(
            client, tenant, rotation, "tech", "eng", "2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z"
        ).status_code
        == 403
    )
    first = override(
        client, tenant, rotation, "eng2", "eng2", "2026-03-04T00:00:00Z", "2026-03-04T12:00:00Z"
    )
    later = override(
        client, tenant, rotation, "admin", "admin", "2026-03-04T06:00:00Z", "2026-03-04T18:00:00Z"
    )
    assert first.status_code == later.status_code == 201
    admin, eng, eng2 = tenant.users["admin"], tenant.users["eng"], tenant.users["eng2"]
    assert shifts(client, tenant, "2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z") == [
        ("override", eng2, "2026-03-04T00:00:00Z", "2026-03-04T06:00:00Z"),
        ("override", admin, "2026-03-04T06:00:00Z", "2026-03-04T18:00:00Z"),
        ("rotation", eng, "2026-03-04T18:00:00Z", "2026-03-05T00:00:00Z"),
    ]
    listed = client.get(
        "/api/v1/oncall/overrides?from=2026-03-04T13:00:00Z&to=2026-03-05T00:00:00Z",
        headers=tenant.auth("tech"),
    )
    assert [o["id"] for o in listed.get_json()["items"]] == [later.get_json()["id"]]
    path = f"/api/v1/oncall/overrides/{later.get_json()['id']}"
    assert_error(client.delete(path, headers=tenant.auth("eng")), 403)
    assert (
        client.delete(
            f"/api/v1/oncall/overrides/{first.get_json()['id']}", headers=tenant.auth("eng2")
        ).status_code
        == 204
    )
    assert client.delete(path, headers=tenant.auth("admin")).status_code == 204


@pytest.mark.parametrize(
    "start, end, field",
    [
        ("2026-03-04T00:00:00Z", "2026-04-04T00:00:01Z", "end"),
        ("2026-03-04T00:00:00Z", "2026-03-04T00:00:00Z", "end"),
        ("2026-03-04T00:00:00", "2026-03-05T00:00:00Z", "start"),
        ("2026-03-04", "2026-03-05T00:00:00Z", "start"),
    ],
)
def test_bad_overrides_are_422(client, tenant, start, end, field):
    rotation = make_rotation(client, tenant)
    assert_field_errors(override(client, tenant, rotation, "admin", "eng", start, end), field)


def test_time_parameters_are_checked(client, tenant):
    make_rotation(client, tenant)
    auth = tenant.auth("tech")
    no_offset = client.get(
        "/api/v1/oncall/shifts?from=2026-03-04T00:00:00&to=2026-03-05T00:00:00Z", headers=auth
    )
    assert_field_errors(no_offset, "from")
    spaced = client.get(
        "/api/v1/oncall/shifts?from=2026-03-04T00:00:00+01:00&to=2026-03-05T00:00:00Z", headers=auth
    )
    assert "%2B" in assert_field_errors(spaced, "from")["from"][0]
    encoded = client.get(
        "/api/v1/oncall/shifts?from=2026-03-04T00:00:00%2B01:00&to=2026-03-05T00:00:00Z",
        headers=auth,
    )
    assert (
        encoded.status_code == 200
        and encoded.get_json()["items"][0]["start"] == "2026-03-03T23:00:00Z"
    )
    too_long = client.get(
        "/api/v1/oncall/shifts?from=2026-01-01T00:00:00Z&to=2026-04-04T00:00:01Z", headers=auth
    )
    assert_field_errors(too_long, "to")
    backwards = client.get(
        "/api/v1/oncall/shifts?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", headers=auth
    )
    assert_field_errors(backwards, "to")
    assert_field_errors(client.get("/api/v1/oncall/now?at=yesterday", headers=auth), "at")


def feed_events(client, url):
    response = client.get(url.split("127.0.0.1:5000", 1)[-1])
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    calendar = icalendar.Calendar.from_ical(response.data)
    return [
        (str(e["summary"]), e.decoded("dtstart"), e.decoded("dtend"), str(e["uid"]))
        for e in calendar.walk("VEVENT")
    ]


@both_databases
def test_calendar_feed_carries_only_the_callers_shifts_and_rotates(client, tenant):
    rotation = make_rotation(
        client,
        tenant,
        shift_length_days=1,
        start_date="2026-01-01",
        timezone="Europe/London",
        handoff_time="01:30",
    )
    eng = tenant.users["eng"]
    assert_error(client.post("/api/v1/me/calendar", headers=tenant.auth("tech")), 403)
    with time_machine.travel(datetime(2026, 3, 28, 12, tzinfo=UTC), tick=False):
        override(
            client, tenant, rotation, "eng2", "eng2", "2026-03-30T06:00:00Z", "2026-03-30T08:00:00Z"
        )
        url = client.post("/api/v1/me/calendar", headers=tenant.auth("eng")).get_json()["url"]
        assert url.startswith("http://") and "/oncall/calendar/" in url
        events = feed_events(client, url)
        # The feed spans 15 days back to 180 ahead: 13 March 12:00Z to 24 September 12:00Z.
        edges = ["2026-03-13T12:00:00Z", "2026-06-01T00:00:00Z", "2026-08-01T00:00:00Z"]
        edges.append("2026-09-24T12:00:00Z")
        mine = [
            item
            for start, end in zip(edges, edges[1:], strict=False)
            for item in shifts(client, tenant, start, end, user_id=eng)
        ]
    # 1 January 2026 is shift 0 (eng), so eng has the shifts of even days since then: 28
    # March (day 86) 01:30 GMT = 01:30Z to 29 March's 01:30, inside the gap, = 01:30Z (02:30
    # BST); 30 March (day 88) 01:30 BST = 00:30Z to 31 March 00:30Z, cut by eng2's override
    # from 06:00Z to 08:00Z.
    spans = [(start, end) for _, start, end, _ in events]
    for start, end in [
        (datetime(2026, 3, 28, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        (datetime(2026, 3, 30, 0, 30, tzinfo=UTC), datetime(2026, 3, 30, 6, 0, tzinfo=UTC)),
        (datetime(2026, 3, 30, 8, 0, tzinfo=UTC), datetime(2026, 3, 31, 0, 30, tzinfo=UTC)),
    ]:
        assert (start, end) in spans
    assert (
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ) not in spans
    assert all(summary == "On call: Servers" for summary, *_ in events)
    expected: list[tuple[str, str]] = []
    for _, user, start, end in mine:  # pieces cut by the windows' edges joined again
        assert user == eng
        if expected and expected[-1][1] == start:
            expected[-1] = (expected[-1][0], end)
        else:
            expected.append((start, end))
    got = [
        (s.strftime("%Y-%m-%dT%H:%M:%SZ"), e.strftime("%Y-%m-%dT%H:%M:%SZ"))
        for _, s, e, _ in events
    ]
    got.sort()
    # The feed keeps each segment's own bounds; the query clips the first and last.
    assert got[1:-1] == expected[1:-1] and len(expected) > 80
    assert got[0][0] <= expected[0][0] and got[0][1] == expected[0][1]
    assert got[-1][0] == expected[-1][0] and got[-1][1] >= expected[-1][1]
    assert len({uid for *_, uid in events}) == len(events)
    with time_machine.travel(datetime(2026, 3, 28, 13, tzinfo=UTC), tick=False):
        assert {uid for *_, uid in feed_events(client, url)} == {uid for *_, uid in events}
        rotated = client.post("/api/v1/me/calendar", headers=tenant.auth("eng")).get_json()["url"]
    assert rotated != url
    assert client.get(url.split("127.0.0.1:5000", 1)[-1]).status_code == 404
    assert client.delete("/api/v1/me/calendar", headers=tenant.auth("eng")).status_code == 204
    assert client.get(rotated.split("127.0.0.1:5000", 1)[-1]).status_code == 404
    assert client.get("/api/v1/oncall/calendar/not-a-feed.ics").status_code == 404

"""The seniors' queue over HTTP: customer and priority on sessions, the handoff summary,
filters, sorts, keyset paging, tab counts, and each senior's notification settings."""

from __future__ import annotations

import json

import pytest

from tests.factories import ASSESSMENT, SNAPSHOT, make_tenant
from tests.web.contract import assert_field_errors


def escalated(client, tenant, title, priority="p3", customer=None, who="tech"):
    body = {"title": title, "snapshot": SNAPSHOT, "ai_assessment": ASSESSMENT}
    body["priority"] = priority
    if customer is not None:
        body["customer"] = customer
    session = client.post("/api/v1/sessions", json=body, headers=tenant.auth(who))
    assert session.status_code == 201, session.get_json()
    handoff = client.post(
        f"/api/v1/sessions/{session.get_json()['id']}/escalate",
        json={"reason": f"Stuck on {title}"},
        headers=tenant.auth(who),
    )
    assert handoff.status_code == 201, handoff.get_json()
    return handoff.get_json()


def listed(client, tenant, query="", who="eng"):
    response = client.get(f"/api/v1/escalations?{query}", headers=tenant.auth(who))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def titles(page):
    return [item["title"] for item in page["items"]]


@pytest.fixture
def board(client, tenant):
    return make_board(client, tenant)


def make_board(client, tenant):
    """Five handoffs: two claimed by eng (one then resolved), one by eng2, two open."""
    made = {
        "printer": escalated(client, tenant, "Printer offline", "p4", "Globex"),
        "server": escalated(client, tenant, "Server down 100%", "p1", "Initech"),
        "mail": escalated(client, tenant, "Mail stuck", "p2", "globex"),
        "vpn": escalated(client, tenant, "VPN drops", "p1", None),
        "wifi": escalated(client, tenant, "Wifi slow", "p3", "Initech"),
    }
    for name, who in [("mail", "eng"), ("vpn", "eng"), ("wifi", "eng2")]:
        claim = client.post(
            f"/api/v1/escalations/{made[name]['id']}/claim", headers=tenant.auth(who)
        )
        assert claim.status_code == 200
    resolve = client.post(
        f"/api/v1/escalations/{made['vpn']['id']}/resolve", headers=tenant.auth("eng")
    )
    assert resolve.status_code == 200
    return made


def test_sessions_take_customer_and_priority_with_p3_by_default(client, tenant):
    body = {"title": "Laptop", "snapshot": {}}
    plain = client.post("/api/v1/sessions", json=body, headers=tenant.auth("tech")).get_json()
    assert (plain["priority"], plain["customer"]) == ("p3", None)
    rich = client.post(
        "/api/v1/sessions",
        json={**body, "priority": "p1", "customer": "  Initech  "},
        headers=tenant.auth("tech"),
    ).get_json()
    assert (rich["priority"], rich["customer"]) == ("p1", "Initech")
    shown = client.get(f"/api/v1/sessions/{rich['id']}", headers=tenant.auth("eng")).get_json()
    assert (shown["priority"], shown["customer"]) == ("p1", "Initech")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"priority": "p5"}, "priority"),
        ({"priority": 1}, "priority"),
        ({"customer": "x" * 201}, "customer"),
    ],
)
def test_bad_customer_or_priority_is_422_and_creates_nothing(client, tenant, body, field):
    response = client.post(
        "/api/v1/sessions", json={"title": "T", "snapshot": {}, **body}, headers=tenant.auth("tech")
    )
    assert_field_errors(response, field)
    assert client.get("/api/v1/sessions/1", headers=tenant.auth("tech")).status_code == 404


def test_list_items_are_summaries_with_what_a_card_needs(client, tenant, board):
    [item] = listed(client, tenant, "q=printer")["items"]
    assert set(item) >= {
        "id", "session_id", "status", "title", "reason", "escalated_by", "created_at",
        "claimed_by", "claimed_at", "ai_summary", "customer", "priority",
    }  # fmt: skip
    assert "escalation_package" not in item
    assert item["ai_summary"] == ASSESSMENT["summary"]
    assert item["ai_confidence"] == ASSESSMENT["confidence"]
    assert item["steps_tried"] == SNAPSHOT["steps"]
    assert (item["customer"], item["priority"]) == ("Globex", "p4")
    full = client.get(f"/api/v1/escalations/{item['id']}", headers=tenant.auth("eng")).get_json()
    assert "escalation_package" in full


def test_every_summary_stays_under_4_kb_whatever_the_input(client, tenant):
    emoji = "\U0001f525"
    huge = {
        "title": emoji * 200,
        "snapshot": {"steps_tried": [emoji * 500] * 20},
        "ai_assessment": {"summary": emoji * 5000},
        "customer": emoji * 200,
        "priority": "p1",
    }
    created = client.post("/api/v1/sessions", json=huge, headers=tenant.auth("tech"))
    assert created.status_code == 201, created.get_json()
    session = created.get_json()
    response = client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": emoji * 2000},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 201
    [item] = listed(client, tenant)["items"]
    assert len(json.dumps(item).encode()) <= 4096  # every non-ASCII character escaped
    assert len(json.dumps(item, ensure_ascii=False).encode()) <= 4096
    assert len(item["ai_summary"]) <= 500


def test_filters_by_priority_customer_title_and_people(client, tenant, board):
    everything = "status=all"
    assert titles(listed(client, tenant, f"{everything}&priority=p1")) == [
        "Server down 100%",
        "VPN drops",
    ]
    assert titles(listed(client, tenant, f"{everything}&customer=GLOBEX")) == [
        "Printer offline",
        "Mail stuck",
    ]
    # q is a piece of the title in any case; % and _ are plain characters.
    assert titles(listed(client, tenant, f"{everything}&q=DOWN")) == ["Server down 100%"]
    assert titles(listed(client, tenant, f"{everything}&q=0%25")) == ["Server down 100%"]
    assert titles(listed(client, tenant, f"{everything}&q=_")) == []
    assert titles(listed(client, tenant, "status=claimed&claimed_by=me")) == ["Mail stuck"]
    eng2 = tenant.users["eng2"]
    assert titles(listed(client, tenant, f"status=all&claimed_by={eng2}")) == ["Wifi slow"]
    assert titles(listed(client, tenant, "status=resolved&claimed_by=me")) == ["VPN drops"]
    tech = tenant.users["tech"]
    assert len(listed(client, tenant, f"{everything}&escalated_by={tech}")["items"]) == 5
    assert titles(listed(client, tenant, "priority=p4&customer=globex&q=print")) == [
        "Printer offline"
    ]


def test_sort_by_priority_then_oldest_and_every_sort_pages_exactly(client, tenant, board):
    expected = ["Server down 100%", "VPN drops", "Mail stuck", "Wifi slow", "Printer offline"]
    assert titles(listed(client, tenant, "status=all&sort=priority")) == expected
    oldest = ["Printer offline", "Server down 100%", "Mail stuck", "VPN drops", "Wifi slow"]
    for sort, order in [("priority", expected), ("oldest", oldest), ("newest", oldest[::-1])]:
        seen, cursor = [], None
        for _ in range(10):
            query = f"status=all&sort={sort}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = listed(client, tenant, query)
            seen += titles(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == order, sort


def test_a_new_arrival_between_pages_is_neither_repeated_nor_skipped(client, tenant, board):
    first = listed(client, tenant, "status=all&sort=priority&limit=2")
    escalated(client, tenant, "Late P1", "p1")  # after the older P1s: right after the cursor
    escalated(client, tenant, "Late P4", "p4")  # after everything: on the last page
    rest, cursor = [], first["next_cursor"]
    while cursor:
        page = listed(client, tenant, f"status=all&sort=priority&limit=2&cursor={cursor}")
        rest += titles(page)
        cursor = page["next_cursor"]
    assert titles(first) + rest == [
        "Server down 100%", "VPN drops", "Late P1", "Mail stuck", "Wifi slow",
        "Printer offline", "Late P4",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=newest-first", "sort"),
        ("priority=p9", "priority"),
        ("claimed_by=someone", "claimed_by"),
        ("claimed_by=me2", "claimed_by"),
        ("escalated_by=-1", "escalated_by"),
        ("q=" + "x" * 201, "q"),
        ("status=pending", "status"),
        ("cursor=!!!", "cursor"),
    ],
)
def test_bad_query_values_are_422_in_the_contracts_shape(client, tenant, query, field):
    response = client.get(f"/api/v1/escalations?{query}", headers=tenant.auth("eng"))
    assert_field_errors(response, field)


def test_a_cursor_of_one_sort_is_refused_by_another(client, tenant, board):
    cursor = listed(client, tenant, "status=all&sort=priority&limit=1")["next_cursor"]
    response = client.get(
        f"/api/v1/escalations?status=all&sort=oldest&cursor={cursor}", headers=tenant.auth("eng")
    )
    assert_field_errors(response, "cursor")


def test_tab_counts_follow_the_filters(client, tenant, board):
    counts = client.get("/api/v1/escalations/counts", headers=tenant.auth("eng")).get_json()
    assert counts == {"unclaimed": 2, "mine": 1, "claimed": 2, "resolved": 1}
    filtered = client.get(
        "/api/v1/escalations/counts?customer=initech", headers=tenant.auth("eng2")
    ).get_json()
    assert filtered == {"unclaimed": 1, "mine": 1, "claimed": 1, "resolved": 0}
    assert client.get("/api/v1/escalations/counts", headers=tenant.auth("tech")).status_code == 403


def test_other_accounts_never_show(client, tenant, other_tenant, board):
    escalated(client, other_tenant, "Their printer", "p1", "Globex")
    assert "Their printer" not in titles(listed(client, tenant, "status=all&customer=globex"))


def test_me_preferences_round_trip_and_partial_updates(client, tenant):
    me = client.get("/api/v1/me", headers=tenant.auth("eng")).get_json()
    assert (me["notify_email"], me["quiet_hours"], me["timezone"]) == ("when_offline", None, None)
    body = {"notify_email": "always", "quiet_hours": {"start": "22:00", "end": "07:00"},
            "timezone": "America/Chicago"}  # fmt: skip
    changed = client.patch("/api/v1/me", json=body, headers=tenant.auth("eng")).get_json()
    assert {key: changed[key] for key in body} == body
    only_email = client.patch(
        "/api/v1/me", json={"notify_email": "never"}, headers=tenant.auth("eng")
    ).get_json()
    assert only_email["quiet_hours"] == body["quiet_hours"]
    cleared = client.patch(
        "/api/v1/me", json={"quiet_hours": None, "timezone": None}, headers=tenant.auth("eng")
    ).get_json()
    assert (cleared["notify_email"], cleared["quiet_hours"], cleared["timezone"]) == (
        "never",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"notify_email": "sometimes"}, "notify_email"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "7:00", "end": "08:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "07:00", "end": "07:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "07:00"}}, "quiet_hours"),
        ({"quiet_hours": "night"}, "quiet_hours"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_bad_preferences_are_422_and_change_nothing(client, tenant, body, field):
    response = client.patch("/api/v1/me", json=body, headers=tenant.auth("eng"))
    assert_field_errors(response, field)
    me = client.get("/api/v1/me", headers=tenant.auth("eng")).get_json()
    assert (me["notify_email"], me["quiet_hours"], me["timezone"]) == ("when_offline", None, None)


@pytest.mark.postgres
def test_filters_sort_paging_and_counts_on_postgresql(postgres_app):
    client = postgres_app.test_client()
    tenant = make_tenant("Alpha MSP")
    make_board(client, tenant)
    test_filters_by_priority_customer_title_and_people(client, tenant, None)
    test_sort_by_priority_then_oldest_and_every_sort_pages_exactly(client, tenant, None)
    test_tab_counts_follow_the_filters(client, tenant, None)

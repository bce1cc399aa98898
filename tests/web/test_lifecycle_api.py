"""The escalation lifecycle over HTTP, as an API client sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from tests.factories import ASSESSMENT, SNAPSHOT, new_handoff, new_session


def test_escalate_writes_a_handoff_with_the_package_and_moves_the_session(client, tenant):
    session = new_session(client, tenant)
    response = client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": "Out of ideas", "notes": "Tried the usual"},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 201
    handoff = response.get_json()
    assert handoff["status"] == "open"
    assert handoff["title"] == "VPN drops every hour"
    assert handoff["escalated_by"] == {"id": tenant.users["tech"], "name": "Alpha MSP Tech"}
    package = handoff["escalation_package"]
    assert package["snapshot"] == SNAPSHOT
    assert package["ai_assessment"] == ASSESSMENT
    assert (package["reason"], package["notes"]) == ("Out of ideas", "Tried the usual")
    assert handoff["claimed_by"] is None and handoff["first_action_at"] is None
    assert handoff["created_at"].endswith("Z")

    detail = client.get(f"/api/v1/sessions/{session['id']}", headers=tenant.auth("tech")).get_json()
    assert detail["status"] == "escalated"
    assert detail["handoff"]["id"] == handoff["id"]


def test_idempotency_key_replays_the_same_handoff(client, tenant):
    session = new_session(client, tenant)
    url = f"/api/v1/sessions/{session['id']}/escalate"
    headers = {**tenant.auth("tech"), "Idempotency-Key": "abc-123"}
    first = client.post(url, json={"reason": "Stuck"}, headers=headers)
    again = client.post(url, json={"reason": "Stuck"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    queue = client.get("/api/v1/escalations", headers=tenant.auth("eng")).get_json()
    assert [h["id"] for h in queue["items"]] == [first.get_json()["id"]]


def test_a_second_live_escalation_is_a_conflict(client, tenant):
    handoff = new_handoff(client, tenant)
    response = client.post(
        f"/api/v1/sessions/{handoff['session_id']}/escalate",
        json={"reason": "Again"},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "already_escalated"


def test_claim_then_loser_sees_who_won_and_winner_can_claim_again(client, tenant):
    handoff = new_handoff(client, tenant)
    url = f"/api/v1/escalations/{handoff['id']}/claim"
    won = client.post(url, headers=tenant.auth("eng"))
    assert won.status_code == 200
    body = won.get_json()
    assert body["redirect_url"] == f"/pilot/{handoff['session_id']}"
    assert body["handoff"]["status"] == "claimed"
    assert body["handoff"]["claimed_by"]["id"] == tenant.users["eng"]

    lost = client.post(url, headers=tenant.auth("eng2"))
    assert lost.status_code == 409
    error = lost.get_json()["error"]
    assert error["code"] == "already_claimed"
    assert error["message"] == "Already claimed by Alpha MSP Eng"
    assert error["details"]["claimed_by"] == {"id": tenant.users["eng"], "name": "Alpha MSP Eng"}

    assert client.post(url, headers=tenant.auth("eng")).status_code == 200
    session = client.get(f"/api/v1/sessions/{handoff['session_id']}", headers=tenant.auth("eng"))
    assert session.get_json()["status"] == "active"


@pytest.mark.parametrize(
    "t0",
    [datetime(2026, 1, 20, 9, 0, tzinfo=UTC), datetime(2026, 7, 14, 9, 0, tzinfo=UTC)],
    ids=["winter", "summer"],
)
def test_first_action_is_the_claimers_first_message_not_the_technicians(client, tenant, t0):
    with time_machine.travel(t0, tick=False) as clock:
        handoff = new_handoff(client, tenant)
        session_url = f"/api/v1/sessions/{handoff['session_id']}"
        clock.move_to(t0 + timedelta(seconds=10))
        client.post(
            f"{session_url}/messages", json={"body": "anyone?"}, headers=tenant.auth("tech")
        )
        clock.move_to(t0 + timedelta(seconds=30))
        client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
        clock.move_to(t0 + timedelta(seconds=40))
        client.post(f"{session_url}/messages", json={"body": "me too"}, headers=tenant.auth("tech"))
        assert (
            client.get(
                f"/api/v1/escalations/{handoff['id']}", headers=tenant.auth("eng")
            ).get_json()["first_action_at"]
            is None
        )
        clock.move_to(t0 + timedelta(seconds=95))
        message = client.post(
            f"{session_url}/messages", json={"body": "On it"}, headers=tenant.auth("eng")
        ).get_json()
        clock.move_to(t0 + timedelta(seconds=120))
        client.post(
            f"{session_url}/psa-writeback", json={"note": "later"}, headers=tenant.auth("eng")
        )
        after = client.get(
            f"/api/v1/escalations/{handoff['id']}", headers=tenant.auth("eng")
        ).get_json()
    assert after["first_action_kind"] == "chat"
    assert after["first_action_at"] == message["created_at"]
    # Measured from the escalation's creation to the claimer's first message: 95 s by hand.
    assert after["time_to_first_action_seconds"] == 95.0
    detail = client.get(session_url, headers=tenant.auth("eng")).get_json()
    assert [m["body"] for m in detail["messages"]] == ["anyone?", "me too", "On it"]


def test_psa_writeback_first_counts_as_the_first_action(client, tenant):
    handoff = new_handoff(client, tenant)
    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
    session_url = f"/api/v1/sessions/{handoff['session_id']}"
    response = client.post(
        f"{session_url}/psa-writeback", json={"note": "Ticket updated"}, headers=tenant.auth("eng")
    )
    assert response.status_code == 201
    client.post(f"{session_url}/messages", json={"body": "hi"}, headers=tenant.auth("eng"))
    after = client.get(
        f"/api/v1/escalations/{handoff['id']}", headers=tenant.auth("eng")
    ).get_json()
    assert after["first_action_kind"] == "psa_writeback"


def test_resolve_by_the_claimer_and_not_by_another_engineer(client, tenant):
    handoff = new_handoff(client, tenant)
    url = f"/api/v1/escalations/{handoff['id']}"
    assert client.post(f"{url}/resolve", headers=tenant.auth("eng")).status_code == 409
    client.post(f"{url}/claim", headers=tenant.auth("eng"))
    assert client.post(f"{url}/resolve", headers=tenant.auth("eng2")).status_code == 403
    resolved = client.post(f"{url}/resolve", headers=tenant.auth("eng"))
    assert resolved.status_code == 200
    assert resolved.get_json()["status"] == "resolved"
    session = client.get(f"/api/v1/sessions/{handoff['session_id']}", headers=tenant.auth("eng"))
    assert session.get_json()["status"] == "resolved"
    # A resolved session can be escalated again.
    again = client.post(
        f"/api/v1/sessions/{handoff['session_id']}/escalate",
        json={"reason": "It came back"},
        headers=tenant.auth("tech"),
    )
    assert again.status_code == 201


def test_queue_is_oldest_first_and_paginates(client, tenant):
    ids = [new_handoff(client, tenant)["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        query = "/api/v1/escalations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query, headers=tenant.auth("eng")).get_json()
        seen += [h["id"] for h in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    client.post(f"/api/v1/escalations/{ids[0]}/claim", headers=tenant.auth("eng"))
    open_ids = [
        h["id"]
        for h in client.get("/api/v1/escalations", headers=tenant.auth("eng")).get_json()["items"]
    ]
    claimed = client.get(
        "/api/v1/escalations?status=claimed", headers=tenant.auth("eng")
    ).get_json()
    assert open_ids == ids[1:]
    assert [h["id"] for h in claimed["items"]] == ids[:1]


def test_users_me_and_account_settings(client, tenant):
    created = client.post(
        "/api/v1/users",
        json={"name": "New Eng", "email": "NEW@alpha.example", "role": "engineer"},
        headers=tenant.auth("admin"),
    )
    assert created.status_code == 201
    body = created.get_json()
    assert body["user"]["email"] == "new@alpha.example"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"}).get_json()
    assert me["role"] == "engineer" and me["account"]["id"] == tenant.account_id
    duplicate = client.post(
        "/api/v1/users",
        json={"name": "Again", "email": "new@alpha.example", "role": "engineer"},
        headers=tenant.auth("admin"),
    )
    assert duplicate.status_code == 409

    patched = client.patch(
        "/api/v1/account",
        json={"manual_baseline_minutes": 60, "timezone": "America/Chicago"},
        headers=tenant.auth("admin"),
    )
    assert patched.status_code == 200
    assert patched.get_json()["timezone"] == "America/Chicago"
    assert patched.get_json()["manual_baseline_minutes"] == 60
    bad = client.patch(
        "/api/v1/account", json={"timezone": "Mars/Olympus"}, headers=tenant.auth("admin")
    )
    assert bad.status_code == 422 and "timezone" in bad.get_json()["error"]["details"]


def test_openapi_document_is_generated_from_the_schemas(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/sessions/{session_id}/escalate" in spec["paths"]
    assert "Handoff" in spec["components"]["schemas"]


def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "redis": "unreachable",
        "psa": {"status": "ok", "broken_connections": []},
    }

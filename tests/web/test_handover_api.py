"""The escalation policy, release, reassign, the timeline and the TTFA they lead to, over
HTTP. Time is pinned with time-machine; expected values come from the fixed timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from models import rollup
from models.accounts import create_user
from models.entities import Account
from tests.factories import new_handoff
from tests.web.contract import assert_error, assert_field_errors, database_snapshot

T0 = datetime(2026, 3, 10, 9, 0, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def post(client, tenant, who: str, path: str, body: dict | None = None):
    return client.post(f"/api/v1{path}", json=body or {}, headers=tenant.auth(who))


# ------------------------------------------------------------------ the policy


def test_the_policy_has_defaults_and_takes_changes_and_nulls(client, tenant):
    me = client.get("/api/v1/me", headers=tenant.auth("admin")).get_json()
    assert me["account"]["renotify_after_minutes"] == 5
    assert me["account"]["renotify_max"] == 2
    assert me["account"]["escalate_to_admins_after_minutes"] == 15
    response = client.patch(
        "/api/v1/account",
        json={
            "renotify_after_minutes": None,
            "renotify_max": 10,
            "escalate_to_admins_after_minutes": 1440,
        },
        headers=tenant.auth("admin"),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["renotify_after_minutes"] is None
    assert (body["renotify_max"], body["escalate_to_admins_after_minutes"]) == (10, 1440)


@pytest.mark.parametrize(
    "field, value",
    [
        ("renotify_after_minutes", 0),
        ("renotify_after_minutes", 241),
        ("renotify_after_minutes", "5"),
        ("renotify_after_minutes", 2.5),
        ("renotify_max", -1),
        ("renotify_max", 11),
        ("renotify_max", None),
        ("escalate_to_admins_after_minutes", 0),
        ("escalate_to_admins_after_minutes", 1441),
        ("escalate_to_admins_after_minutes", True),
    ],
)
def test_a_bad_policy_value_is_422_and_changes_nothing(client, tenant, field, value):
    before = database_snapshot()
    response = client.patch("/api/v1/account", json={field: value}, headers=tenant.auth("admin"))
    assert_field_errors(response, field)
    assert database_snapshot() == before


def test_only_an_admin_sets_the_policy(client, tenant):
    response = client.patch("/api/v1/account", json={"renotify_max": 3}, headers=tenant.auth("eng"))
    assert_error(response, 403, "forbidden")


def test_a_policy_change_reschedules_open_handoffs(app, client, tenant):
    with time_machine.travel(T0, tick=False):
        handoff = new_handoff(client, tenant)
    from models import db
    from models.entities import Handoff

    assert db.session.get(Handoff, handoff["id"]).next_step_at == at(5).replace(tzinfo=None)
    client.patch(
        "/api/v1/account",
        json={"renotify_after_minutes": None, "escalate_to_admins_after_minutes": 30},
        headers=tenant.auth("admin"),
    )
    db.session.expire_all()
    assert db.session.get(Handoff, handoff["id"]).next_step_at == at(30).replace(tzinfo=None)


# ------------------------------------------------------------------ release


def test_release_reopens_it_and_another_senior_can_claim(client, tenant):
    handoff = new_handoff(client, tenant)
    hid = handoff["id"]
    assert post(client, tenant, "eng", f"/escalations/{hid}/claim").status_code == 200
    released = post(client, tenant, "eng", f"/escalations/{hid}/release", {"reason": "Wrong one"})
    assert released.status_code == 200, released.get_json()
    body = released.get_json()
    assert (body["status"], body["claimed_by"], body["claimed_at"]) == ("open", None, None)
    session = client.get(f"/api/v1/sessions/{handoff['session_id']}", headers=tenant.auth("tech"))
    assert session.get_json()["status"] == "escalated"
    claimed = post(client, tenant, "eng2", f"/escalations/{hid}/claim")
    assert claimed.get_json()["handoff"]["claimed_by"]["id"] == tenant.users["eng2"]


def test_release_rules(client, tenant):
    hid = new_handoff(client, tenant)["id"]
    path = f"/escalations/{hid}/release"
    assert_error(post(client, tenant, "eng", path, {"reason": "x"}), 409, "not_claimed")
    post(client, tenant, "eng", f"/escalations/{hid}/claim")
    assert_field_errors(post(client, tenant, "eng", path, {}), "reason")
    assert_field_errors(post(client, tenant, "eng", path, {"reason": "   "}), "reason")
    assert_error(post(client, tenant, "eng2", path, {"reason": "x"}), 403, "forbidden")
    assert_error(post(client, tenant, "tech", path, {"reason": "x"}), 403, "forbidden")
    # An admin may release someone else's claim.
    assert post(client, tenant, "admin", path, {"reason": "Rebalancing"}).status_code == 200


def test_another_accounts_handoff_is_404(client, tenant, other_tenant):
    hid = new_handoff(client, tenant)["id"]
    post(client, tenant, "eng", f"/escalations/{hid}/claim")
    for path, body in [
        (f"/escalations/{hid}/release", {"reason": "x"}),
        (f"/escalations/{hid}/reassign", {"user_id": other_tenant.users["eng"]}),
    ]:
        assert_error(post(client, other_tenant, "admin", path, body), 404, "not_found")
    response = client.get(f"/api/v1/escalations/{hid}/timeline", headers=other_tenant.auth("eng"))
    assert_error(response, 404, "not_found")


# ------------------------------------------------------------------ reassign


def test_reassign_gives_the_claim_to_the_target(client, tenant):
    hid = new_handoff(client, tenant)["id"]
    post(client, tenant, "eng", f"/escalations/{hid}/claim")
    response = post(
        client, tenant, "eng", f"/escalations/{hid}/reassign", {"user_id": tenant.users["eng2"]}
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "claimed"
    assert body["claimed_by"] == {"id": tenant.users["eng2"], "name": "Alpha MSP Eng2"}
    # The former holder no longer holds it.
    again = post(
        client, tenant, "eng", f"/escalations/{hid}/reassign", {"user_id": tenant.users["eng"]}
    )
    assert_error(again, 403, "forbidden")


def test_reassign_targets_must_be_seniors_of_the_account(client, tenant, other_tenant):
    hid = new_handoff(client, tenant)["id"]
    post(client, tenant, "eng", f"/escalations/{hid}/claim")
    path = f"/escalations/{hid}/reassign"
    before = database_snapshot()
    other = post(client, tenant, "eng", path, {"user_id": other_tenant.users["eng"]})
    assert_error(other, 404, "not_found")
    assert_error(post(client, tenant, "eng", path, {"user_id": 999_999}), 404, "not_found")
    assert_field_errors(
        post(client, tenant, "eng", path, {"user_id": tenant.users["tech"]}), "user_id"
    )
    assert_field_errors(post(client, tenant, "eng", path, {"user_id": "2"}), "user_id")
    assert_field_errors(post(client, tenant, "eng", path, {}), "user_id")
    assert database_snapshot() == before


# ------------------------------------------------------------------ timeline and TTFA


def test_ttfa_after_a_release_counts_from_creation_for_the_new_holder(app, client, tenant):
    """Fixed times: created 09:00, eng claims 09:03, releases 09:04, eng2 claims 09:06,
    eng (no longer holding it) writes 09:06:30, eng2 writes 09:08."""
    with time_machine.travel(T0, tick=False) as clock:
        handoff = new_handoff(client, tenant)
        hid, sid = handoff["id"], handoff["session_id"]
        clock.move_to(at(3))
        post(client, tenant, "eng", f"/escalations/{hid}/claim")
        clock.move_to(at(4))
        post(client, tenant, "eng", f"/escalations/{hid}/release", {"reason": "Not mine"})
        clock.move_to(at(6))
        post(client, tenant, "eng2", f"/escalations/{hid}/claim")
        clock.move_to(at(6.5))
        post(client, tenant, "eng", f"/sessions/{sid}/messages", {"body": "Any luck?"})
        clock.move_to(at(8))
        post(client, tenant, "eng2", f"/sessions/{sid}/messages", {"body": "On it"})
    got = client.get(f"/api/v1/escalations/{hid}", headers=tenant.auth("eng")).get_json()
    expected_ttfa = (at(8) - T0).total_seconds()  # 480: queue time included
    assert got["time_to_first_action_seconds"] == expected_ttfa == 480.0
    assert got["first_action_at"] == iso(at(8))
    assert got["first_action_kind"] == "chat"

    items = client.get(f"/api/v1/escalations/{hid}/timeline", headers=tenant.auth("tech"))
    changes = [i for i in items.get_json()["items"] if i["kind"] != "notified"]
    assert [(i["kind"], i["at"], i["actor"]["id"]) for i in changes] == [
        ("created", iso(T0), tenant.users["tech"]),
        ("claimed", iso(at(3)), tenant.users["eng"]),
        ("released", iso(at(4)), tenant.users["eng"]),
        ("claimed", iso(at(6)), tenant.users["eng2"]),
        ("first_action", iso(at(8)), tenant.users["eng2"]),
    ]
    assert changes[2]["details"]["reason"] == "Not mine"


def test_ttfa_after_a_reassignment_belongs_to_the_target(app, client, tenant):
    """Created 10:00; eng claims at +2 min and reassigns to eng2 at +5; eng's note at +5.5
    does not count; eng2's PSA writeback at +12 does: TTFA 720 s."""
    with time_machine.travel(T0, tick=False) as clock:
        handoff = new_handoff(client, tenant)
        hid, sid = handoff["id"], handoff["session_id"]
        clock.move_to(at(2))
        post(client, tenant, "eng", f"/escalations/{hid}/claim")
        clock.move_to(at(5))
        post(
            client, tenant, "eng", f"/escalations/{hid}/reassign", {"user_id": tenant.users["eng2"]}
        )
        clock.move_to(at(5.5))
        post(client, tenant, "eng", f"/sessions/{sid}/psa-writeback", {"note": "handing over"})
        clock.move_to(at(12))
        post(client, tenant, "eng2", f"/sessions/{sid}/psa-writeback", {"note": "fixed DNS"})
        clock.move_to(at(13))
        post(client, tenant, "eng2", f"/escalations/{hid}/resolve")
    got = client.get(f"/api/v1/escalations/{hid}", headers=tenant.auth("eng")).get_json()
    assert got["time_to_first_action_seconds"] == (at(12) - T0).total_seconds() == 720.0
    assert got["first_action_kind"] == "psa_writeback"
    items = client.get(f"/api/v1/escalations/{hid}/timeline", headers=tenant.auth("eng"))
    kinds = [i["kind"] for i in items.get_json()["items"] if i["kind"] != "notified"]
    assert kinds == ["created", "claimed", "reassigned", "first_action", "resolved"]
    reassigned = next(i for i in items.get_json()["items"] if i["kind"] == "reassigned")
    assert reassigned["details"]["from"]["id"] == tenant.users["eng"]
    assert reassigned["details"]["to"]["id"] == tenant.users["eng2"]

    # The rollup: the first claim came 2 minutes after creation (a reassignment keeps it).
    rollup.roll_up(months=[rollup.Month(2026, 3)], now=at(60).replace(tzinfo=None))
    metrics = client.get(
        "/api/v1/analytics/escalation-metrics?month=2026-03", headers=tenant.auth("admin")
    ).get_json()
    assert metrics["avg_time_to_claim_minutes"] == 2.0
    assert metrics["avg_time_to_first_action_minutes"] == 12.0
    assert metrics["escalated_to_admins"] == 0


def test_timeline_lists_notifications_with_their_state(app, client, tenant):
    from workers import fanout

    handoff = new_handoff(client, tenant)
    from models import db
    from models.entities import OutboxEvent

    event = db.session.query(OutboxEvent).filter_by(handoff_id=handoff["id"]).one()
    # The dispatch takes the room broadcast; until it finishes the delivery stays pending.
    assert fanout.deliveries.claim_socket_delivery(event, fanout.SOCKET_LEASE) is not None
    items = client.get(
        f"/api/v1/escalations/{handoff['id']}/timeline", headers=tenant.auth("eng")
    ).get_json()["items"]
    notified = [i for i in items if i["kind"] == "notified"]
    assert notified and notified[0]["details"]["channel"] == "socket"
    assert notified[0]["details"]["status"] == "pending"
    assert notified[0]["actor"] is None


def test_admins_may_be_targets(app, client, tenant):
    from models import db

    account = db.session.get(Account, tenant.account_id)
    other_admin, _ = create_user(account, "Ada Admin", "ada@alpha.example", "admin")
    hid = new_handoff(client, tenant)["id"]
    post(client, tenant, "eng", f"/escalations/{hid}/claim")
    response = post(
        client, tenant, "admin", f"/escalations/{hid}/reassign", {"user_id": other_admin.id}
    )
    assert response.get_json()["claimed_by"]["id"] == other_admin.id

"""Autotask PSA behind the same connector interface, against the Autotask stand-in
(tests/psa_fake/autotask.py): connecting (the zone found from the API user's name, the
secrets sealed, no callback), testing in words, the writeback through the outbox with its
retries and without duplicates, 401 told apart from 403, and polling that finds the
claiming senior's note as the first action."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from html import unescape

import time_machine
from sqlalchemy import select

from models import db, tenancy
from models.entities import Delivery, Handoff, PsaConnection, User
from tests.factories import ASSESSMENT, SNAPSHOT, with_three_roles
from tests.integration.services import free_port
from tests.psa.factories import AUTOTASK_TICKET, PSA_TIMEOUT, make_due
from tests.psa.test_writeback import dispatch_latest, state, write_back
from workers import psa as psa_tasks

URL = "/api/v1/account/psa"
TICKET = AUTOTASK_TICKET


def connect(client, tenant, fake_at, **overrides) -> dict:
    response = client.put(
        URL, json=fake_at.connection_body(**overrides), headers=tenant.auth("admin")
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def session_with_ticket(client, tenant, ticket: str = TICKET) -> int:
    body = {"title": "VPN down", "snapshot": SNAPSHOT, "ai_assessment": ASSESSMENT,
            "psa_ticket_id": ticket}  # fmt: skip
    response = client.post("/api/v1/sessions", json=body, headers=tenant.auth("tech"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def delivery_id() -> int:
    return db.session.scalar(select(Delivery.id).where(Delivery.channel == "psa"))


def post(delivery: int) -> str:
    return psa_tasks.post_note.run(delivery)


def _test(client, tenant, body=None) -> dict:
    response = client.post(f"{URL}/test", json=body, headers=tenant.auth("admin"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# ---------------------------------------------------------------- the connection


def test_saving_finds_the_zone_seals_the_secrets_and_registers_no_callback(client, tenant, fake_at):
    body = connect(client, tenant, fake_at)
    assert body == {
        "kind": "autotask",
        "username": "api-user@acme.example",
        "zone_url": fake_at.zone_url,
        "status": "connected",
        "message": None,
        "callback_url": None,
    }
    (lookup,) = fake_at.calls("GET", r"/zoneInformation$")
    assert lookup.query == {"user": ["api-user@acme.example"]}
    assert "secret" not in lookup.headers  # the look-up is sent no secret
    row = db.session.scalar(select(PsaConnection))
    assert fake_at.secret not in row.secrets and fake_at.integration_code not in row.secrets
    assert fake_at.secret not in (row.public_settings or "")
    assert fake_at.integration_code not in (row.public_settings or "")
    shown = client.get(URL, headers=tenant.auth("admin")).get_json()
    assert shown == body
    assert len(fake_at.requests) == 1  # the zone look-up only: Autotask has no callbacks


def test_bad_input_is_422_in_the_contracts_shape_and_saves_nothing(client, tenant, fake_at):
    admin = tenant.auth("admin")
    cases = [
        ({"kind": "autotask", "username": "api-user@acme.example", "secret": "s"},
         "integration_code"),
        ({"kind": "autotask", "secret": "s", "integration_code": "c"}, "username"),
        ({**fake_at.connection_body(), "username": "u" * 101}, "username"),
        ({**fake_at.connection_body(), "secret": 12}, "secret"),
        ({**fake_at.connection_body(), "kind": "halopsa"}, "kind"),
    ]  # fmt: skip
    for body, field in cases:
        response = client.put(URL, json=body, headers=admin)
        assert response.status_code == 422, (body, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == "validation_error" and field in error["details"], error
    unknown = client.put(URL, json=fake_at.connection_body(username="nobody@x"), headers=admin)
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["message"].startswith("Unknown user")
    assert "username" in unknown.get_json()["error"]["details"]
    not_json = client.put(
        URL, data=b"[1, 2]", headers={**admin, "Content-Type": "application/json"}
    )
    assert not_json.status_code in (400, 422) and "error" in not_json.get_json()
    engineer = client.put(URL, json=fake_at.connection_body(), headers=tenant.auth("eng"))
    assert engineer.status_code == 403
    assert db.session.scalar(select(PsaConnection)) is None


def test_another_account_sees_none_of_it(client, tenant, other_tenant, fake_at):
    connect(client, tenant, fake_at)
    theirs = client.get(URL, headers=other_tenant.auth("admin")).get_json()
    assert theirs == {"kind": None, "status": "not_connected", "callback_url": None}
    assert _test(client, other_tenant)["message"] == "No PSA connection is saved for this account."
    assert client.delete(URL, headers=other_tenant.auth("admin")).status_code == 204
    assert client.get(URL, headers=tenant.auth("admin")).get_json()["kind"] == "autotask"


def test_the_test_says_in_words_what_is_wrong(client, tenant, fake_at):
    good = fake_at.connection_body()
    ok = _test(client, tenant, good)
    assert ok == {"ok": True, "message": f"Connected to Autotask as {fake_at.username} "
                                         f"(zone {fake_at.zone_url})."}  # fmt: skip
    wrong_secret = _test(client, tenant, {**good, "secret": "wrong"})
    assert wrong_secret["ok"] is False and wrong_secret["message"].startswith("Bad credentials")
    wrong_code = _test(client, tenant, {**good, "integration_code": "OTHER"})
    assert wrong_code["message"].startswith("Bad credentials") and "401" in wrong_code["message"]
    unknown = _test(client, tenant, {**good, "username": "nobody@acme.example"})
    assert unknown["ok"] is False and unknown["message"].startswith("Unknown user")
    missing = _test(client, tenant, {**good, "integration_code": ""})
    assert missing["ok"] is False and "integration code" in missing["message"]
    fake_at.fail_next("GET", r"/entityInformation$", 403, message="Access denied")
    forbidden = _test(client, tenant, good)
    assert forbidden["ok"] is False and forbidden["message"].startswith("Missing permission")
    assert "403" in forbidden["message"] and "Bad credentials" not in forbidden["message"]
    fake_at.can_create_notes = False
    cannot = _test(client, tenant, good)
    assert cannot["message"] == (
        f"Missing permission: the API user {fake_at.username!r} may not create ticket notes; "
        "change its security level."
    )


def test_an_unreachable_zone_look_up_is_said_in_words(client, tenant, fake_at, app):
    app.config["PSA_AUTOTASK_ZONE_URL"] = f"http://127.0.0.1:{free_port()}/atservicesrest"
    result = _test(client, tenant, fake_at.connection_body())
    assert result["ok"] is False and result["message"].startswith("Unreachable")


# ---------------------------------------------------------------- writeback


def test_the_note_goes_through_the_outbox_to_the_ticket_once(client, tenant, fake_at):
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant)
    body = write_back(client, tenant, session_id, "Reset the VPN profile")
    assert body["delivery"]["status"] == "pending"
    assert dispatch_latest() == "sent"
    assert post(delivery_id()) == "sent"
    (note,) = fake_at.notes(TICKET)
    assert note["description"].startswith("Reset the VPN profile")
    assert (note["ticketID"], note["publish"], note["title"]) == (int(TICKET), 1, "Escalation Mode")
    (call,) = fake_at.calls("POST", rf"/Tickets/{TICKET}/Notes$")
    assert call.headers["apiintegrationcode"] == fake_at.integration_code
    assert call.headers["username"] == fake_at.username
    assert call.headers["secret"] == fake_at.secret
    assert state(client, tenant, session_id)["psa_note_id"] == str(note["id"])
    assert post(delivery_id()) == "skipped" and dispatch_latest() == "skipped"
    assert len(fake_at.notes(TICKET)) == 1


def test_429_and_5xx_and_a_hang_are_retried_and_the_note_is_posted_once(client, tenant, fake_at):
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_at.fail_next("POST", r"/Notes$", 429, retry_after="120")
    assert post(delivery_id()) == "retrying"
    row = db.session.get(Delivery, delivery_id())
    assert "429" in row.last_error
    assert row.next_attempt_at >= datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=115)
    make_due(delivery_id())
    fake_at.fail_next("POST", r"/Notes$", 503)
    assert post(delivery_id()) == "retrying"
    assert "503" in state(client, tenant, session_id)["last_error"]
    make_due(delivery_id())
    fake_at.hang_next("POST", r"/TicketNotes/query$", PSA_TIMEOUT * 3)  # the look-up first
    assert post(delivery_id()) == "retrying"
    assert "did not answer within" in state(client, tenant, session_id)["last_error"]
    make_due(delivery_id())
    assert post(delivery_id()) == "sent"
    assert len(fake_at.notes(TICKET)) == 1
    assert state(client, tenant, session_id)["attempts"] == 4


def test_a_note_created_but_its_answer_lost_is_found_not_posted_again(client, tenant, fake_at):
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant)
    for n in range(3):
        fake_at.add_note(TICKET, f"typed by hand {n}", fake_at.api_resource_id)
    write_back(client, tenant, session_id)
    fake_at.drop_after_create_next()
    assert post(delivery_id()) == "retrying"
    created = fake_at.notes(TICKET)[-1]
    make_due(delivery_id())
    assert post(delivery_id()) == "sent"
    assert fake_at.notes(TICKET)[-1] == created and len(fake_at.notes(TICKET)) == 4
    assert len(fake_at.calls("POST", r"/Notes$")) == 1
    assert state(client, tenant, session_id)["psa_note_id"] == str(created["id"])
    # The look-up was bounded: this ticket, notes created since the writeback (less a margin).
    (lookup,) = fake_at.calls("POST", r"/TicketNotes/query$")
    ticket, since = lookup.body["filter"]
    assert ticket == {"op": "eq", "field": "ticketID", "value": int(TICKET)}
    assert (since["op"], since["field"]) == ("gte", "createDateTime")


def test_a_hang_that_creates_the_note_late_is_not_posted_again(client, tenant, fake_at):
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_at.hang_next("POST", r"/Notes$", PSA_TIMEOUT * 3)
    assert post(delivery_id()) == "retrying"
    deadline = time.monotonic() + 5
    while not fake_at.notes(TICKET) and time.monotonic() < deadline:
        time.sleep(0.05)
    (late,) = fake_at.notes(TICKET)
    make_due(delivery_id())
    assert post(delivery_id()) == "sent"
    assert fake_at.notes(TICKET) == [late]


def test_401_breaks_the_connection_but_403_only_fails_the_note_and_says_why(
    client, tenant, fake_at
):
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id, "first")
    fake_at.fail_next(
        "POST", r"/Notes$", 403,
        message="The logged in Resource does not have the adequate permissions to create "
                "this entity type.",
    )  # fmt: skip
    assert post(delivery_id()) == "failed"
    refused = state(client, tenant, session_id)
    assert refused["last_error"].startswith("Missing permission: the credentials work")
    assert "adequate permissions" in refused["last_error"]
    assert db.session.scalar(select(PsaConnection)).status == "connected"
    # Now the secret is changed in Autotask: 401, the connection is broken.
    fake_at.secret = "rotated"
    second = write_back(client, tenant, session_id, "second")
    second_id = db.session.scalar(
        select(Delivery.id).where(Delivery.channel == "psa").order_by(Delivery.id.desc())
    )
    assert second["delivery"]["status"] == "pending"
    assert post(second_id) == "failed"
    broken = client.get(URL, headers=tenant.auth("admin")).get_json()
    assert broken["status"] == "broken" and broken["message"].startswith("Bad credentials")
    assert "401" in broken["message"]
    assert fake_at.notes(TICKET) == []


def test_a_ticket_id_autotask_cannot_have_fails_with_words(client, tenant, fake_at):
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant, ticket="T20261207.0001")
    write_back(client, tenant, session_id)
    assert post(delivery_id()) == "failed"
    assert "ticket ids are numbers" in state(client, tenant, session_id)["last_error"]
    assert fake_at.calls("POST", r"/Notes$") == []


# ---------------------------------------------------------------- polling


CLAIMED_AT = datetime(2026, 3, 9, 14, 0, 0)


@with_three_roles
def test_polling_finds_the_claiming_seniors_note_as_the_first_action(client, tenant, fake_at, app):
    """Also with row security enforced: the beat's poll finds the ticket through the
    system role, and the read runs as the account its task names."""
    tenancy.set_tenant(tenant.account_id)  # the test reads as the account's own pages do
    with time_machine.travel(datetime(2026, 3, 9, 13, 55, tzinfo=UTC), tick=False) as clock:
        connect(client, tenant, fake_at)
        session_id = session_with_ticket(client, tenant)
        escalated = client.post(
            f"/api/v1/sessions/{session_id}/escalate", json={"reason": "VPN"},
            headers=tenant.auth("tech"),
        ).get_json()  # fmt: skip
        clock.move_to(datetime(2026, 3, 9, 14, 0, tzinfo=UTC))
        claim = client.post(
            f"/api/v1/escalations/{escalated['id']}/claim", headers=tenant.auth("eng")
        )
        assert claim.status_code == 200
        claimer = db.session.get(User, tenant.users["eng"])
        other = db.session.get(User, tenant.users["eng2"])
        fake_at.add_resource(401, "eng.alpha", claimer.email.upper())
        fake_at.add_resource(402, "eng2.alpha", other.email)
        fake_at.add_note(TICKET, "looked before the claim", 401, datetime(2026, 3, 9, 13, 58))
        fake_at.add_note(TICKET, "someone else", 402, datetime(2026, 3, 9, 14, 1))
        fake_at.add_note(TICKET, "re-issued the VPN cert", 401, datetime(2026, 3, 9, 14, 2, 30))
        clock.move_to(datetime(2026, 3, 9, 14, 3, tzinfo=UTC))
        queued: list = []
        celery = app.extensions["celery"]
        original = celery.send_task
        celery.send_task = lambda name, args=None, **kw: queued.append((name, args))
        try:
            assert psa_tasks.poll.run()["polled"] == 1
        finally:
            celery.send_task = original
        assert queued == [("workers.psa.sync_ticket", [tenant.account_id, TICKET])]
        assert psa_tasks.sync_ticket.run(*queued[0][1]) == 1
        assert psa_tasks.sync_ticket.run(*queued[0][1]) == 0  # read again: nothing changes
    handoff = db.session.get(Handoff, escalated["id"])
    db.session.refresh(handoff)
    assert handoff.first_action_kind == "psa_writeback"
    assert handoff.first_action_at == datetime(2026, 3, 9, 14, 2, 30)
    assert handoff.time_to_first_action_seconds == 450  # 13:55:00 → 14:02:30
    # The read was bounded: this ticket's notes created since the claim.
    lookup = fake_at.calls("POST", r"/TicketNotes/query$")[-1]
    assert lookup.body == {
        "MaxRecords": 500,
        "filter": [
            {"op": "eq", "field": "ticketID", "value": int(TICKET)},
            # an hour before the claim: the clocks may differ
            {"op": "gte", "field": "createDateTime", "value": "2026-03-09T13:00:00.000Z"},
        ],
    }
    # Nobody calls back: GET /account/psa says so.
    assert client.get(URL, headers=tenant.auth("admin")).get_json()["callback_url"] is None


def test_a_mapped_resource_counts_by_its_user_name(client, tenant, fake_at, app):
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant)
    escalated = client.post(
        f"/api/v1/sessions/{session_id}/escalate", json={"reason": "VPN"},
        headers=tenant.auth("tech"),
    ).get_json()  # fmt: skip
    assert (
        client.post(
            f"/api/v1/escalations/{escalated['id']}/claim", headers=tenant.auth("eng")
        ).status_code
        == 200
    )
    claimer = db.session.get(User, tenant.users["eng"])
    mapped = client.put(
        "/api/v1/account/psa/members", json={"psa_member": "Tech.Two", "email": claimer.email},
        headers=tenant.auth("admin"),
    )  # fmt: skip
    assert mapped.status_code == 200, mapped.get_json()
    fake_at.add_resource(501, "tech.two", "another-address@elsewhere.example")
    handoff = db.session.get(Handoff, escalated["id"])
    note_at = handoff.claimed_at + timedelta(seconds=20)
    fake_at.add_note(TICKET, "on it", 501, note_at)
    assert psa_tasks.sync_ticket.run(tenant.account_id, TICKET) == 1
    db.session.refresh(handoff)
    assert handoff.first_action_at == note_at.replace(
        microsecond=note_at.microsecond // 1000 * 1000
    )


# ---------------------------------------------------------------- pages


def test_settings_show_each_connectors_fields_and_the_session_links_the_autotask_ticket(
    app, client, tenant, fake_at
):
    admin = app.test_client()
    login = {"email": "owner@alpha-msp.example", "password": "owner-password"}
    assert admin.post("/login", data=login).status_code == 303
    page = unescape(admin.get("/settings").text)
    assert '<option value="autotask">Autotask PSA</option>' in page
    assert '<option value="connectwise">ConnectWise Manage</option>' in page
    for field, kind in (("username", "text"), ("secret", "password"),
                        ("integration_code", "password")):  # fmt: skip
        assert f'name="{field}" type="{kind}"' in page, field
    assert '<fieldset class="stack psa-kind-fields" data-kind="autotask"' in page
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant)
    engineer = app.test_client()
    login = {"email": "eng@alpha-msp.example", "password": "user-password"}
    assert engineer.post("/login", data=login).status_code == 303
    pilot = unescape(engineer.get(f"/pilot/{session_id}").text)
    link = (
        f"{fake_at.url}/Autotask/AutotaskExtend/ExecuteCommand.aspx?Code=OpenTicketDetail"
        f"&TicketID={TICKET}"
    )
    assert f'href="{link}"' in pilot and f"#{TICKET} in Autotask PSA" in pilot


def test_the_secrets_never_reach_the_logs_and_no_callback_url_exists(
    client, tenant, fake_at, caplog
):
    caplog.set_level(logging.DEBUG)
    connect(client, tenant, fake_at)
    _test(client, tenant)
    _test(client, tenant, fake_at.connection_body(secret="wrong-secret-987"))
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    dispatch_latest()
    assert post(delivery_id()) == "sent"
    text = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (fake_at.secret, fake_at.integration_code, "wrong-secret-987"):
        assert secret not in text
    # A callback path naming this account is 404: Autotask connections have none.
    for key in (f"{tenant.account_id}.anything", f"{tenant.account_id}."):
        answer = client.post(f"/api/v1/psa/callbacks/{key}", json={"ID": int(TICKET)})
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"


def test_a_busy_ticket_is_read_from_the_claim_on_page_by_page(client, tenant, fake_at, app):
    """1,200 notes from before the claim are never transferred; the 601 after it come in two
    pages (500, then 101 through nextPageUrl), and the claimer's note, the last, counts."""
    connect(client, tenant, fake_at)
    session_id = session_with_ticket(client, tenant)
    escalated = client.post(
        f"/api/v1/sessions/{session_id}/escalate", json={"reason": "VPN"},
        headers=tenant.auth("tech"),
    ).get_json()  # fmt: skip
    assert (
        client.post(
            f"/api/v1/escalations/{escalated['id']}/claim", headers=tenant.auth("eng")
        ).status_code
        == 200
    )
    claimed_at = db.session.get(Handoff, escalated["id"]).claimed_at
    claimer = db.session.get(User, tenant.users["eng"])
    fake_at.add_resource(401, "eng.alpha", claimer.email)
    fake_at.add_resource(402, "bot", "bot@alpha-msp.example")
    for n in range(1200):
        fake_at.add_note(TICKET, f"old {n}", 402, claimed_at - timedelta(days=1, seconds=n))
    for n in range(600):
        fake_at.add_note(TICKET, f"bot {n}", 402, claimed_at + timedelta(seconds=1))
    mine = claimed_at + timedelta(seconds=5)
    fake_at.add_note(TICKET, "fixed", 401, mine)
    assert psa_tasks.sync_ticket.run(tenant.account_id, TICKET) == 1
    queries = fake_at.calls("POST", r"/TicketNotes/query(/next)?$")
    assert [q.path.rsplit("/", 1)[-1] for q in queries] == ["query", "next"]
    assert len(fake_at.calls("GET", r"/Resources/\d+$")) == 2  # each writer looked up once
    handoff = db.session.get(Handoff, escalated["id"])
    db.session.refresh(handoff)
    assert handoff.first_action_at == mine.replace(microsecond=mine.microsecond // 1000 * 1000)


def test_switching_from_connectwise_to_autotask_retires_the_callback(
    client, tenant, fake_at, fake_cw
):
    admin = tenant.auth("admin")
    first = client.put(URL, json=fake_cw.connection_body(), headers=admin).get_json()
    assert first["kind"] == "connectwise" and len(fake_cw.callbacks) == 1
    path = first["callback_url"].removeprefix("http://127.0.0.1:5999")
    second = connect(client, tenant, fake_at)
    assert second["kind"] == "autotask" and second["callback_url"] is None
    assert fake_cw.callbacks == {}  # deleted in ConnectWise
    assert client.post(path, json={"Type": "ticket", "ID": 5001}).status_code == 404
    row = db.session.scalar(select(PsaConnection))
    assert (row.company_id, row.client_id, row.psa_callback_id) == (None, None, None)


def test_the_secret_goes_only_to_the_zone_autotask_named_on_its_own_site(
    client, tenant, fake_at, app
):
    fake_at.zone_answer = "https://webservices3.attacker.example/atservicesrest/"
    refused = client.put(URL, json=fake_at.connection_body(), headers=tenant.auth("admin"))
    assert refused.status_code == 422
    assert "another site" in refused.get_json()["error"]["message"]
    assert db.session.scalar(select(PsaConnection)) is None
    # A next-page URL outside the zone is not followed (and gets no headers).
    fake_at.zone_answer = None
    connect(client, tenant, fake_at)
    fake_at.next_page_base = "http://127.0.0.2:9/atservicesrest"
    for n in range(501):
        fake_at.add_note(TICKET, f"note {n}", fake_at.api_resource_id)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_at.drop_after_create_next()
    assert post(delivery_id()) == "retrying"
    make_due(delivery_id())
    assert post(delivery_id()) == "failed"
    assert "outside the zone" in state(client, tenant, session_id)["last_error"]
    assert len(fake_at.calls("POST", r"/Notes$")) == 1

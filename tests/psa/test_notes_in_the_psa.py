"""Notes a senior writes directly in the ConnectWise ticket: the claimer's note after the
claim is the first action at the note's own time; nobody else's note, and nothing before
the claim, counts. Callbacks name the ticket only; duplicates and late ones change nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from adapters.psa import default_connector
from models import db, tenancy
from models.entities import Handoff, User
from models.psa import inbound
from models.psa.settings import PsaSettings
from models.rollup import roll_up
from tests.factories import with_three_roles
from tests.psa.test_writeback import TICKET, connect, session_with_ticket
from workers import psa as psa_tasks

CLAIMER_MEMBER, OTHER_MEMBER = "11", "12"


def claimed_handoff(client, tenant, fake_cw) -> tuple[int, Handoff]:
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    escalated = client.post(
        f"/api/v1/sessions/{session_id}/escalate",
        json={"reason": "stuck"},
        headers=tenant.auth("tech"),
    ).get_json()
    claimed = client.post(
        f"/api/v1/escalations/{escalated['id']}/claim", headers=tenant.auth("eng")
    )
    assert claimed.status_code == 200, claimed.get_json()
    for member, who in ((CLAIMER_MEMBER, "eng"), (OTHER_MEMBER, "eng2")):
        user = db.session.get(User, tenant.users[who])
        fake_cw.add_member(member, who, user.email.upper())  # emails match case-insensitively
    return session_id, db.session.get(Handoff, escalated["id"])


def sync(app) -> int:
    return inbound.sync_ticket(
        db.session.get(Handoff, 1).account_id,
        TICKET,
        PsaSettings.from_config(app.config, default_connector),
    )


def reload(handoff: Handoff) -> Handoff:
    db.session.expire_all()
    return db.session.get(Handoff, handoff.id)


def metric(client, tenant) -> dict:
    roll_up(account_id=tenant.account_id)
    return client.get(
        "/api/v1/analytics/escalation-metrics", headers=tenant.auth("admin")
    ).get_json()


def test_only_the_claimers_note_after_the_claim_counts(client, tenant, fake_cw, app):
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    claimed_at = handoff.claimed_at
    fake_cw.add_note(TICKET, "before the claim", CLAIMER_MEMBER, claimed_at - timedelta(minutes=5))
    fake_cw.add_note(TICKET, "someone else", OTHER_MEMBER, claimed_at + timedelta(seconds=30))
    assert sync(app) == 0
    assert reload(handoff).first_action_at is None
    assert metric(client, tenant)["first_actions"] == 0
    mine = claimed_at + timedelta(seconds=90)
    fake_cw.add_note(TICKET, "rebooted the print server", CLAIMER_MEMBER, mine)
    assert sync(app) == 1
    after = reload(handoff)
    assert after.first_action_kind == "psa_writeback"
    assert after.first_action_at == mine.replace(microsecond=0)
    assert (
        after.time_to_first_action_seconds
        == (mine.replace(microsecond=0) - after.created_at).total_seconds()
    )


@with_three_roles
def test_a_callback_names_the_ticket_and_the_notes_are_read_from_the_api(
    client, tenant, fake_cw, app
):
    """With row security enforced too: the callback finds its account through the system
    role, and the queued task carries the account."""
    tenancy.set_tenant(tenant.account_id)  # the test reads as the account's own pages do
    session_id, handoff = claimed_handoff(client, tenant, fake_cw)
    callback = client.get("/api/v1/account/psa", headers=tenant.auth("admin")).get_json()
    path = callback["callback_url"].removeprefix("http://127.0.0.1:5999")
    queued: list = []
    celery = app.extensions["celery"]
    original, celery.send_task = celery.send_task, lambda n, args=None, **kw: queued.append(args)
    try:
        # The body lies about the note; only the ticket id it names is used.
        lie = {"Action": "updated", "Type": "ticket", "ID": int(TICKET), "Entity": '{"text": "x"}'}
        for body in (lie, {"Type": "ticket", "ID": 424242}):
            raw, headers = fake_cw.signed_callback(body)
            assert client.post(path, data=raw, headers=headers).status_code == 200
        junk = {"x-content-signature": "c2lnbmVk", "Content-Type": "application/json"}
        assert client.post(path, data=b"not json", headers=junk).status_code == 403
    finally:
        celery.send_task = original
    assert queued == [[tenant.account_id, TICKET]]  # the unknown ticket and the junk: nothing
    # The task as a worker runs it (its account from its arguments).
    assert psa_tasks.sync_ticket(*queued[0]) == 0  # no note yet: nothing recorded
    note_at = handoff.claimed_at + timedelta(seconds=40)
    fake_cw.add_note(TICKET, "on it", CLAIMER_MEMBER, note_at)
    assert psa_tasks.sync_ticket(*queued[0]) == 1
    # The same callback again, or late: nothing changes.
    assert psa_tasks.sync_ticket(*queued[0]) == 0
    assert reload(handoff).first_action_at == note_at.replace(microsecond=0)


def test_a_note_read_late_still_wins_over_a_later_chat_message(client, tenant, fake_cw, app):
    session_id, handoff = claimed_handoff(client, tenant, fake_cw)
    # Claimed ten minutes ago; the note in the PSA five minutes ago; the chat message now.
    handoff.created_at -= timedelta(minutes=11)
    handoff.claimed_at -= timedelta(minutes=10)
    db.session.commit()
    note_at = handoff.claimed_at + timedelta(minutes=5)
    fake_cw.add_note(TICKET, "took it", CLAIMER_MEMBER, note_at)
    client.post(
        f"/api/v1/sessions/{session_id}/messages", json={"body": "hi"}, headers=tenant.auth("eng")
    )
    assert reload(handoff).first_action_kind == "chat"
    assert sync(app) == 1
    after = reload(handoff)
    assert (after.first_action_kind, after.first_action_at) == (
        "psa_writeback", note_at.replace(microsecond=0),
    )  # fmt: skip
    # A later note (out of order, or a duplicate callback) never moves it.
    fake_cw.add_note(TICKET, "more", CLAIMER_MEMBER, note_at + timedelta(minutes=3))
    assert sync(app) == 0
    assert reload(handoff).first_action_at == note_at.replace(microsecond=0)


def test_our_own_writeback_notes_are_not_counted_twice(client, tenant, fake_cw, app):
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    fake_cw.add_note(TICKET, "x\n\n[Escalation Mode note 1-1]", CLAIMER_MEMBER, handoff.claimed_at)
    assert sync(app) == 0


def test_the_poll_reads_claimed_handoffs_waiting_for_a_first_action(client, tenant, fake_cw, app):
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    assert inbound.tickets_to_poll() == [(tenant.account_id, TICKET)]
    fake_cw.add_note(TICKET, "fixed", CLAIMER_MEMBER, handoff.claimed_at + timedelta(seconds=5))
    queued: list = []
    celery = app.extensions["celery"]
    original, celery.send_task = (
        celery.send_task,
        lambda n, args=None, **kw: queued.append((n, args)),
    )
    try:
        assert psa_tasks.poll.run()["polled"] == 1
    finally:
        celery.send_task = original
    assert queued == [("workers.psa.sync_ticket", [tenant.account_id, TICKET])]
    psa_tasks.sync_ticket.run(*queued[0][1])
    assert inbound.tickets_to_poll() == []
    assert db.session.scalar(select(Handoff.first_action_kind)) == "psa_writeback"


def test_keys_refused_while_reading_notes_break_the_connection(client, tenant, fake_cw, app):
    claimed_handoff(client, tenant, fake_cw)
    fake_cw.rotate_keys("pub-key-2", "priv-key-2")
    assert psa_tasks.sync_ticket.run(tenant.account_id, TICKET) == 0
    shown = client.get("/api/v1/account/psa", headers=tenant.auth("admin")).get_json()
    assert shown["status"] == "broken"
    assert inbound.tickets_to_poll() == []  # no polling with keys the PSA refuses


def test_an_admin_maps_a_member_whose_email_differs(client, tenant, fake_cw, app):
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    fake_cw.add_member("13", "erin.cw", "erin@elsewhere.example")
    note_at = handoff.claimed_at + timedelta(seconds=20)
    fake_cw.add_note(TICKET, "from my other login", "13", note_at)
    assert sync(app) == 0  # an unknown email: not the claimer
    url = "/api/v1/account/psa/members"
    refused = client.put(url, json={"psa_member": "erin.cw", "email": "x@nowhere.example"},
                         headers=tenant.auth("admin"))  # fmt: skip
    assert refused.status_code == 422
    assert client.put(url, json={"psa_member": "ERIN.CW", "email": "eng@alpha-msp.example"},
                      headers=tenant.auth("eng")).status_code == 403  # fmt: skip
    linked = client.put(url, json={"psa_member": "ERIN.CW", "email": "eng@alpha-msp.example"},
                        headers=tenant.auth("admin"))  # fmt: skip
    assert linked.status_code == 200, linked.get_json()
    assert linked.get_json()["user"]["id"] == tenant.users["eng"]
    assert sync(app) == 1
    assert reload(handoff).first_action_at == note_at.replace(microsecond=0)
    listed = client.get(url, headers=tenant.auth("admin")).get_json()["items"]
    assert [item["psa_member"] for item in listed] == ["erin.cw"]
    assert client.delete(f"{url}/erin.cw", headers=tenant.auth("admin")).status_code == 204
    assert client.get(url, headers=tenant.auth("admin")).get_json()["items"] == []


def test_a_mapping_to_someone_else_wins_over_a_matching_email(client, tenant, fake_cw, app):
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    mapping = {"psa_member": "eng", "email": "eng2@alpha-msp.example"}
    client.put("/api/v1/account/psa/members", json=mapping, headers=tenant.auth("admin"))
    fake_cw.add_note(TICKET, "hm", CLAIMER_MEMBER, handoff.claimed_at + timedelta(seconds=5))
    assert sync(app) == 0

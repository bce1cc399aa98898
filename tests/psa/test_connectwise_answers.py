"""ConnectWise as it really answers: 403 is a missing permission (not bad keys), time
entries' notes are read from `allNotes` at their `dateEntered`, the notes list follows the
`Link` header and is bounded by a `conditions` date, and a companyinfo page that is not
JSON is said in words."""

from __future__ import annotations

from datetime import datetime, timedelta

import time_machine
from sqlalchemy import select

from models import db
from models.entities import Delivery, Handoff, PsaConnection
from tests.psa.test_notes_in_the_psa import CLAIMER_MEMBER, claimed_handoff, reload, sync
from tests.psa.test_writeback import (
    TICKET,
    connect,
    delivery_id,
    post,
    session_with_ticket,
    state,
    write_back,
)
from workers import psa as psa_tasks

URL = "/api/v1/account/psa"
T0 = datetime(2026, 12, 7, 10, 0, 0)  # naive UTC, like every stored timestamp


def shown(client, tenant) -> dict:
    return client.get(URL, headers=tenant.auth("admin")).get_json()


def checked(client, tenant, body=None) -> dict:
    response = client.post(f"{URL}/test", json=body, headers=tenant.auth("admin"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# ---------------------------------------------------------------- 401 and 403


def test_403_on_posting_a_note_names_the_permission_and_keeps_the_connection(
    client, tenant, fake_cw
):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_cw.deny("POST", r"/service/tickets/\d+/notes$")
    assert post(delivery_id()) == "failed"
    error = state(client, tenant, session_id)["last_error"]
    assert error.startswith("Missing permission:")
    assert "add notes to tickets" in error and "Service Tickets: Add and Edit" in error
    assert "POST /service/tickets/5001/notes answered 403" in error
    assert "refused our credentials" not in error
    connection = db.session.scalar(select(PsaConnection))
    assert connection.status == "connected"  # the keys work: not broken
    assert shown(client, tenant)["message"] == error
    assert client.get("/healthz").get_json()["psa"]["status"] != "degraded"
    # The next writeback is queued and tried (a broken connection would fail it at once).
    second = write_back(client, tenant, session_id, "second")["delivery"]
    assert second["status"] == "pending"
    fake_cw.faults.clear()  # the admin gave the role the permission
    latest = db.session.scalar(
        select(Delivery.id).where(Delivery.channel == "psa").order_by(Delivery.id.desc())
    )
    assert post(latest) == "sent"
    assert [note["text"].split("\n")[0] for note in fake_cw.notes(TICKET)] == ["second"]
    assert shown(client, tenant)["message"] is None  # posting works again: message gone


def test_a_read_that_works_does_not_clear_a_refused_post(client, tenant, fake_cw, app):
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    session_id = db.session.get(Handoff, handoff.id).session_id
    write_back(client, tenant, session_id)
    fake_cw.deny("POST", r"/service/tickets/\d+/notes$")
    assert post(delivery_id()) == "failed"
    assert sync(app) == 0  # reading notes works
    assert "add notes to tickets" in shown(client, tenant)["message"]


def test_403_on_members_is_said_in_the_status_and_the_test_not_silently_nothing(
    client, tenant, fake_cw, app
):
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    fake_cw.add_note(TICKET, "on it", CLAIMER_MEMBER, handoff.claimed_at + timedelta(seconds=9))
    fake_cw.deny("GET", r"^/system/members")
    assert psa_tasks.sync_ticket.run(tenant.account_id, TICKET) == 0
    assert reload(handoff).first_action_at is None
    body = shown(client, tenant)
    assert body["status"] == "connected"
    assert body["message"].startswith("Missing permission:")
    assert "look members up (System > Member Maintenance: Inquire)" in body["message"]
    result = checked(client, tenant)
    assert result["ok"] is False
    assert "look members up (System > Member Maintenance: Inquire)" in result["message"]
    assert "Bad keys" not in result["message"]
    # The role is fixed: the next read records the note and the message goes.
    fake_cw.faults.clear()
    assert sync(app) == 1
    assert shown(client, tenant)["message"] is None
    assert checked(client, tenant)["ok"] is True


def test_401_still_means_the_keys_are_refused(client, tenant, fake_cw):
    good = fake_cw.connection_body()
    refused = checked(client, tenant, {**good, "private_key": "wrong"})
    assert refused["ok"] is False and refused["message"].startswith("Bad keys")


# ---------------------------------------------------------------- companyinfo not JSON


def test_a_companyinfo_answer_that_is_not_json_is_said_in_words(client, tenant, fake_cw):
    fake_cw.companyinfo_override = ("text/html", b"<html><body>Sign in</body></html>")
    response = client.post(
        f"{URL}/test", json=fake_cw.connection_body(), headers=tenant.auth("admin")
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is False
    assert body["message"].startswith("Not ConnectWise:")
    assert "answered 200 with text/html, not JSON" in body["message"]
    assert "Check the site URL" in body["message"]


# ---------------------------------------------------------------- time entries, allNotes


def test_a_time_entry_note_counts_at_its_date_entered(client, tenant, fake_cw, app):
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    claimed_at = handoff.claimed_at.replace(microsecond=0)
    entered = claimed_at + timedelta(minutes=4)
    # The work is logged as begun before the claim; it was entered four minutes after it.
    began = claimed_at - timedelta(minutes=30)
    fake_cw.add_time_entry(TICKET, "Reset the mailbox", CLAIMER_MEMBER, entered, time_start=began)
    assert sync(app) == 1
    after = reload(handoff)
    assert after.first_action_kind == "psa_writeback"
    assert after.first_action_at == entered
    assert fake_cw.calls("GET", r"/service/tickets/5001/allNotes$")
    assert not fake_cw.calls("GET", r"/service/tickets/5001/notes$")


def test_without_dates_in_all_notes_the_time_entry_itself_is_read(client, tenant, fake_cw, app):
    fake_cw.all_notes_dates = False
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    entered = handoff.claimed_at.replace(microsecond=0) + timedelta(minutes=2)
    entry = fake_cw.add_time_entry(TICKET, "Logged it", CLAIMER_MEMBER, entered)
    assert sync(app) == 1
    assert reload(handoff).first_action_at == entered
    assert fake_cw.calls("GET", rf"/time/entries/{entry['id']}$")


def test_reads_are_bounded_by_a_conditions_date_and_follow_the_link_header(
    client, tenant, fake_cw, app
):
    with time_machine.travel(T0, tick=False):
        _, handoff = claimed_handoff(client, tenant, fake_cw)
        assert handoff.claimed_at == datetime(2026, 12, 7, 10, 0, 0)
        # Three pages of notes from the week before: never read again.
        for n in range(250):
            fake_cw.add_note(TICKET, f"old #{n}", "77", datetime(2026, 11, 30, 9, 0, 0))
        # 120 since the claim: two pages of 100, the second reached by the Link header.
        for n in range(119):
            fake_cw.add_note(TICKET, f"busy #{n}", "77", datetime(2026, 12, 7, 10, 1, 0))
        fake_cw.add_note(TICKET, "mine", CLAIMER_MEMBER, datetime(2026, 12, 7, 10, 7, 0))
        assert sync(app) == 1
    assert reload(handoff).first_action_at == datetime(2026, 12, 7, 10, 7, 0)
    reads = fake_cw.calls("GET", r"/service/tickets/5001/allNotes$")
    assert len(reads) == 2
    assert reads[0].query["conditions"] == ["_info/lastUpdated >= [2026-12-07T09:00:00Z]"]
    assert reads[0].query["page"] == ["1"] and reads[0].query["pageSize"] == ["100"]
    assert reads[1].query["page"] == ["2"]
    assert reads[1].query["conditions"] == reads[0].query["conditions"]


def test_a_server_that_cannot_filter_on_the_date_is_read_whole(client, tenant, fake_cw, app):
    fake_cw.refuse_conditions = True
    _, handoff = claimed_handoff(client, tenant, fake_cw)
    note_at = handoff.claimed_at.replace(microsecond=0) + timedelta(seconds=30)
    fake_cw.add_note(TICKET, "on it", CLAIMER_MEMBER, note_at)
    assert sync(app) == 1
    assert reload(handoff).first_action_at == note_at
    first, second = fake_cw.calls("GET", r"/allNotes$")
    assert "conditions" in first.query and "conditions" not in second.query

"""A writeback posted to the ConnectWise ticket through the outbox and the psa task, against
the fake server and its faults: retried on 429 (after Retry-After), 5xx and timeouts; 401
stops at once and marks the connection broken; never posted twice."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from models import db
from models.db import utcnow
from models.entities import Delivery, OutboxEvent, PsaConnection
from tests.factories import ASSESSMENT, SNAPSHOT
from tests.psa.factories import PSA_TIMEOUT, make_due
from workers import fanout
from workers import psa as psa_tasks

TICKET = "5001"


def connect(client, tenant, fake_cw) -> None:
    response = client.put(
        "/api/v1/account/psa", json=fake_cw.connection_body(), headers=tenant.auth("admin")
    )
    assert response.status_code == 200 and response.get_json()["status"] == "connected"


def session_with_ticket(client, tenant, ticket: str | None = TICKET) -> int:
    body = {"title": "Printer offline", "snapshot": SNAPSHOT, "ai_assessment": ASSESSMENT}
    if ticket is not None:
        body["psa_ticket_id"] = ticket
    response = client.post("/api/v1/sessions", json=body, headers=tenant.auth("tech"))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["psa_ticket_id"] == ticket
    return response.get_json()["id"]


def write_back(client, tenant, session_id: int, note: str = "Replaced the fuser") -> dict:
    response = client.post(
        f"/api/v1/sessions/{session_id}/psa-writeback",
        json={"note": note},
        headers=tenant.auth("eng"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def state(client, tenant, session_id: int) -> dict:
    items = client.get(
        f"/api/v1/sessions/{session_id}/psa-writebacks", headers=tenant.auth("eng")
    ).get_json()["items"]
    return items[-1]["delivery"]


def dispatch_latest() -> str:
    """What the worker does with the outbox event the route announced for the PSA (the
    writeback's other event, `writeback.created`, is the session page's)."""
    event_id = db.session.scalar(
        select(OutboxEvent.id)
        .where(OutboxEvent.event == "psa.writeback")
        .order_by(OutboxEvent.id.desc())
        .limit(1)
    )
    return fanout.dispatch(event_id)


def delivery_id() -> int:
    return db.session.scalar(select(Delivery.id).where(Delivery.channel == "psa"))


def post(delivery: int) -> str:
    return psa_tasks.post_note.run(delivery)


def test_without_a_connection_the_writeback_is_not_connected(client, tenant, fake_cw):
    session_id = session_with_ticket(client, tenant)
    body = write_back(client, tenant, session_id)
    assert body["delivery"]["status"] == "not_connected"
    # Only the session page hears of it: nothing is queued for the PSA.
    events = db.session.scalars(select(OutboxEvent.event)).all()
    assert events == ["writeback.created"] and not fake_cw.requests


def test_a_session_without_a_ticket_fails_and_says_why(client, tenant, fake_cw):
    connect(client, tenant, fake_cw)
    body = write_back(client, tenant, session_with_ticket(client, tenant, ticket=None))
    assert body["delivery"]["status"] == "failed"
    assert "not linked to a PSA ticket" in body["delivery"]["last_error"]


def test_the_note_goes_through_the_outbox_to_the_ticket_once(client, tenant, fake_cw):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    body = write_back(client, tenant, session_id, "Replaced the fuser; printing again")
    assert body["delivery"] == {
        "status": "pending", "attempts": 0, "last_error": None, "psa_note_id": None,
    }  # fmt: skip
    assert dispatch_latest() == "sent"  # handed to the psa queue
    assert post(delivery_id()) == "sent"
    (note,) = fake_cw.notes(TICKET)
    assert note["text"].startswith("Replaced the fuser; printing again")
    assert note["internalAnalysisFlag"] is True
    after = state(client, tenant, session_id)
    assert after["status"] == "sent" and after["psa_note_id"] == str(note["id"])
    # A duplicate task, or the dispatch relayed again, posts nothing more.
    assert post(delivery_id()) == "skipped"
    assert dispatch_latest() == "skipped"
    assert len(fake_cw.notes(TICKET)) == 1


def test_429_waits_for_retry_after_then_posts(client, tenant, fake_cw):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_cw.fail_next("POST", r"/notes$", 429, retry_after="120")
    assert post(delivery_id()) == "retrying"
    row = db.session.get(Delivery, delivery_id())
    assert row.status == "retrying" and "429" in row.last_error
    assert row.next_attempt_at >= utcnow() + timedelta(seconds=115)
    assert post(delivery_id()) == "skipped"  # not before it is due
    make_due(delivery_id())
    assert post(delivery_id()) == "sent"
    assert len(fake_cw.notes(TICKET)) == 1


def test_500_and_a_hang_past_the_timeout_are_retried_without_a_duplicate(client, tenant, fake_cw):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_cw.fail_next("POST", r"/notes$", 500)
    assert post(delivery_id()) == "retrying"
    assert "500" in state(client, tenant, session_id)["last_error"]
    make_due(delivery_id())
    fake_cw.hang_next("GET", r"/allNotes$", PSA_TIMEOUT * 3)  # the lookup before the retry
    assert post(delivery_id()) == "retrying"
    assert "did not answer within" in state(client, tenant, session_id)["last_error"]
    make_due(delivery_id())
    assert post(delivery_id()) == "sent"
    assert len(fake_cw.notes(TICKET)) == 1
    assert state(client, tenant, session_id)["attempts"] == 3


def test_a_post_that_hangs_and_creates_the_note_late_is_not_posted_again(client, tenant, fake_cw):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_cw.hang_next("POST", r"/notes$", PSA_TIMEOUT * 3)
    assert post(delivery_id()) == "retrying"
    deadline = time.monotonic() + 5
    while not fake_cw.notes(TICKET) and time.monotonic() < deadline:
        time.sleep(0.05)  # the PSA finishes the request we gave up on
    (late,) = fake_cw.notes(TICKET)  # the late note is there before the retry runs
    make_due(delivery_id())
    assert post(delivery_id()) == "sent"
    assert fake_cw.notes(TICKET) == [late]  # the retry found it and posted nothing new


def test_a_note_created_but_its_answer_lost_is_not_posted_again(client, tenant, fake_cw):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_cw.drop_after_create_next()
    assert post(delivery_id()) == "retrying"
    (created,) = fake_cw.notes(TICKET)  # it exists in the PSA although we never heard
    make_due(delivery_id())
    assert post(delivery_id()) == "sent"
    assert fake_cw.notes(TICKET) == [created]
    assert len(fake_cw.calls("POST", r"/notes$")) == 1
    assert state(client, tenant, session_id)["psa_note_id"] == str(created["id"])


def test_401_after_a_key_rotation_stops_at_once_and_breaks_the_connection(client, tenant, fake_cw):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    fake_cw.rotate_keys("pub-key-2", "priv-key-2")
    assert post(delivery_id()) == "failed"
    after = state(client, tenant, session_id)
    assert after["status"] == "failed" and "401" in after["last_error"]
    connection = db.session.scalar(select(PsaConnection))
    assert connection.status == "broken"
    shown = client.get("/api/v1/account/psa", headers=tenant.auth("admin")).get_json()
    assert shown["status"] == "broken" and "refused our credentials" in shown["message"]
    assert client.get("/healthz").get_json()["psa"]["status"] == "degraded"
    # The next writeback fails at once, without calling the PSA, until new keys are saved.
    calls = len(fake_cw.requests)
    second = write_back(client, tenant, session_id, "second")["delivery"]
    assert second["status"] == "failed" and "connection is broken" in second["last_error"]
    assert len(fake_cw.requests) == calls
    assert fake_cw.notes(TICKET) == []


def test_another_4xx_fails_with_the_psa_message(client, tenant, fake_cw):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant, ticket="999")  # unknown to the PSA
    write_back(client, tenant, session_id)
    assert post(delivery_id()) == "failed"
    after = state(client, tenant, session_id)
    assert after["status"] == "failed" and "Ticket 999 not found" in after["last_error"]


def test_the_sweep_re_sends_a_post_whose_task_was_lost(client, tenant, fake_cw, app):
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id)
    row = db.session.get(Delivery, delivery_id())
    row.created_at = utcnow() - timedelta(minutes=5)  # queued long ago, never attempted
    db.session.commit()
    sent: list = []
    celery = app.extensions["celery"]
    original = celery.send_task
    celery.send_task = lambda name, args=None, **kw: sent.append((name, args))
    try:
        assert psa_tasks.poll.run()["requeued"] == 1
    finally:
        celery.send_task = original
    assert sent == [("workers.psa.post_note", [row.id])]


def test_a_lost_answer_is_found_on_the_second_page_of_a_busy_tickets_notes(client, tenant, fake_cw):
    """150 notes typed in ConnectWise already: the one we created lands on the second page
    of 100, and the retry's look-up must read that far before deciding to post."""
    connect(client, tenant, fake_cw)
    session_id = session_with_ticket(client, tenant)
    for n in range(150):
        fake_cw.add_note(TICKET, f"Typed by hand #{n}", "77")
    write_back(client, tenant, session_id)
    fake_cw.drop_after_create_next()
    assert post(delivery_id()) == "retrying"
    notes = fake_cw.notes(TICKET)
    assert len(notes) == 151
    created = notes[-1]
    make_due(delivery_id())
    assert post(delivery_id()) == "sent"
    assert len(fake_cw.notes(TICKET)) == 151
    assert fake_cw.notes(TICKET)[-1] == created

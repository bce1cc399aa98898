"""A session's live events (`message.created`, `writeback.created`) take the path every
live event takes: an outbox row committed with the message or writeback, the web process's
emit right after the commit, the dispatch task when that emit could not go out, one emit in
all. In-process, with fakeredis as the Socket.IO message queue (a subscriber plays the web
nodes); the real processes are in tests/integration/test_session_live.py."""

from __future__ import annotations

from datetime import UTC, timedelta

import time_machine
from sqlalchemy import select

from models import db, deliveries
from models.db import utcnow
from models.entities import Delivery, OutboxEvent
from models.rooms import session_room
from tests.factories import new_session
from tests.workers import test_fanout
from tests.workers.test_fanout import FakeQueueManager
from workers import fanout, publish
from workers.outbox_relay import STUCK_DISPATCH_GRACE, relay

# The fan-out tests' fixtures: fakeredis as the message queue and presence, quick retries.
queue_server = test_fanout.queue_server
web_node = test_fanout.web_node
presence = test_fanout.presence
quick_retries = test_fanout.quick_retries


def post_message(client, tenant, session_id: int, body: str, who: str = "tech") -> dict:
    response = client.post(
        f"/api/v1/sessions/{session_id}/messages", json={"body": body}, headers=tenant.auth(who)
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def session_events(session_id: int) -> list[OutboxEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(OutboxEvent).where(OutboxEvent.session_id == session_id).order_by(OutboxEvent.id)
        )
    )


def socket_row(event: OutboxEvent) -> Delivery | None:
    db.session.expire_all()
    return db.session.scalar(
        select(Delivery).where(Delivery.outbox_event_id == event.id, Delivery.channel == "socket")
    )


def test_a_message_is_committed_with_its_outbox_event_for_the_sessions_room(client, tenant):
    session = new_session(client, tenant)
    posted = post_message(client, tenant, session["id"], "Which VPN profile?")

    [event] = session_events(session["id"])
    assert (event.event, event.message_id, event.writeback_id, event.handoff_id) == (
        "message.created",
        posted["id"],
        None,
        None,
    )
    assert event.account_id == tenant.account_id


def test_the_dispatch_emits_a_message_once_to_the_sessions_room_as_the_api_answered_it(
    client, tenant, web_node, presence
):
    session = new_session(client, tenant)
    posted = post_message(client, tenant, session["id"], "Try the other profile")
    [event] = session_events(session["id"])

    assert fanout.dispatch(event.id) == "sent"
    assert fanout.dispatch(event.id) == "skipped"  # the relay, a redelivered task

    [message] = web_node.messages()
    assert (message["event"], message["room"]) == (
        "message.created",
        [session_room(session["id"])],
    )
    assert message["data"] == [posted]
    row = socket_row(event)
    assert (row.status, row.handoff_id, row.attempts) == ("sent", None, 1)


def test_a_writeback_goes_to_the_sessions_room_with_its_delivery_state(
    client, tenant, web_node, presence
):
    session = new_session(client, tenant)
    response = client.post(
        f"/api/v1/sessions/{session['id']}/psa-writeback",
        json={"note": "Reset the VPN profile"},
        headers=tenant.auth("eng"),
    )
    assert response.status_code == 201, response.get_json()
    written = response.get_json()
    assert written["delivery"]["status"] == "not_connected"
    [event] = session_events(session["id"])
    assert (event.event, event.writeback_id) == ("writeback.created", written["id"])

    assert fanout.dispatch(event.id) == "sent"

    [message] = web_node.messages()
    assert (message["event"], message["room"], message["data"]) == (
        "writeback.created",
        [session_room(session["id"])],
        [written],
    )


def test_the_web_emit_and_a_relayed_dispatch_emit_a_message_once(
    app, client, tenant, queue_server, web_node, presence, monkeypatch
):
    """The web process emits right after the commit; the relay, finding the row not yet
    marked (the web's publisher was behind), hands a worker the same event: one emit."""
    web = FakeQueueManager(queue_server)
    monkeypatch.setattr(publish, "broadcaster", lambda *args, **kwargs: web)
    monkeypatch.setitem(app.config, "SOCKETIO_MESSAGE_QUEUE", "redis://fake")
    monkeypatch.setattr(publish, "publish_outbox_events", lambda *args, **kwargs: [])
    session = new_session(client, tenant)

    posted = post_message(client, tenant, session["id"], "On my way")

    [event] = session_events(session["id"])
    assert event.emitted_at is None and event.published_at is None  # nothing marked yet
    assert fanout.dispatch(event.id, emitted=False) == "sent"
    messages = web_node.messages()
    assert [(m["event"], m["data"]) for m in messages] == [("message.created", [posted])]


def test_a_message_emit_that_failed_is_retried_and_arrives_once(client, tenant, web_node, presence):
    session = new_session(client, tenant)
    post_message(client, tenant, session["id"], "Still there?")
    [event] = session_events(session["id"])
    fanout.emitter().failures_left = 1  # the message queue refuses the first publish

    try:
        fanout.dispatch(event.id)
        raise AssertionError("the failed emit was not reported")
    except fanout.DispatchIncomplete as incomplete:
        assert incomplete.emitted is False
    assert socket_row(event).status == "retrying"
    assert web_node.messages() == []

    assert fanout.dispatch(event.id) == "sent"
    assert [m["event"] for m in web_node.messages()] == ["message.created"]


def test_the_relay_does_not_dispatch_a_finished_session_event_again(
    client, tenant, web_node, presence, monkeypatch
):
    """A dispatched chat event has its socket row (it has no handoff): the relay's lost-task
    check finds it and leaves it alone; one whose task never started is sent again."""
    session = new_session(client, tenant)
    post_message(client, tenant, session["id"], "First")
    post_message(client, tenant, session["id"], "Second")
    first, second = session_events(session["id"])
    db.session.execute(
        OutboxEvent.__table__.update()
        .where(OutboxEvent.id.in_([first.id, second.id]))
        .values(published_at=utcnow())
    )
    db.session.commit()
    assert fanout.dispatch(first.id) == "sent"  # `second`'s task was lost before it began
    later = (utcnow() + STUCK_DISPATCH_GRACE + timedelta(seconds=1)).replace(tzinfo=UTC)
    resent: list[list[int]] = []
    monkeypatch.setattr(
        "workers.outbox_relay.publish_outbox_events",
        lambda ids: resent.append(list(ids)) or list(ids),
    )

    with time_machine.travel(later, tick=False):
        assert deliveries.undispatched_events(STUCK_DISPATCH_GRACE, timedelta(hours=1)) == [
            second.id
        ]
        assert relay(timedelta(seconds=5))["redispatched"] == [second.id]
    assert resent == [[second.id]]

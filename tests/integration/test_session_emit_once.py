"""A chat message goes live once with a real Redis as the message queue: the web process
emits it right after the commit; the dispatch that the relay hands a worker for the same
event (the web's publisher had not marked it yet) finds it emitted and emits nothing."""

from __future__ import annotations

import json
import time

import pytest
import redis
from sqlalchemy import select

from models import db
from models.entities import Delivery, OutboxEvent
from models.rooms import session_room
from tests.factories import new_session
from workers import fanout, publish

pytestmark = pytest.mark.integration

CHANNEL = "session-emit-once-test"


@pytest.fixture
def web_node(redis_url):
    """A subscriber on the Socket.IO channel, as a web node is."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    yield pubsub
    pubsub.close()
    client.close()


def received(pubsub) -> list[dict]:
    """What reached the channel: read until it has been quiet for 0.3 s (everything was
    published before this is called)."""
    messages, quiet_since = [], time.monotonic()
    while time.monotonic() - quiet_since < 0.3:
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            messages.append(json.loads(message["data"]))
            quiet_since = time.monotonic()
    return messages


def test_the_web_emit_and_the_relayed_dispatch_show_a_message_once(
    app, client, tenant, redis_url, web_node, monkeypatch
):
    monkeypatch.setitem(app.config, "SOCKETIO_MESSAGE_QUEUE", redis_url)
    monkeypatch.setitem(app.config, "SOCKETIO_CHANNEL", CHANNEL)
    handed: list[list[int]] = []  # the web's publisher is behind: no task, nothing marked
    monkeypatch.setattr(publish, "publish_outbox_events", lambda ids, *a, **k: handed.append(ids))
    session = new_session(client, tenant)

    response = client.post(
        f"/api/v1/sessions/{session['id']}/messages",
        json={"body": "Once, please"},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 201, response.get_json()
    posted = response.get_json()
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.message_id == posted["id"]))
    assert handed == [[event.id]] and event.emitted_at is None

    assert fanout.dispatch(event.id) == "sent"  # what the relay's task would run

    messages = received(web_node)
    assert [(m["event"], m["room"], m["data"]) for m in messages] == [
        ("message.created", [session_room(session["id"])], [posted])
    ]
    socket = db.session.scalar(
        select(Delivery).where(Delivery.outbox_event_id == event.id, Delivery.channel == "socket")
    )
    assert socket.status == "sent"
    assert redis.Redis.from_url(redis_url).exists(f"{CHANNEL}:emitted:{event.id}") == 1

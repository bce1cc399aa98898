# ruff: noqa: F811 - the fixtures imported from test_fanout are parameters here
"""The relay re-sends dispatch tasks that were published but never started: a worker killed
before it began one (late acks: Redis returns it only after the visibility timeout), or a
Redis that restarted empty. Found by the worker drill (bench/drills.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from models import db, deliveries
from models.db import utcnow
from models.entities import OutboxEvent
from tests.factories import new_handoff
from tests.workers.test_fanout import (  # noqa: F401 - fixtures
    outbox_event,
    presence,
    queue_server,
    run,
    sent_tasks,
    web_node,
)
from workers import names
from workers.outbox_relay import STUCK_DISPATCH_GRACE, relay


def _published_ago(event: OutboxEvent, ago: timedelta) -> None:
    db.session.execute(
        update(OutboxEvent).where(OutboxEvent.id == event.id).values(published_at=utcnow() - ago)
    )
    db.session.commit()


def test_a_published_dispatch_that_never_started_is_sent_again_once(
    client, tenant, web_node, presence, sent_tasks
):
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])
    assert event.published_at is not None  # the web process handed it to the broker
    sent_tasks.clear()
    assert relay(timedelta(0))["redispatched"] == []  # still within its grace period

    _published_ago(event, STUCK_DISPATCH_GRACE + timedelta(seconds=1))  # and it never ran
    assert relay(timedelta(0))["redispatched"] == [event.id]
    assert sent_tasks == [(names.DISPATCH_OUTBOX_EVENT, [event.id])]
    assert relay(timedelta(0))["redispatched"] == []  # the new task gets its own grace

    assert run(event).get() == "sent"
    assert [m["event"] for m in web_node.messages()] == ["handoff.created"]


def test_a_dispatch_that_started_or_is_long_gone_is_left_alone(
    client, tenant, web_node, presence, sent_tasks
):
    started, ancient = new_handoff(client, tenant), new_handoff(client, tenant)
    started_event, ancient_event = outbox_event(started["id"]), outbox_event(ancient["id"])
    assert run(started_event).get() == "sent"
    _published_ago(started_event, timedelta(minutes=5))
    # Past the visibility timeout Redis gives an unacknowledged task back by itself.
    _published_ago(ancient_event, timedelta(hours=2))

    assert relay(timedelta(0))["redispatched"] == []
    db.session.expire_all()
    socket_rows = db.session.scalars(
        select(deliveries.Delivery.outbox_event_id).where(
            deliveries.Delivery.channel == deliveries.SOCKET
        )
    ).all()
    assert socket_rows == [started_event.id]

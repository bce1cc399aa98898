"""Publishing outbox events: inline after the commit, or from the served web process's
background publisher, which sends what has gathered as one message."""

from __future__ import annotations

import time

from sqlalchemy import select

from models import db, outbox
from models.entities import OutboxEvent
from tests.factories import new_handoff
from workers import fanout, names
from workers.publish import MAX_BATCH, BackgroundPublisher, publish_outbox_events


def _record_sent(app, monkeypatch) -> list[tuple[str, list]]:
    celery = app.extensions["celery"]
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(
        celery, "send_task", lambda name, args=None, **kw: sent.append((name, list(args or [])))
    )
    return sent


def _unpublished_events(client, tenant, count: int) -> list[int]:
    for _ in range(count):
        new_handoff(client, tenant)
    ids = list(db.session.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id)))
    db.session.execute(OutboxEvent.__table__.update().values(published_at=None))
    db.session.commit()
    return ids


def test_a_few_events_go_one_per_task_and_a_backlog_in_batches(app, client, tenant, monkeypatch):
    ids = _unpublished_events(client, tenant, 3 + MAX_BATCH)
    sent = _record_sent(app, monkeypatch)

    assert publish_outbox_events(ids[:3]) == ids[:3]
    assert publish_outbox_events(ids[3:]) == ids[3:]

    assert sent == [
        (names.DISPATCH_OUTBOX_EVENT, ids[:1]),
        (names.DISPATCH_OUTBOX_EVENT, ids[1:2]),
        (names.DISPATCH_OUTBOX_EVENT, ids[2:3]),
        (names.DISPATCH_OUTBOX_EVENTS, [ids[3 : 3 + MAX_BATCH], []]),
    ]
    db.session.expire_all()
    assert all(e.published_at for e in db.session.scalars(select(OutboxEvent)))


def test_the_background_publisher_sends_what_requests_handed_it(app, client, tenant, monkeypatch):
    sent = _record_sent(app, monkeypatch)
    app.extensions["outbox_publisher"] = BackgroundPublisher(app)
    new_handoff(client, tenant, reason="Disk full")  # asserts the 201
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    [event_id] = db.session.scalars(select(OutboxEvent.id)).all()
    assert sent == [(names.DISPATCH_OUTBOX_EVENT, [event_id])]


def test_a_batch_dispatches_each_event_and_a_failed_one_goes_on_alone(
    app, client, tenant, monkeypatch
):
    ids = _unpublished_events(client, tenant, 3)
    sent = _record_sent(app, monkeypatch)
    dispatched = []

    def dispatch(outbox_event_id, emitted=False):
        dispatched.append(outbox_event_id)
        if outbox_event_id == ids[1]:
            raise fanout.DispatchIncomplete("Redis unreachable", 1.5, emitted=True)
        if outbox_event_id == ids[2]:
            raise RuntimeError("database went away")  # left to the outbox relay
        return "sent"

    monkeypatch.setattr(fanout, "dispatch", dispatch)
    retried = []
    monkeypatch.setattr(
        fanout.dispatch_outbox_event, "apply_async", lambda **kw: retried.append(kw)
    )

    outcome = fanout.dispatch_outbox_events.apply(args=[ids]).get()

    assert dispatched == ids
    assert outcome == {"sent": 1, "retrying": 1, "error": 1}
    assert retried == [
        {
            "args": [ids[1]],
            "kwargs": {"emitted": True, "account_id": tenant.account_id},
            "countdown": 1.5,
        }
    ]
    assert sent == []


def test_marking_published_stamps_each_time_once_and_emitted_only_where_it_went_live(
    app, client, tenant
):
    first, second, third = _unpublished_events(client, tenant, 3)

    outbox.mark_published([first, second], emitted_ids=[second])
    db.session.expire_all()
    stamped = {
        e.id: (e.published_at, e.emitted_at) for e in db.session.scalars(select(OutboxEvent))
    }
    assert stamped[first][0] is not None and stamped[first][1] is None
    assert stamped[second][0] is not None and stamped[second][1] is not None
    assert stamped[third] == (None, None)

    time.sleep(0.01)
    outbox.mark_published([first, second, third], emitted_ids=[first, second])
    db.session.expire_all()
    again = {e.id: (e.published_at, e.emitted_at) for e in db.session.scalars(select(OutboxEvent))}
    assert again[second] == stamped[second]  # already stamped: left as it was
    assert again[first][0] == stamped[first][0] and again[first][1] is not None
    assert again[third][0] is not None and again[third][1] is None

"""The fan-out task and the outbox relay, run in-process: fakeredis stands in for the
Socket.IO message queue (a subscriber plays the web nodes) and for presence. The same flow
with a real Redis, worker and web processes is in tests/integration/test_realtime.py."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
import time_machine
from kombu.exceptions import OperationalError
from sqlalchemy import select, update

from adapters.presence import Presence
from models import db, deliveries
from models.db import utcnow
from models.entities import Delivery, OutboxEvent
from models.rooms import seniors_room, user_room
from tests.factories import new_handoff
from workers import fanout, names
from workers.outbox_relay import relay

CHANNEL = "test-socketio"
SOCKET_RETRY_DEFAULTS = {
    "first_retry_seconds": fanout.SOCKET_RETRY.first_retry_seconds,
    "max_backoff_seconds": fanout.SOCKET_RETRY.max_backoff_seconds,
    "window": fanout.SOCKET_RETRY.window,
}


class FakeQueueManager(fanout.CheckedRedisManager):
    """The worker's emitter, publishing into a fakeredis server instead of a real Redis."""

    def __init__(self, server: fakeredis.FakeServer) -> None:
        super().__init__("redis://unused", CHANNEL)
        self.fake_server = server
        self.failures_left = 0

    def _publish(self, data):
        if not self.failures_left:
            return super()._publish(data)
        self.failures_left -= 1
        self.fake_server.connected = False
        try:
            return super()._publish(data)
        finally:
            self.fake_server.connected = True

    def _redis_connect(self) -> None:
        self.redis = fakeredis.FakeRedis(server=self.fake_server)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True


class WebNode:
    """What a web node would get from the message queue."""

    def __init__(self, server: fakeredis.FakeServer) -> None:
        self.pubsub = fakeredis.FakeRedis(server=server).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(CHANNEL)

    def messages(self) -> list[dict]:
        found, idle = [], 0
        while idle < 3:  # subscribe confirmations read as None too
            message = self.pubsub.get_message(timeout=0.01)
            idle = 0 if message else idle + 1
            if message:
                found.append(json.loads(message["data"]))
        return found


@pytest.fixture
def queue_server(monkeypatch) -> fakeredis.FakeServer:
    server = fakeredis.FakeServer()
    manager = FakeQueueManager(server)
    monkeypatch.setattr(fanout, "emitter", lambda: manager)
    return server


@pytest.fixture
def web_node(queue_server) -> WebNode:
    return WebNode(queue_server)


@pytest.fixture
def presence(app) -> Presence:
    presence = Presence(fakeredis.FakeRedis(), ttl_seconds=30)
    app.extensions["presence"] = presence
    return presence


@pytest.fixture
def sent_tasks(app, monkeypatch) -> list[tuple[str, list]]:
    """Tasks sent through the app's Celery (memory broker), in order."""
    celery = app.extensions["celery"]
    original = celery.send_task
    sent: list[tuple[str, list]] = []

    def record(name, args=None, **kwargs):
        sent.append((name, list(args or [])))
        return original(name, args=args, **kwargs)

    monkeypatch.setattr(celery, "send_task", record)
    return sent


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Retry delays of milliseconds, so a test can run the retry straight away."""
    policy = deliveries.RetryPolicy(
        first_retry_seconds=0.001, max_backoff_seconds=0.001, window=timedelta(minutes=5)
    )
    monkeypatch.setattr(fanout, "SOCKET_RETRY", policy)


def outbox_event(handoff_id: int, event: str = "handoff.created") -> OutboxEvent:
    return db.session.scalar(
        select(OutboxEvent).where(OutboxEvent.handoff_id == handoff_id, OutboxEvent.event == event)
    )


def socket_row(event: OutboxEvent) -> Delivery:
    db.session.expire_all()
    return db.session.scalar(
        select(Delivery).where(Delivery.outbox_event_id == event.id, Delivery.channel == "socket")
    )


def email_rows(handoff_id: int) -> list[Delivery]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Delivery)
            .where(Delivery.handoff_id == handoff_id, Delivery.channel == "email")
            .order_by(Delivery.recipient_id)
        )
    )


def run(event: OutboxEvent, **kwargs):
    return fanout.dispatch_outbox_event.apply(args=[event.id], **kwargs)


def test_created_is_emitted_once_to_the_seniors_room_with_the_handoff_summary(
    client, tenant, web_node, presence, sent_tasks
):
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])

    assert run(event).get() == "sent"
    assert run(event).get() == "skipped"  # a duplicate task (the relay, a redelivery)

    [message] = web_node.messages()
    assert (message["method"], message["event"]) == ("emit", "handoff.created")
    assert message["room"] == [seniors_room(tenant.account_id)]
    # The summary the queue lists, not the full handoff with its escalation package.
    listed = client.get("/api/v1/escalations", headers=tenant.auth("eng")).get_json()
    [item] = [item for item in listed["items"] if item["id"] == handoff["id"]]
    assert message["data"] == [item]
    assert "escalation_package" not in item
    row = socket_row(event)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)


def test_claimed_goes_to_the_seniors_and_the_escalating_technician(
    client, tenant, web_node, presence, sent_tasks
):
    handoff = new_handoff(client, tenant)
    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
    event = outbox_event(handoff["id"], "handoff.claimed")

    assert run(event).get() == "sent"

    [message] = web_node.messages()
    assert message["event"] == "handoff.claimed"
    assert message["room"] == [seniors_room(tenant.account_id), user_room(tenant.users["tech"])]
    assert message["data"][0]["status"] == "claimed"
    assert message["data"][0]["claimed_by"] == {"id": tenant.users["eng"], "name": "Alpha MSP Eng"}
    assert email_rows(handoff["id"]) == []  # only a new handoff is emailed
    assert [name for name, _ in sent_tasks if name in (names.SEND_EMAIL, names.SEND_EMAILS)] == []


def test_offline_seniors_get_one_email_each_and_nobody_else_does(
    client, tenant, other_tenant, web_node, presence, sent_tasks
):
    presence.connected(tenant.users["eng"], "sid-eng")  # online: the socket is enough
    presence.connected(tenant.users["tech"], "sid-tech")
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])

    run(event)
    run(event)  # a duplicate dispatch adds nothing

    rows = email_rows(handoff["id"])
    assert [row.recipient_id for row in rows] == [tenant.users["admin"], tenant.users["eng2"]]
    # One message for the dispatch's emails, not one per recipient; none for the duplicate.
    enqueued = [args for name, args in sent_tasks if name in (names.SEND_EMAIL, names.SEND_EMAILS)]
    assert enqueued == [[[row.id for row in rows]]]
    other_accounts_rows = db.session.scalars(
        select(Delivery).where(Delivery.account_id == other_tenant.account_id)
    ).all()
    assert other_accounts_rows == []


@pytest.mark.parametrize(
    ("now", "held_until"),
    [
        # Written out by hand: 23:30 in New York, quiet 22:00-07:00, held until 07:00 local;
        # EST (UTC-5) in January, EDT (UTC-4) in July.
        (datetime(2026, 1, 20, 4, 30, tzinfo=UTC), datetime(2026, 1, 20, 12, 0, tzinfo=UTC)),
        (datetime(2026, 7, 14, 3, 30, tzinfo=UTC), datetime(2026, 7, 14, 11, 0, tzinfo=UTC)),
    ],
    ids=["winter", "summer"],
)
def test_email_recipients_follow_each_seniors_own_preferences(
    client, tenant, web_node, presence, sent_tasks, now, held_until
):
    """eng is online but asked for `always`; eng2 said `never`; the admin is offline inside
    quiet hours that wrap past midnight: only eng is emailed now, the admin's email is held
    until the quiet hours end, and eng2 has none."""
    quiet = {"quiet_hours": {"start": "22:00", "end": "07:00"}, "timezone": "America/New_York"}
    with time_machine.travel(now, tick=False):
        for who, body in [
            ("eng", {"notify_email": "always"}),
            ("eng2", {"notify_email": "never"}),
            ("admin", quiet),
        ]:
            response = client.patch("/api/v1/me", json=body, headers=tenant.auth(who))
            assert response.status_code == 200, response.get_json()
        presence.connected(tenant.users["eng"], "sid-eng")
        handoff = new_handoff(client, tenant)
        run(outbox_event(handoff["id"]))
        rows = email_rows(handoff["id"])
    assert [(r.recipient_id, r.status, r.reason) for r in rows] == [
        (tenant.users["admin"], "held", "business_hours"),
        (tenant.users["eng"], "pending", "business_hours"),
    ]
    held = rows[0].held_until
    assert (held if held.tzinfo else held.replace(tzinfo=UTC)) == held_until
    assert rows[1].held_until is None
    enqueued = [args for name, args in sent_tasks if name == names.SEND_EMAILS]
    assert enqueued == [[[rows[1].id]]]  # the held one is not sent


def test_a_failing_publish_is_detected_and_the_task_retried(
    client, tenant, queue_server, web_node, presence, sent_tasks, monkeypatch
):
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])
    flaky = fanout.emitter()
    flaky.failures_left = 1  # Redis refuses the first publish

    # apply() runs Celery's retry in-process, straight away.
    assert run(event).get() == "sent"

    assert flaky.failures_left == 0
    assert [m["event"] for m in web_node.messages()] == ["handoff.created"]
    row = socket_row(event)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)


def test_a_failed_attempt_is_visible_and_retried_soon(
    client, tenant, queue_server, presence, sent_tasks, monkeypatch
):
    monkeypatch.setattr(fanout, "SOCKET_RETRY", deliveries.RetryPolicy(**SOCKET_RETRY_DEFAULTS))
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])
    queue_server.connected = False

    with pytest.raises(fanout.DispatchIncomplete) as incomplete:
        fanout.dispatch(event.id)

    assert incomplete.value.retry_in <= 1.0 + fanout.COUNTDOWN_MARGIN_SECONDS
    assert incomplete.value.emitted is False
    url = f"/api/v1/escalations/{handoff['id']}/deliveries"
    items = client.get(url, headers=tenant.auth("eng")).get_json()["items"]
    [socket_item] = [item for item in items if item["channel"] == "socket"]
    assert (socket_item["status"], socket_item["attempts"]) == ("retrying", 1)
    assert "message queue unreachable" in socket_item["last_error"]
    assert len(email_rows(handoff["id"])) == 3  # emails do not wait for the socket


def test_a_publish_nobody_hears_is_retried_while_a_recipient_is_online(
    client, tenant, queue_server, presence, sent_tasks
):
    """A web node reconnecting to Redis misses messages: PUBLISH reaches no subscriber."""
    presence.connected(tenant.users["eng"], "sid-eng")
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])

    with pytest.raises(fanout.DispatchIncomplete):
        fanout.dispatch(event.id)
    assert "No web node" in socket_row(event).last_error

    node = WebNode(queue_server)  # the web node is subscribed again
    time.sleep(0.01)  # the (shortened) retry delay
    assert fanout.dispatch(event.id) == "sent"
    assert [m["event"] for m in node.messages()] == ["handoff.created"]


def test_with_nobody_online_an_unheard_publish_counts_as_sent(
    client, tenant, queue_server, presence, sent_tasks
):
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])
    assert run(event).get() == "sent"
    assert len(email_rows(handoff["id"])) == 3  # admin, eng and eng2 are all offline


def test_an_emit_that_keeps_failing_ends_failed_and_then_every_senior_is_emailed(
    client, tenant, queue_server, presence, sent_tasks, monkeypatch
):
    monkeypatch.setattr(fanout, "SOCKET_RETRY", deliveries.RetryPolicy(window=timedelta(0)))
    presence.connected(tenant.users["eng"], "sid-eng")  # online, yet the event never came
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])
    queue_server.connected = False

    assert run(event).get() == "failed"

    url = f"/api/v1/escalations/{handoff['id']}/deliveries"
    items = client.get(url, headers=tenant.auth("eng")).get_json()["items"]
    [socket_item] = [item for item in items if item["channel"] == "socket"]
    assert (socket_item["status"], socket_item["attempts"]) == ("failed", 1)
    assert "message queue unreachable" in socket_item["last_error"]
    emailed = sorted(item["recipient"]["id"] for item in items if item["channel"] == "email")
    assert emailed == sorted(tenant.users[who] for who in ("admin", "eng", "eng2"))


def test_presence_unreachable_retries_the_emails_without_emitting_twice(
    client, tenant, web_node, app, sent_tasks
):
    presence_server = fakeredis.FakeServer()
    app.extensions["presence"] = Presence(fakeredis.FakeRedis(server=presence_server))
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])
    presence_server.connected = False

    with pytest.raises(fanout.DispatchIncomplete) as incomplete:
        fanout.dispatch(event.id)

    assert incomplete.value.emitted is True
    assert email_rows(handoff["id"]) == []
    presence_server.connected = True
    time.sleep(0.01)
    assert fanout.dispatch(event.id, emitted=True) == "sent"
    assert [m["event"] for m in web_node.messages()] == ["handoff.created"]
    assert len(email_rows(handoff["id"])) == 3


def test_the_relay_publishes_what_the_web_process_could_not(
    app, client, tenant, web_node, presence, sent_tasks, monkeypatch
):
    celery = app.extensions["celery"]

    def broker_down(name, args=None, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as outage:
        outage.setattr(celery, "send_task", broker_down)
        handoff = new_handoff(client, tenant, reason="Redis is down")  # asserts the 201
    event = outbox_event(handoff["id"])
    assert event.published_at is None

    result = relay(timedelta(0))

    assert result["published"] == [event.id]
    assert sent_tasks == [(names.DISPATCH_OUTBOX_EVENT, [event.id])]
    db.session.expire_all()
    assert db.session.get(OutboxEvent, event.id).published_at is not None
    assert relay(timedelta(0))["published"] == []  # nothing left to relay


def test_relaying_the_same_event_twice_is_harmless(
    app, client, tenant, web_node, presence, sent_tasks, monkeypatch
):
    """The worst case: the relay's publish went out but marking it published failed, so
    the next tick publishes it again and two dispatch tasks run."""
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])
    db.session.execute(update(OutboxEvent).values(published_at=None))
    db.session.commit()
    monkeypatch.setattr("models.outbox.mark_published", lambda ids: None)
    sent_tasks.clear()

    relay(timedelta(0))
    relay(timedelta(0))
    dispatches = [args for name, args in sent_tasks if name == names.DISPATCH_OUTBOX_EVENT]
    assert dispatches == [[event.id], [event.id]]
    outcomes = [fanout.dispatch_outbox_event.apply(args=args).get() for args in dispatches]

    assert outcomes == ["sent", "skipped"]
    assert [m["event"] for m in web_node.messages()] == ["handoff.created"]
    assert len(email_rows(handoff["id"])) == 3
    [[emailed]] = [args for name, args in sent_tasks if name == names.SEND_EMAILS]
    assert sorted(emailed) == sorted(row.id for row in email_rows(handoff["id"]))


def test_the_relay_resends_a_dispatch_whose_worker_died(
    client, tenant, web_node, presence, sent_tasks, monkeypatch
):
    handoff = new_handoff(client, tenant)
    event = outbox_event(handoff["id"])
    # A worker claimed the socket delivery, then was killed before it finished.
    row = deliveries.claim_socket_delivery(event, timedelta(seconds=30))
    assert row is not None
    assert relay(timedelta(0))["resent"] == []  # its lease still holds: nothing to do yet

    row.locked_until = row.created_at = utcnow() - timedelta(minutes=2)  # the lease ran out
    db.session.commit()
    assert relay(timedelta(0))["resent"] == [event.id]
    assert relay(timedelta(0))["resent"] == []  # requeued: the next tick leaves it alone

    assert run(event).get() == "sent"
    assert [m["event"] for m in web_node.messages()] == ["handoff.created"]


def test_the_dispatch_and_relay_tasks_are_routed_and_scheduled(app):
    celery = app.extensions["celery"]
    routes = celery.conf.task_routes
    assert routes[names.DISPATCH_OUTBOX_EVENT] == {"queue": names.QUEUE_REALTIME}
    assert routes[names.RELAY_OUTBOX] == {"queue": names.QUEUE_MAINTENANCE}
    assert names.DISPATCH_OUTBOX_EVENT in celery.tasks and names.RELAY_OUTBOX in celery.tasks
    [entry] = [e for e in celery.conf.beat_schedule.values() if e["task"] == names.RELAY_OUTBOX]
    assert entry["schedule"] <= timedelta(seconds=5)

"""An outbox event goes live once, whoever emits it: the web process right after the commit,
or a worker whose dispatch the relay re-sent while the web's publisher was still behind.
Real Redis: the check and the publish are one server-side step."""

from __future__ import annotations

import json
import time

import pytest
import redis

from adapters.broadcast import AlreadyEmitted, CheckedRedisManager, NoWebNodeListening

CHANNEL = "emit-once-test"


@pytest.fixture
def web_node(redis_url):
    """A subscriber on the Socket.IO channel, as a web node is."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    yield pubsub
    pubsub.close()
    client.close()


def received(pubsub, wait: float = 0.5) -> list[dict]:
    messages, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            messages.append(json.loads(message["data"]))
    return messages


def test_two_processes_emitting_the_same_event_show_it_once(redis_url, web_node):
    web, worker = CheckedRedisManager(redis_url, CHANNEL), CheckedRedisManager(redis_url, CHANNEL)

    worker.emit_once(41, "handoff.created", {"id": 7}, to=["account:1:seniors"])
    with pytest.raises(AlreadyEmitted):
        web.emit_once(41, "handoff.created", {"id": 7}, to=["account:1:seniors"])
    web.emit_once(42, "handoff.claimed", {"id": 7}, to=["account:1:seniors"])

    messages = received(web_node)
    assert [(m["event"], m["data"]) for m in messages] == [
        ("handoff.created", [{"id": 7}]),
        ("handoff.claimed", [{"id": 7}]),
    ]


def test_an_emit_nobody_heard_can_be_tried_again(redis_url):
    first, later = CheckedRedisManager(redis_url, CHANNEL), CheckedRedisManager(redis_url, CHANNEL)
    with pytest.raises(NoWebNodeListening):
        first.emit_once(51, "handoff.created", {"id": 8}, to=["account:1:seniors"])

    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    try:
        later.emit_once(51, "handoff.created", {"id": 8}, to=["account:1:seniors"])
        assert [m["event"] for m in received(pubsub)] == ["handoff.created"]
    finally:
        pubsub.close()
        client.close()


def test_the_key_expires(redis_url, web_node):
    CheckedRedisManager(redis_url, CHANNEL).emit_once(61, "handoff.created", {}, to=["r"])
    ttl = redis.Redis.from_url(redis_url).ttl(f"{CHANNEL}:emitted:61")
    assert 0 < ttl <= 3600

"""adapters.presence against fakeredis: what "online" means to the fan-out."""

from __future__ import annotations

import time

import fakeredis
import pytest

from adapters.presence import Presence, presence_key


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_a_user_is_online_while_any_connection_is_open(redis):
    presence = Presence(redis)
    presence.connected(7, "tab-1")
    presence.connected(7, "tab-2")
    presence.disconnected(7, "tab-1")
    assert presence.is_online(7)
    presence.disconnected(7, "tab-2")
    assert not presence.is_online(7)


def test_offline_keeps_the_order_asked_and_ignores_other_users(redis):
    presence = Presence(redis)
    presence.connected(2, "a")
    presence.connected(99, "b")
    assert presence.offline([3, 2, 1]) == [3, 1]
    assert presence.online([3, 2, 1, 2]) == {2}
    assert presence.online([]) == set()


def test_connections_nobody_refreshes_expire_and_are_swept(redis):
    presence = Presence(redis, ttl_seconds=0.3)
    presence.connected(5, "on-a-dead-node")
    presence.connected(6, "on-a-live-node")
    time.sleep(0.4)
    assert presence.online([5, 6]) == set()

    presence.refresh({"on-a-live-node": 6, "new-tab": 5})
    assert presence.online([5, 6]) == {5, 6}
    assert redis.zrange(presence_key(5), 0, -1) == [b"new-tab"]  # the dead entry is gone


def test_a_refresh_restores_entries_a_redis_restart_lost(redis):
    presence = Presence(redis)
    presence.connected(1, "tab")
    redis.flushall()
    assert not presence.is_online(1)
    presence.refresh({"tab": 1})
    assert presence.is_online(1)


def test_keys_expire_shortly_after_their_last_entry(redis):
    presence = Presence(redis, ttl_seconds=30)
    presence.connected(4, "tab")
    assert 30 <= redis.ttl(presence_key(4)) <= 31


def test_an_unreachable_redis_raises_instead_of_answering_offline():
    server = fakeredis.FakeServer()
    presence = Presence(fakeredis.FakeRedis(server=server))
    server.connected = False
    with pytest.raises(Exception, match="connection"):
        presence.offline([1, 2])

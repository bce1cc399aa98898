"""Who is online: a user is online while at least one of their Socket.IO connections is open.

One Redis sorted set per user holds their open connections (member: the connection id,
score: when it expires). The web process that holds a connection adds it on connect,
removes it on disconnect and pushes its expiry forward with a heartbeat. A web node that
dies without saying goodbye stops refreshing, so its connections expire after the TTL and
leave no ghost "online" user. Times come from the Redis server's clock, so web nodes and
workers on machines with skewed clocks still agree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

KEY_PREFIX = "presence:user:"
#: The one definition of the presence settings' defaults (docs/realtime.md); web.config
#: reads these for the environment variables of the same names.
PRESENCE_DEFAULTS = {"PRESENCE_TTL_SECONDS": 30.0, "PRESENCE_HEARTBEAT_SECONDS": 10.0}
DEFAULT_TTL_SECONDS = PRESENCE_DEFAULTS["PRESENCE_TTL_SECONDS"]


def presence_key(user_id: int) -> str:
    return f"{KEY_PREFIX}{user_id}"


def redis_client(url: str, timeout: float = 1.0) -> redis.Redis:
    """A client that fails within about `timeout` when Redis is down (one quick retry)."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


class Presence:
    def __init__(self, client: redis.Redis, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds

    def _now(self) -> float:
        seconds, microseconds = self.client.time()
        return seconds + microseconds / 1_000_000

    def _key_ttl(self) -> int:
        # The whole key goes once its newest member has expired (a little after the TTL).
        return math.ceil(self.ttl_seconds) + 1

    def connected(self, user_id: int, connection_id: str) -> None:
        self.refresh({connection_id: user_id})

    def disconnected(self, user_id: int, connection_id: str) -> None:
        self.client.zrem(presence_key(user_id), connection_id)

    def refresh(self, connections: Mapping[str, int]) -> None:
        """Mark these connections (connection id → user id) alive for another TTL, and drop
        their users' expired connections (a crashed node's). Re-adds a connection whose entry
        was lost (Redis restarted), so presence heals on the next heartbeat."""
        if not connections:
            return
        by_user: dict[int, dict[str, float]] = defaultdict(dict)
        expires_at = self._now() + self.ttl_seconds
        for connection_id, user_id in connections.items():
            by_user[user_id][connection_id] = expires_at
        pipe = self.client.pipeline(transaction=False)
        for user_id, members in by_user.items():
            key = presence_key(user_id)
            pipe.zadd(key, members)
            pipe.zremrangebyscore(key, "-inf", expires_at - self.ttl_seconds)
            pipe.expire(key, self._key_ttl())
        pipe.execute()

    def online(self, user_ids: Iterable[int]) -> set[int]:
        """The users among `user_ids` with at least one unexpired connection."""
        user_ids = list(dict.fromkeys(user_ids))
        if not user_ids:
            return set()
        now = self._now()
        pipe = self.client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.zcount(presence_key(user_id), f"({now}", "+inf")
        counts = pipe.execute()
        return {user_id for user_id, count in zip(user_ids, counts, strict=True) if count}

    def offline(self, user_ids: Iterable[int]) -> list[int]:
        user_ids = list(user_ids)
        online = self.online(user_ids)
        return [user_id for user_id in user_ids if user_id not in online]

    def is_online(self, user_id: int) -> bool:
        return user_id in self.online([user_id])


def presence_of(extensions: MutableMapping[str, Any], config: Mapping[str, Any]) -> Presence:
    """An app's presence store (REDIS_URL, PRESENCE_TTL_SECONDS), made on first use and kept
    in its `extensions` (a test may put its own there first)."""
    presence = extensions.get("presence")
    if presence is None:
        presence = Presence(
            redis_client(config["REDIS_URL"]),
            float(config.get("PRESENCE_TTL_SECONDS", DEFAULT_TTL_SECONDS)),
        )
        extensions["presence"] = presence
    return presence

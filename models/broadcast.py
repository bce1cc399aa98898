"""Putting an event on the Socket.IO message queue, so every web node delivers it to its own
connections in the target rooms, and knowing whether that worked.

python-socketio's RedisManager logs a failed publish and returns; whoever must retry needs
to know. PUBLISH answers how many subscribers got the message, which tells "nobody
listening" apart from "delivered to the web nodes". Both the web process (the first,
immediate emit) and the workers (the retry) use it.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import socketio
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


class EmitFailed(Exception):
    """The event did not reach the web nodes; worth another try."""


class NoWebNodeListening(EmitFailed):
    """Redis took the message but no web node was subscribed to the channel."""


class CheckedRedisManager(socketio.RedisManager):
    """A write-only Socket.IO message-queue manager whose publish raises on failure."""

    def __init__(self, url: str, channel: str, timeout: float = 2.0) -> None:
        super().__init__(
            url,
            channel=channel,
            write_only=True,
            logger=log,
            redis_options={
                "socket_connect_timeout": timeout,
                "socket_timeout": timeout,
                # No retry inside redis-py: a PUBLISH whose reply timed out may have been
                # delivered, and sending it again would show the event twice. The caller
                # decides (the worker retries an emit the web process could not confirm).
                "retry": Retry(NoBackoff(), 0),
            },
        )

    def _publish(self, data: Any) -> int:
        try:
            if not self.connected:
                self._redis_connect()
            receivers = self.redis.publish(self.channel, self.json.dumps(data))
        except Exception as exc:
            self.connected = False
            raise EmitFailed(f"Socket.IO message queue unreachable: {exc!r}") from exc
        if not receivers:
            raise NoWebNodeListening("No web node is subscribed to the Socket.IO channel.")
        return receivers


@cache
def broadcaster(url: str, channel: str, timeout: float = 2.0) -> CheckedRedisManager:
    """One publisher per process and message queue (it keeps its Redis connection)."""
    return CheckedRedisManager(url, channel, timeout)

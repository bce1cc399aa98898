"""Putting an event on the Socket.IO message queue, so every web node delivers it to its own
connections in the target rooms, and knowing whether that worked.

python-socketio's RedisManager logs a failed publish and returns; whoever must retry needs
to know. PUBLISH answers how many subscribers got the message, which tells "nobody
listening" apart from "delivered to the web nodes". Both the web process (the first,
immediate emit) and the workers (the retry) use it.

An outbox event goes out once however many try: `emit_once` publishes through a Redis
script that first sets a key for the event (SET NX) and publishes only if it was not set,
in one atomic step. The web process and a worker that both hold the event (the relay
re-sent it while the web's publisher was still behind) cannot both show it.
"""

from __future__ import annotations

import logging
import threading
from functools import cache
from typing import Any

import socketio
from redis.backoff import NoBackoff
from redis.retry import Retry

#: How long the web process may spend handing work to Redis (a live emit, a task for the
#: broker), all tries included: the default of PUBLISH_TIMEOUT_SECONDS, defined once.
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 0.5

log = logging.getLogger(__name__)


class EmitFailed(Exception):
    """The event did not reach the web nodes; worth another try."""


class NoWebNodeListening(EmitFailed):
    """Redis took the message but no web node was subscribed to the channel."""


class AlreadyEmitted(Exception):
    """Another process already put this event on the message queue."""


# How long an event's "emitted" key lives: well past any retry of its live emit (after a
# dispatch finishes, the outbox row says so and nobody emits it again anyway).
EMITTED_KEY_SECONDS = 3600

# KEYS[1] the event's key; ARGV channel, message, key lifetime. -1: emitted before.
# Nobody listening frees the key again, so a later try (a web node back) may emit.
_PUBLISH_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[3])) then
    return -1
end
local receivers = redis.call('PUBLISH', ARGV[1], ARGV[2])
if receivers == 0 then
    redis.call('DEL', KEYS[1])
end
return receivers
"""


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
        self._once = threading.local()  # the event key of the emit_once in progress

    def emit_once(self, event_id: int, event: str, data: Any, to: list[str]) -> None:
        """Emit outbox event `event_id` unless any process already did (AlreadyEmitted)."""
        self._once.key = f"{self.channel}:emitted:{event_id}"
        try:
            self.emit(event, data, to=to)
        finally:
            self._once.key = None

    def _publish(self, data: Any) -> int:
        once_key = getattr(self._once, "key", None)
        message = self.json.dumps(data)
        try:
            if not self.connected:
                self._redis_connect()
            if once_key is None:
                receivers = self.redis.publish(self.channel, message)
            else:
                receivers = self._publish_once_script()(
                    keys=[once_key], args=[self.channel, message, EMITTED_KEY_SECONDS]
                )
        except Exception as exc:
            self.connected = False
            raise EmitFailed(f"Socket.IO message queue unreachable: {exc!r}") from exc
        if receivers == -1:
            raise AlreadyEmitted(f"{once_key} was emitted before.")
        if not receivers:
            raise NoWebNodeListening("No web node is subscribed to the Socket.IO channel.")
        return receivers

    def _publish_once_script(self) -> Any:
        """The script, registered with the current connection (EVALSHA, loaded on first use)."""
        if getattr(self, "_script_client", None) is not self.redis:
            self._script_client = self.redis
            self._script = self.redis.register_script(_PUBLISH_ONCE)
        return self._script


@cache
def broadcaster(url: str, channel: str, timeout: float = 2.0) -> CheckedRedisManager:
    """One publisher per process and message queue (it keeps its Redis connection)."""
    return CheckedRedisManager(url, channel, timeout)

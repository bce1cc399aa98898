"""The Socket.IO edge: connect auth, rooms joined server-side, presence.

A connection authenticates with `auth={"token": "<api token>"}` or with the login session
cookie; anything else is refused. It then joins its account's seniors or technicians room
and its own user room; clients never choose rooms. Events come from the worker through the
Redis message queue (workers/fanout.py), so every web node delivers to its own connections.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import ConnectionRefusedError, join_room

from models import User
from models.accounts import user_for_token
from models.presence import Presence, presence_of
from models.rooms import rooms_of
from web.auth import resolve_user
from web.extensions import socketio

log = logging.getLogger(__name__)


def _presence() -> Presence:
    return presence_of(current_app.extensions, current_app.config)


DEFAULT_HEARTBEAT_SECONDS = 10.0


class LocalConnections:
    """This process's open connections (sid → user id), kept alive in Redis by one heartbeat."""

    def __init__(self) -> None:
        self.users_by_sid: dict[str, int] = {}
        self._heartbeat_started = False
        self._lock = threading.Lock()

    def start_heartbeat(self, app: Flask) -> None:
        with self._lock:
            if self._heartbeat_started:
                return
            self._heartbeat_started = True
        socketio.start_background_task(_heartbeat, app, self)


def register_realtime(app: Flask) -> None:
    """Attach the connect/disconnect handlers to this app's Socket.IO server."""
    app.extensions["realtime"] = LocalConnections()
    socketio.on_event("connect", on_connect)
    socketio.on_event("disconnect", on_disconnect)


def _local() -> LocalConnections:
    return current_app.extensions["realtime"]


def authenticate(auth: Any) -> User | None:
    """An API token in the connect payload, else the login cookie (as on HTTP). A token that
    is present but wrong is not rescued by a cookie."""
    if isinstance(auth, dict) and "token" in auth:
        token = auth["token"]
        return user_for_token(token) if isinstance(token, str) and token else None
    return resolve_user()


def on_connect(auth: Any = None) -> None:
    try:
        user = authenticate(auth)
    except Exception:
        log.exception("Socket.IO connect: could not check credentials")
        raise ConnectionRefusedError("Service unavailable, try again shortly.") from None
    if user is None:
        raise ConnectionRefusedError("Authentication required: a valid token or login.")
    for room in rooms_of(user):
        join_room(room)
    local = _local()
    local.users_by_sid[request.sid] = user.id
    try:
        _presence().connected(user.id, request.sid)
    except Exception:
        # The heartbeat adds it once Redis answers again; events need Redis anyway.
        log.warning("Presence: could not record connection of user %s", user.id, exc_info=True)
    local.start_heartbeat(current_app._get_current_object())  # type: ignore[attr-defined]
    log.debug("Socket %s connected for user %s", request.sid, user.id)


def on_disconnect(reason: Any = None) -> None:
    user_id = _local().users_by_sid.pop(request.sid, None)
    if user_id is None:
        return
    try:
        _presence().disconnected(user_id, request.sid)
    except Exception:
        # Its entry expires after the TTL instead.
        log.warning("Presence: could not remove connection of user %s", user_id, exc_info=True)


def _heartbeat(app: Flask, local: LocalConnections) -> None:
    """Every few seconds, push this process's connections' expiry forward. Never exits."""
    interval = float(app.config.get("PRESENCE_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS))
    while True:
        socketio.sleep(interval)
        connections = dict(local.users_by_sid)
        if not connections:
            continue
        try:
            with app.app_context():
                _presence().refresh(connections)
        except Exception:
            log.warning("Presence heartbeat failed; retrying in %.0f s", interval, exc_info=True)

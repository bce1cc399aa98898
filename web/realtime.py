"""The Socket.IO edge: connect auth, rooms joined server-side, presence.

A connection authenticates with `auth={"token": "<api token>"}` or with the login session
cookie; anything else is refused. It then joins its account's seniors or technicians room
and its own user room; clients never choose rooms. Events come from the worker through the
Redis message queue (workers/fanout.py), so every web node delivers to its own connections.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import ConnectionRefusedError, join_room

from adapters.presence import PRESENCE_DEFAULTS, Presence, presence_of
from models import User, db, tenancy
from models.credentials import Credential, authenticate_token, invalid_connections
from models.rooms import rooms_of
from web.auth import resolve_credential
from web.config import DEFAULT_CREDENTIAL_CHECK_SECONDS
from web.extensions import socketio

log = logging.getLogger(__name__)


def _presence(app: Flask | None = None) -> Presence:
    app = app or current_app
    return presence_of(app.extensions, app.config)


DEFAULT_HEARTBEAT_SECONDS = PRESENCE_DEFAULTS["PRESENCE_HEARTBEAT_SECONDS"]
# Names the Socket.IO protocol reserves for the server's own lifecycle calls: a client that
# emits one is ignored rather than dispatched to the lifecycle handler.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error"})


class LocalConnections:
    """This process's open connections (sid → user id, and the credential that opened it),
    kept alive in Redis by one heartbeat and re-checked by one credential sweep."""

    def __init__(self) -> None:
        self.users_by_sid: dict[str, int] = {}
        self.credentials_by_sid: dict[str, tuple[str, int]] = {}
        self.accounts_by_sid: dict[str, int] = {}
        self._heartbeat_started = False
        self._lock = threading.Lock()

    def start_heartbeat(self, app: Flask) -> None:
        with self._lock:
            if self._heartbeat_started:
                return
            self._heartbeat_started = True
        socketio.start_background_task(_background, app, self)


def register_realtime(app: Flask) -> None:
    """Attach the connect/disconnect handlers to this app's Socket.IO server."""
    app.extensions["realtime"] = LocalConnections()
    socketio.on_event("connect", on_connect)
    socketio.on_event("disconnect", on_disconnect)
    ignore_reserved_client_events(socketio.server)


def ignore_reserved_client_events(server: Any) -> None:
    """Drop client events named like the lifecycle calls. Without this a client emitting
    `disconnect` runs the disconnect handler (its presence vanishes while it stays
    connected) and `connect` re-runs authentication."""
    if server is None or getattr(server, "_reserved_events_guarded", False):
        return
    handle_event = server._handle_event

    def guarded(eio_sid: str, namespace: str | None, id: Any, data: Any) -> Any:
        name = data[0] if isinstance(data, list) and data else None
        if not isinstance(name, str) or name in RESERVED_EVENTS:
            log.info("Ignored a client event with a reserved or missing name: %r", name)
            return None
        return handle_event(eio_sid, namespace, id, data)

    server._handle_event = guarded
    server._reserved_events_guarded = True


def _local() -> LocalConnections:
    return current_app.extensions["realtime"]


def authenticate(auth: Any) -> Credential | None:
    """An API token in the connect payload, else the login cookie (as on HTTP). A token that
    is present but wrong is not rescued by a cookie."""
    if isinstance(auth, dict) and "token" in auth:
        token = auth["token"]
        return authenticate_token(token) if isinstance(token, str) and token else None
    return resolve_credential()


def connection_user() -> User | None:
    """The active user who opened this Socket.IO connection (checked on connect), with
    their account the tenant again: an event runs outside the connect handler's context,
    and under row-level security the user's row is visible only to their own account."""
    local = _local()
    tenancy.set_tenant(local.accounts_by_sid.get(request.sid))
    user_id = local.users_by_sid.get(request.sid)
    user = db.session.get(User, user_id) if user_id is not None else None
    return user if user is not None and user.active else None


def on_connect(auth: Any = None) -> None:
    try:
        credential = authenticate(auth)
    except Exception:
        log.exception("Socket.IO connect: could not check credentials")
        raise ConnectionRefusedError("Service unavailable, try again shortly.") from None
    if credential is None:
        raise ConnectionRefusedError("Authentication required: a valid token or login.")
    user = credential.user
    tenancy.set_tenant(user.account_id)
    for room in rooms_of(user):
        join_room(room)
    local = _local()
    local.users_by_sid[request.sid] = user.id
    local.accounts_by_sid[request.sid] = user.account_id
    local.credentials_by_sid[request.sid] = (credential.kind, credential.id)
    try:
        _presence().connected(user.id, request.sid)
    except Exception:
        # The heartbeat adds it once Redis answers again; events need Redis anyway.
        log.warning("Presence: could not record connection of user %s", user.id, exc_info=True)
    local.start_heartbeat(current_app._get_current_object())  # type: ignore[attr-defined]
    log.debug("Socket %s connected for user %s", request.sid, user.id)


def on_disconnect(reason: Any = None) -> None:
    local = _local()
    local.credentials_by_sid.pop(request.sid, None)
    local.accounts_by_sid.pop(request.sid, None)
    user_id = local.users_by_sid.pop(request.sid, None)
    if user_id is None:
        return
    try:
        _presence().disconnected(user_id, request.sid)
    except Exception:
        # Its entry expires after the TTL instead.
        log.warning("Presence: could not remove connection of user %s", user_id, exc_info=True)


def _background(app: Flask, local: LocalConnections) -> None:
    """One loop per process, never exits: every PRESENCE_HEARTBEAT_SECONDS push this
    process's connections' expiry forward; every CREDENTIAL_CHECK_SECONDS close the ones
    whose credential no longer authenticates."""
    heartbeat = float(app.config.get("PRESENCE_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS))
    check = float(app.config.get("CREDENTIAL_CHECK_SECONDS", DEFAULT_CREDENTIAL_CHECK_SECONDS))
    tick = min(heartbeat, check)
    last_heartbeat = last_check = time.monotonic()
    while True:
        socketio.sleep(tick)
        now = time.monotonic()
        if now >= last_heartbeat + heartbeat:
            last_heartbeat = now
            _heartbeat(app, local, heartbeat)
        if now >= last_check + check:
            last_check = now
            _credential_sweep(app, local)


def _heartbeat(app: Flask, local: LocalConnections, interval: float) -> None:
    connections = dict(local.users_by_sid)
    if not connections:
        return
    try:
        with app.app_context():
            _presence(app).refresh(connections)
    except Exception:
        log.warning("Presence heartbeat failed; retrying in %.0f s", interval, exc_info=True)


def _credential_sweep(app: Flask, local: LocalConnections) -> None:
    """Close this node's connections whose token was revoked, whose login ended or whose
    user was deactivated. Each node checks its own connections against the database, so no
    message between nodes can be lost."""
    connections = dict(local.credentials_by_sid)
    if not connections:
        return
    try:
        with app.app_context():
            stale = invalid_connections(connections)
    except Exception:
        log.warning("Credential sweep failed; retrying shortly", exc_info=True)
        return
    for sid in stale:
        log.info("Closing socket %s: its credential no longer authenticates", sid)
        try:
            socketio.server.disconnect(sid, namespace="/", ignore_queue=True)
        except Exception:
            log.warning("Could not close socket %s", sid, exc_info=True)

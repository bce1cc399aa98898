"""Socket.IO connect auth, server-side rooms and presence, with Flask-SocketIO's test client
(one process, no message queue) and fakeredis for presence. The same behaviour against a
real Redis, worker and web processes is in tests/integration/test_realtime.py."""

from __future__ import annotations

import time

import fakeredis
import pytest

from adapters.presence import Presence
from models.rooms import seniors_room, technicians_room, user_room
from tests.factories import cookie_login, make_tenant
from web.extensions import socketio

PAYLOAD = {"id": 1}


@pytest.fixture
def presence(app) -> Presence:
    presence = Presence(fakeredis.FakeRedis(), ttl_seconds=30)
    app.extensions["presence"] = presence
    return presence


def connect(app, token: str | None = None, **kwargs):
    auth = {"token": token} if token is not None else kwargs.pop("auth", None)
    return socketio.test_client(app, auth=auth, **kwargs)


def names(client) -> list[str]:
    return [event["name"] for event in client.get_received()]


def received(client, event: str) -> list:
    return [args[0] for e in client.get_received() if e["name"] == event for args in [e["args"]]]


def test_a_valid_api_token_connects_and_joins_only_its_own_rooms(app, tenant, presence):
    other = make_tenant("Beta MSP")
    senior = connect(app, tenant.tokens["eng"])
    technician = connect(app, tenant.tokens["tech"])
    outsider = connect(app, other.tokens["eng"])
    assert senior.is_connected() and technician.is_connected() and outsider.is_connected()

    socketio.emit("handoff.created", PAYLOAD, to=seniors_room(tenant.account_id))
    socketio.emit("for.technicians", PAYLOAD, to=technicians_room(tenant.account_id))
    socketio.emit("for.one.user", PAYLOAD, to=user_room(tenant.users["tech"]))

    assert names(senior) == ["handoff.created"]
    assert names(technician) == ["for.technicians", "for.one.user"]
    assert names(outsider) == []


def test_admins_join_the_seniors_room_and_their_own(app, tenant, presence):
    admin = connect(app, tenant.tokens["admin"])
    socketio.emit("handoff.created", PAYLOAD, to=seniors_room(tenant.account_id))
    socketio.emit("mine", PAYLOAD, to=user_room(tenant.users["admin"]))
    socketio.emit("not.mine", PAYLOAD, to=user_room(tenant.users["eng"]))
    assert names(admin) == ["handoff.created", "mine"]


@pytest.mark.parametrize(
    "auth",
    [None, {}, {"token": ""}, {"token": "forged-token"}, {"token": 12345}, "not-a-dict"],
    ids=["no-auth", "empty", "blank-token", "forged-token", "number-token", "string"],
)
def test_connections_without_valid_credentials_are_refused(app, tenant, presence, auth):
    client = connect(app, auth=auth)
    assert not client.is_connected()
    assert presence.online(tenant.users.values()) == set()


def test_the_login_cookie_authenticates_a_browser_connection(app, client, tenant, presence):
    cookie_login(client, tenant.users["eng2"])
    browser = connect(app, flask_test_client=client)
    assert browser.is_connected()
    socketio.emit("handoff.created", PAYLOAD, to=seniors_room(tenant.account_id))
    assert received(browser, "handoff.created") == [PAYLOAD]
    assert presence.online([tenant.users["eng2"]]) == {tenant.users["eng2"]}


def test_a_cookie_signed_with_another_key_is_refused(app, tenant, presence):
    from tests.factories import app_config, wired_app

    other_key = "other-" + "k" * 40
    forger = wired_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], SECRET_KEY=other_key))
    forged = forger.test_client()
    with forger.app_context():
        cookie_login(forged, tenant.users["admin"])
    cookie = forged.get_cookie("session")
    flask_client = app.test_client()
    flask_client.set_cookie("session", cookie.value)
    assert not connect(app, flask_test_client=flask_client).is_connected()


def test_a_bad_token_is_not_rescued_by_a_valid_cookie(app, client, tenant, presence):
    cookie_login(client, tenant.users["eng"])
    refused = connect(app, auth={"token": "forged"}, flask_test_client=client)
    assert not refused.is_connected()


def test_a_senior_stays_online_while_any_tab_is_open(app, tenant, presence):
    eng = tenant.users["eng"]
    first_tab = connect(app, tenant.tokens["eng"])
    second_tab = connect(app, tenant.tokens["eng"])
    assert presence.is_online(eng)
    first_tab.disconnect()
    assert presence.is_online(eng)
    second_tab.disconnect()
    assert not presence.is_online(eng)


def test_the_heartbeat_keeps_open_connections_online_past_the_ttl(app, tenant):
    app.config["PRESENCE_HEARTBEAT_SECONDS"] = 0.1
    presence = app.extensions["presence"] = Presence(fakeredis.FakeRedis(), ttl_seconds=0.5)
    connect(app, tenant.tokens["eng"])
    # A connection recorded by a process that then died: nobody refreshes it.
    presence.connected(tenant.users["eng2"], "sid-of-a-crashed-node")
    time.sleep(1.2)
    assert presence.online([tenant.users["eng"], tenant.users["eng2"]]) == {tenant.users["eng"]}


def test_a_redis_outage_does_not_refuse_connections_and_presence_heals(app, tenant):
    server = fakeredis.FakeServer()
    app.config["PRESENCE_HEARTBEAT_SECONDS"] = 0.1
    presence = app.extensions["presence"] = Presence(fakeredis.FakeRedis(server=server))
    server.connected = False
    senior = connect(app, tenant.tokens["eng"])
    assert senior.is_connected()
    server.connected = True
    deadline = time.monotonic() + 5
    while not presence.is_online(tenant.users["eng"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert presence.is_online(tenant.users["eng"])

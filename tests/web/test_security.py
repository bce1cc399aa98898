"""Security findings, closed (docs/security.md): the signing key, revocable logins and
tokens, deactivation, finite JSON, headers, per-token rate limits, idempotency keys per
user, strict ids and months, reserved Socket.IO names, and the security log."""

from __future__ import annotations

import json
import math
import secrets
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
import time_machine
from kombu.exceptions import EncodeError
from kombu.serialization import dumps as kombu_dumps
from sqlalchemy import select, update

import celery_config  # noqa: F401  (registers the payload serializer)
from adapters.presence import Presence
from models import db
from models.credentials import invalid_connections
from models.db import utcnow
from models.entities import ApiToken, FlowSession, SecurityEvent, User
from models.handover import reassign_candidates
from models.rooms import senior_ids
from tests.factories import app_config, cookie_login, make_tenant, new_session
from tests.web.contract import assert_error
from web import create_app
from web.extensions import socketio
from web.finite_json import dumps as socket_dumps
from web.pages.live import WATCH_SESSION
from web.secret_key import InsecureSecretKey

API = "/api/v1"


def raw_post(client, path: str, body: str, headers: dict[str, str]):
    return client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})


# --- 1. the signing key -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [None, "", "short-key", "local-development-only-not-a-secret", "dev-only-insecure-secret-key"],
    ids=["unset", "empty", "short", "found-in-the-repository", "old-default"],
)
def test_the_app_refuses_to_start_without_a_good_signing_key(database_url, key):
    config = app_config(database_url, TESTING=False, SECRET_KEY=key)
    with pytest.raises(InsecureSecretKey) as refused:
        create_app(config)
    message = str(refused.value)
    assert message.startswith("Refusing to start: SECRET_KEY") and "\n" not in message


def test_a_long_random_key_starts(database_url):
    app = create_app(app_config(database_url, TESTING=False, SECRET_KEY=secrets.token_hex(32)))
    assert app.config["SECRET_KEY"]


def test_a_cookie_naming_a_user_without_a_live_login_is_no_login(app, client, tenant):
    with client.session_transaction() as cookie:
        cookie["user_id"] = tenant.users["admin"]  # what a forger with the key would write
    assert_error(client.get(f"{API}/me"), 401)
    assert client.get("/escalations").status_code == 302


# --- 2. logins, tokens, users -------------------------------------------------------------------


def test_signing_out_ends_the_login_on_the_server(app, client, tenant):
    cookie_login(client, tenant.users["eng"])
    assert client.get(f"{API}/me").status_code == 200
    captured = client.get_cookie("session").value
    assert client.post("/logout").status_code == 303
    thief = app.test_client()
    thief.set_cookie("session", captured)
    assert_error(thief.get(f"{API}/me"), 401)
    assert thief.get("/escalations").status_code == 302
    kinds = db.session.scalars(select(SecurityEvent.kind).order_by(SecurityEvent.id)).all()
    assert kinds[-2:] == ["sign_in", "sign_out"]


def test_tokens_are_named_listed_without_secrets_used_and_revoked(client, tenant):
    created = client.post(
        f"{API}/tokens", json={"name": "CI", "expires_in_days": 30}, headers=tenant.auth("eng")
    )
    assert created.status_code == 201
    body = created.get_json()
    secret, token = body["secret"], body["token"]
    assert token["name"] == "CI" and token["expires_at"] and token["last_used_at"] is None
    mine = {"Authorization": f"Bearer {secret}"}
    assert client.get(f"{API}/me", headers=mine).get_json()["id"] == tenant.users["eng"]
    listed = client.get(f"{API}/tokens", headers=tenant.auth("eng")).get_json()["items"]
    assert secret not in json.dumps(listed)
    used = next(item for item in listed if item["id"] == token["id"])
    assert used["last_used_at"] is not None

    # A colleague cannot see or revoke it; another account's admin neither (404 both).
    assert_error(client.delete(f"{API}/tokens/{token['id']}", headers=tenant.auth("eng2")), 404)
    revoked = client.delete(f"{API}/tokens/{token['id']}", headers=tenant.auth("eng"))
    assert revoked.status_code == 204
    assert_error(client.get(f"{API}/me", headers=mine), 401)
    listed = client.get(f"{API}/tokens", headers=tenant.auth("eng")).get_json()["items"]
    assert token["id"] not in [item["id"] for item in listed]
    assert_error(client.delete(f"{API}/tokens/{token['id']}", headers=tenant.auth("eng")), 404)


def test_an_admin_lists_and_revokes_a_users_tokens_and_an_expired_token_is_refused(
    client, tenant, other_tenant
):
    eng_tokens = client.get(
        f"{API}/tokens?user_id={tenant.users['eng']}", headers=tenant.auth("admin")
    ).get_json()["items"]
    assert len(eng_tokens) == 1
    assert_error(
        client.get(f"{API}/tokens?user_id={tenant.users['eng']}", headers=tenant.auth("eng2")),
        404,
    )
    assert_error(
        client.get(
            f"{API}/tokens?user_id={tenant.users['eng']}", headers=other_tenant.auth("admin")
        ),
        404,
    )
    assert_error(
        client.delete(f"{API}/tokens/{eng_tokens[0]['id']}", headers=other_tenant.auth("admin")),
        404,
    )
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == tenant.users["tech"])
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    assert_error(client.get(f"{API}/me", headers=tenant.auth("tech")), 401)
    removed = client.delete(f"{API}/tokens/{eng_tokens[0]['id']}", headers=tenant.auth("admin"))
    assert removed.status_code == 204
    assert_error(client.get(f"{API}/me", headers=tenant.auth("eng")), 401)


@pytest.mark.parametrize(
    "body",
    [{}, {"name": " "}, {"name": "x", "expires_in_days": 0}, {"name": "x", "expires_in_days": "7"}],
)
def test_a_bad_token_request_is_422_and_creates_nothing(client, tenant, body):
    before = db.session.scalar(select(db.func.count(ApiToken.id)))
    assert_error(client.post(f"{API}/tokens", json=body, headers=tenant.auth("eng")), 422)
    assert db.session.scalar(select(db.func.count(ApiToken.id))) == before


def test_a_deactivated_user_is_refused_everywhere_and_not_notified(app, client, tenant):
    eng = tenant.users["eng"]
    browser = app.test_client()
    cookie_login(browser, eng)
    users = client.get(f"{API}/users", headers=tenant.auth("admin")).get_json()["items"]
    assert {user["id"]: user["active"] for user in users}[eng] is True
    assert_error(client.get(f"{API}/users", headers=tenant.auth("eng")), 403)

    patched = client.patch(
        f"{API}/users/{eng}", json={"active": False}, headers=tenant.auth("admin")
    )
    assert patched.status_code == 200 and patched.get_json()["active"] is False
    assert_error(client.get(f"{API}/me", headers=tenant.auth("eng")), 401)
    assert_error(browser.get(f"{API}/me"), 401)
    signed_in = client.post(
        "/login", data={"email": "eng@alpha-msp.example", "password": "user-password"}
    )
    assert signed_in.status_code == 200  # the form again, with the error
    assert eng not in senior_ids(tenant.account_id)
    admin = db.session.get(User, tenant.users["admin"])
    assert eng not in [user.id for user in reassign_candidates(admin)]

    back = client.patch(f"{API}/users/{eng}", json={"active": True}, headers=tenant.auth("admin"))
    assert back.get_json()["active"] is True
    assert client.get(f"{API}/me", headers=tenant.auth("eng")).status_code == 200


def test_roles_change_and_the_last_admin_stays(client, tenant, other_tenant):
    admin, tech = tenant.users["admin"], tenant.users["tech"]
    promoted = client.patch(
        f"{API}/users/{tech}", json={"role": "engineer"}, headers=tenant.auth("admin")
    )
    assert promoted.get_json()["role"] == "engineer"
    assert_error(
        client.patch(f"{API}/users/{admin}", json={"active": False}, headers=tenant.auth("admin")),
        409,
    )
    assert_error(
        client.patch(
            f"{API}/users/{admin}", json={"role": "engineer"}, headers=tenant.auth("admin")
        ),
        409,
    )
    assert_error(
        client.patch(
            f"{API}/users/{tech}", json={"active": False}, headers=other_tenant.auth("admin")
        ),
        404,
    )
    assert_error(
        client.patch(f"{API}/users/{tech}", json={"active": "no"}, headers=tenant.auth("admin")),
        422,
    )
    log = client.get(f"{API}/security-log", headers=tenant.auth("admin")).get_json()["items"]
    assert log[0]["kind"] == "role_changed"
    assert log[0]["details"] == {"old": "technician", "new": "engineer"}
    assert log[0]["actor"]["id"] == admin and log[0]["subject"]["id"] == tech


def test_invalid_connections_are_the_revoked_expired_and_deactivated_ones(client, tenant):
    tokens = {
        who: db.session.scalar(select(ApiToken.id).where(ApiToken.user_id == tenant.users[who]))
        for who in ("eng", "eng2", "tech")
    }
    login = cookie_login(client, tenant.users["admin"])
    assert login
    connections = {f"sid-{who}": ("token", token_id) for who, token_id in tokens.items()}
    assert invalid_connections(connections) == []
    client.delete(f"{API}/tokens/{tokens['eng']}", headers=tenant.auth("eng"))
    client.patch(
        f"{API}/users/{tenant.users['eng2']}", json={"active": False}, headers=tenant.auth("admin")
    )
    assert sorted(invalid_connections(connections)) == ["sid-eng", "sid-eng2"]


# --- 3. finite JSON -----------------------------------------------------------------------------


NON_FINITE_BODIES = [
    '{"title": "x", "snapshot": {"a": 1e999}}',
    '{"title": "x", "snapshot": {"a": -1e999}}',
    '{"title": "x", "snapshot": {"a": NaN}}',
    '{"title": "x", "snapshot": {"a": [Infinity]}}',
]


@pytest.mark.parametrize("body", NON_FINITE_BODIES)
def test_non_finite_numbers_are_422_and_store_nothing(client, tenant, body):
    response = raw_post(client, f"{API}/sessions", body, tenant.auth("tech"))
    assert_error(response, 422)
    assert db.session.scalar(select(db.func.count(FlowSession.id))) == 0
    # The account's queue and sessions still read as JSON.
    assert client.get(f"{API}/escalations", headers=tenant.auth("eng")).get_json() is not None


@pytest.mark.postgres
def test_1e999_is_422_on_postgresql_too(postgres_app):
    client = postgres_app.test_client()
    tenant = make_tenant("Pg MSP")
    response = raw_post(client, f"{API}/sessions", NON_FINITE_BODIES[0], tenant.auth("tech"))
    assert_error(response, 422)


def test_every_encoder_refuses_non_finite_numbers(app):
    for value in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError):
            app.json.dumps({"a": value})
        with pytest.raises(ValueError):
            socket_dumps({"a": value})
        with pytest.raises(EncodeError):
            kombu_dumps({"a": value}, serializer="json")
    assert json.loads(app.json.dumps({"a": 1.5})) == {"a": 1.5}


# --- 6. reserved Socket.IO names ---------------------------------------------------------------


@pytest.fixture
def presence(app) -> Presence:
    presence = Presence(fakeredis.FakeRedis(), ttl_seconds=30)
    app.extensions["presence"] = presence
    return presence


def test_client_sent_reserved_events_are_ignored(app, tenant, presence, caplog):
    socket = socketio.test_client(app, auth={"token": tenant.tokens["eng"]})
    assert presence.is_online(tenant.users["eng"])
    socket.emit("disconnect")
    socket.emit("connect", {"token": "x"})
    assert socket.is_connected()
    assert presence.is_online(tenant.users["eng"])
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
    ack = socket.emit(WATCH_SESSION, {"session_id": 2**63}, callback=True)
    assert ack["ok"] is False
    socket.disconnect()


# --- 7. headers ---------------------------------------------------------------------------------


def test_security_headers_on_pages_and_the_api(app, client, tenant):
    for path in ("/login", f"{API}/me", "/escalations"):
        response = client.get(path, headers=tenant.auth("eng") if "api" in path else {})
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in response.headers
    app.config["HSTS_SECONDS"] = 31536000
    assert "max-age=31536000" in client.get("/login").headers["Strict-Transport-Security"]


# --- 8. per-token rate limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [datetime(2026, 1, 20, 9, 0, 20, tzinfo=UTC), datetime(2026, 7, 14, 9, 0, 20, tzinfo=UTC)],
    ids=["winter", "summer"],
)
def test_each_token_has_its_own_rate_limit(app_with, now):
    # A frozen clock: however slow the run, the four requests fall in one window.
    with (
        time_machine.travel(now, tick=False),
        app_with(
            RATELIMIT_ENABLED=True,
            RATELIMIT_STORAGE_URI="memory://",
            API_RATE_LIMIT_PER_TOKEN="3 per minute",
        ) as app,
    ):
        tenant = make_tenant("Busy MSP")
        client = app.test_client()
        statuses = [
            client.get(f"{API}/me", headers=tenant.auth("eng")).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        limited = client.get(f"{API}/me", headers=tenant.auth("eng"))
        assert_error(limited, 429, "rate_limited")
        retry_after = int(limited.headers["Retry-After"])
        assert client.get(f"{API}/me", headers=tenant.auth("eng2")).status_code == 200
    assert retry_after == 60  # the window opened by the first request, no time having passed


# --- 9. idempotency keys per user ----------------------------------------------------------------


def test_a_colleagues_idempotency_key_reveals_nothing(client, tenant):
    theirs = new_session(client, tenant, who="tech")
    mine = new_session(client, tenant, who="admin")
    key = {"Idempotency-Key": "ticket-4711"}
    first = client.post(
        f"{API}/sessions/{theirs['id']}/escalate",
        json={"reason": "stuck"},
        headers={**tenant.auth("tech"), **key},
    )
    assert first.status_code == 201
    second = client.post(
        f"{API}/sessions/{mine['id']}/escalate",
        json={"reason": "stuck"},
        headers={**tenant.auth("admin"), **key},
    )
    assert second.status_code == 201
    assert second.get_json()["id"] != first.get_json()["id"]
    replay = client.post(
        f"{API}/sessions/{theirs['id']}/escalate",
        json={"reason": "stuck"},
        headers={**tenant.auth("tech"), **key},
    )
    assert replay.status_code == 200 and replay.get_json()["id"] == first.get_json()["id"]


# --- 10. strict parsing ---------------------------------------------------------------------------


def test_ids_and_months_are_ascii_digits_only(client, tenant):
    session = new_session(client, tenant)
    assert session["id"] == 1
    assert_error(client.get(f"{API}/sessions/\u0661", headers=tenant.auth("tech")), 404)
    for month in ("+2025-01", "%2B2025-01", "\u0662\u0660\u0662\u0665-01", " 2025-01"):
        response = client.get(
            f"{API}/analytics/escalation-metrics?month={month}", headers=tenant.auth("eng")
        )
        assert_error(response, 422)
    for limit in ("\u0665", "+5"):
        assert_error(
            client.get(f"{API}/escalations?limit={limit}", headers=tenant.auth("eng")), 422
        )
    assert (
        client.get(
            f"{API}/analytics/escalation-metrics?month=2025-01", headers=tenant.auth("eng")
        ).status_code
        == 200
    )


# --- the security log -----------------------------------------------------------------------------


def test_the_security_log_is_admin_only_paged_and_per_account(client, tenant, other_tenant):
    for name in ("a", "b", "c"):
        client.post(f"{API}/tokens", json={"name": name}, headers=tenant.auth("eng"))
    client.post(f"{API}/tokens", json={"name": "theirs"}, headers=other_tenant.auth("eng"))
    assert_error(client.get(f"{API}/security-log", headers=tenant.auth("eng")), 403)
    first = client.get(f"{API}/security-log?limit=2", headers=tenant.auth("admin")).get_json()
    assert [item["details"]["name"] for item in first["items"]] == ["c", "b"]
    assert first["items"][0]["kind"] == "token_created"
    rest = client.get(
        f"{API}/security-log?limit=10&cursor={first['next_cursor']}", headers=tenant.auth("admin")
    ).get_json()
    # "a", then the first token of each of the tenant's four users (unnamed), newest first.
    assert [(item["kind"], item["details"]["name"]) for item in rest["items"]] == [
        ("token_created", "a"),
        *[("token_created", None)] * 4,
    ]
    assert [item["subject"]["id"] for item in rest["items"][1:]] == [
        tenant.users[who] for who in ("eng2", "eng", "tech", "admin")
    ]
    assert rest["next_cursor"] is None
    assert_error(client.get(f"{API}/security-log?cursor=nope", headers=tenant.auth("admin")), 422)


def test_inviting_a_user_is_in_the_security_log(client, tenant):
    invited = client.post(
        f"{API}/users",
        json={"name": "New Hire", "email": "new@alpha-msp.example", "role": "engineer"},
        headers=tenant.auth("admin"),
    )
    assert invited.status_code == 201
    log = client.get(f"{API}/security-log", headers=tenant.auth("admin")).get_json()["items"]
    assert log[0]["kind"] == "user_created"
    assert log[0]["subject"]["name"] == "New Hire"
    assert log[0]["actor"]["id"] == tenant.users["admin"]

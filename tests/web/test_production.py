"""Production settings at the web edge: database URL forms, pools, the 503 while the database
is down, /readyz, /metrics, request ids, proxies."""

from __future__ import annotations

import json
import logging
import time

import pytest
from sqlalchemy import text

from models import db
from models.logcontext import HANDOFF_ID, REQUEST_ID, ContextFilter, JsonFormatter
from tests.factories import (
    app_config,
    make_tenant,
    new_handoff,
    postgres_url,
    running_app,
    wired_app,
)
from tests.integration.services import free_port, temporary_postgres_database
from web import config as config_module

# --------------------------------------------------------------------------- database URLs


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p%40ss@db.example:5432/esc", "postgresql+psycopg2://u:p%40ss@db.example:5432/esc"),
        ("postgresql://u@db.example/esc?sslmode=require", "postgresql+psycopg2://u@db.example/esc?sslmode=require"),
        ("postgres+psycopg2://u@h/esc", "postgresql+psycopg2://u@h/esc"),
        ("postgresql+psycopg2://u@h/esc", "postgresql+psycopg2://u@h/esc"),
        ("postgresql+psycopg://u@h/esc", "postgresql+psycopg://u@h/esc"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("mysql://u@h/postgres://", "mysql://u@h/postgres://"),
    ],
)  # fmt: skip
def test_every_usual_postgres_url_form_maps_to_one_driver(given: str, expected: str) -> None:
    assert config_module.normalize_database_url(given) == expected
    assert config_module.from_env({"DATABASE_URL": given})["SQLALCHEMY_DATABASE_URI"] == expected


@pytest.mark.parametrize("form", ["postgres://", "postgresql://"])
def test_the_app_builds_a_psycopg2_engine_from_the_plain_forms(form: str) -> None:
    app = wired_app(app_config(f"{form}someone@127.0.0.1:{free_port()}/esc"))
    with app.app_context():
        assert db.engine.dialect.driver == "psycopg2"
        db.engine.dispose()


def test_pool_sizes_per_process_type_and_from_the_environment() -> None:
    url = {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg2://u@h/esc"}
    web = config_module.engine_options(url, "web")
    worker = config_module.engine_options(url, "worker")
    beat = config_module.engine_options(url, "beat")
    assert (web["pool_size"], web["max_overflow"]) == (10, 10)
    assert (worker["pool_size"], worker["max_overflow"]) == (2, 2)
    assert (beat["pool_size"], beat["max_overflow"]) == (1, 1)
    tuned = config_module.engine_options(
        {**url, "DB_POOL_SIZE": "25", "DB_MAX_OVERFLOW": "5", "DB_STATEMENT_TIMEOUT_MS": "3000"},
        "web",
    )
    assert (tuned["pool_size"], tuned["max_overflow"]) == (25, 5)
    assert tuned["connect_args"]["options"] == "-c statement_timeout=3000"
    assert tuned["pool_pre_ping"] is True
    sqlite = config_module.engine_options({"SQLALCHEMY_DATABASE_URI": "sqlite:///x.db"}, "web")
    assert sqlite == {"pool_pre_ping": True}


# --------------------------------------------------------------------------- database down


@pytest.fixture
def database_down_app():
    """An app whose PostgreSQL refuses connections (nothing listens on its port)."""
    app = wired_app(app_config(f"postgresql://nobody@127.0.0.1:{free_port()}/gone"))
    yield app
    with app.app_context():
        db.engine.dispose()


def test_api_requests_get_503_unavailable_with_retry_after_while_the_database_is_down(
    database_down_app,
) -> None:
    client = database_down_app.test_client()
    for method, path in [
        ("get", "/api/v1/escalations"),
        ("post", "/api/v1/sessions/1/escalate"),
        ("post", "/api/v1/escalations/1/claim"),
    ]:
        started = time.monotonic()
        response = getattr(client, method)(
            path, json={"reason": "x"}, headers={"Authorization": "Bearer some-token"}
        )
        assert time.monotonic() - started < 3
        assert response.status_code == 503, (path, response.get_data(as_text=True))
        assert response.get_json()["error"]["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) > 0


def test_pages_get_a_503_page_while_the_database_is_down(database_down_app) -> None:
    client = database_down_app.test_client()
    client.set_cookie("session", "not-a-real-session")
    response = client.post("/login", data={"email": "a@b.example", "password": "x"})
    assert response.status_code == 503
    assert "text/html" in response.headers["Content-Type"]
    assert "Retry-After" in response.headers


def test_readyz_names_what_failed(database_down_app) -> None:
    response = database_down_app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] == "unreachable"
    assert body["redis"] == "unreachable"
    assert set(body["failed"]) == {"database", "redis"}


def test_readyz_is_ok_when_database_and_redis_answer(app, monkeypatch) -> None:
    import fakeredis

    server = fakeredis.FakeServer()
    monkeypatch.setattr(
        "web.observability.redis.Redis.from_url",
        lambda *a, **k: fakeredis.FakeRedis(server=server),
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "redis": "ok",
        "failed": [],
        "tenant_isolation": "off",
        "tenant_isolation_reason": "sqlite: no row-level security",
    }


@pytest.mark.postgres
def test_pooled_connections_killed_by_a_server_restart_are_replaced_unnoticed() -> None:
    """A PostgreSQL restart drops every pooled connection; pre-ping swaps them for new ones."""
    with temporary_postgres_database(postgres_url(), prefix="restart") as url:
        with running_app(app_config(url.replace("postgresql+psycopg2://", "postgresql://"))) as app:
            tenant = make_tenant("Restart MSP")
            client = app.test_client()
            new_handoff(client, tenant)
            db.session.remove()
            with db.engine.connect() as admin:
                admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            response = client.get("/api/v1/escalations", headers=tenant.auth("eng"))
            assert response.status_code == 200
            assert len(response.get_json()["items"]) == 1


# --------------------------------------------------------------------------- /metrics


def _scrape(client, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.get_data(as_text=True)


def _value(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the exposition")


def test_metrics_need_the_token_when_one_is_set(app_with) -> None:
    with app_with(METRICS_TOKEN="s3cret-metrics-token") as app:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "escalation_escalations_created_total" in _scrape(client, "s3cret-metrics-token")


def test_metrics_count_escalations_claim_conflicts_and_show_the_outbox_backlog(
    client, tenant
) -> None:
    before = _scrape(client)
    handoff = new_handoff(client, tenant)
    claim = f"/api/v1/escalations/{handoff['id']}/claim"
    assert client.post(claim, headers=tenant.auth("eng")).status_code == 200
    assert client.post(claim, headers=tenant.auth("eng2")).status_code == 409
    after = _scrape(client)
    for name in ("escalation_escalations_created_total", "escalation_claim_conflicts_total"):
        assert _value(after, name) == _value(before, name) + 1
    # No worker ran: the handoff's and the claim's live dispatch are still owed.
    assert _value(after, "escalation_outbox_backlog_age_seconds") >= 0
    assert "escalation_outbox_backlog_age_seconds" in after
    for name in ("escalation_live_fanout_latency_seconds", "escalation_email_lag_seconds"):
        assert f"{name}_bucket" in after
    assert "escalation_psa_errors" in after and "escalation_smtp_errors" in after


# --------------------------------------------------------------------------- request ids


def test_a_request_forgets_the_handoff_it_logged_about(client, tenant) -> None:
    before = HANDOFF_ID.get()
    new_handoff(client, tenant)
    assert HANDOFF_ID.get() == before


def test_a_request_id_is_echoed_or_made_up(client) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "lb-1234.abc"})
    assert given.headers["X-Request-ID"] == "lb-1234.abc"
    made = client.get("/healthz")
    assert len(made.headers["X-Request-ID"]) == 32
    forged = client.get("/healthz", headers={"X-Request-ID": "<script>" + "x" * 200})
    assert "<" not in forged.headers["X-Request-ID"]
    assert len(forged.headers["X-Request-ID"]) == 32


def test_json_log_lines_carry_the_request_and_handoff_ids() -> None:
    record = logging.LogRecord("web.x", logging.INFO, __file__, 1, "sent %s", ("mail",), None)
    request_token, handoff_token = REQUEST_ID.set("req-1"), HANDOFF_ID.set(42)
    try:
        ContextFilter().filter(record)
    finally:
        REQUEST_ID.reset(request_token)
        HANDOFF_ID.reset(handoff_token)
    line = json.loads(JsonFormatter("worker").format(record))
    assert line["message"] == "sent mail"
    assert (line["request_id"], line["handoff_id"], line["process"]) == ("req-1", 42, "worker")


# --------------------------------------------------------------------------- proxies


def test_client_address_comes_from_x_forwarded_for_only_when_configured(database_url) -> None:
    from flask import request

    seen: list[str | None] = []
    for hops in (0, 1):
        app = wired_app(app_config(database_url, PROXY_FIX_X_FOR=hops))
        app.add_url_rule("/whoami", "whoami", lambda: seen.append(request.remote_addr) or "")
        app.test_client().get(
            "/whoami",
            headers={"X-Forwarded-For": "203.0.113.7"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
    assert seen == ["127.0.0.1", "203.0.113.7"]

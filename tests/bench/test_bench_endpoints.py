"""The benchmark-only routes (bench/endpoints.py): never in the shipped app, added only by the
benchmarks' own app (bench/web.py), and doing what they claim."""

from __future__ import annotations

import pytest

from bench.endpoints import register
from devstack.smtp_sink import SmtpSink
from models import db
from models.entities import Handoff, Message
from tests.factories import make_tenant
from web.config import ROOT


@pytest.fixture
def bench_app(app_with, request):
    with app_with(**getattr(request, "param", {})) as app:
        register(app)
        yield app


def _session(client, tenant) -> int:
    response = client.post(
        "/api/v1/sessions",
        json={"title": "Printer on fire", "snapshot": {"step": 3}},
        headers=tenant.auth("tech"),
    )
    assert response.status_code == 201
    return response.get_json()["id"]


def test_the_shipped_app_has_no_bench_route_and_web_never_imports_them(app, client, tenant):
    """Finding: /_bench/bare/<id> wrote into any tenant's session when switched on. The code
    now lives outside web/, so no setting can switch it on in the shipped app."""
    session_id = _session(client, tenant)
    response = client.post(f"/api/v1/_bench/bare/{session_id}", headers=tenant.auth("tech"))
    assert response.status_code == 404
    assert not any("_bench" in rule.rule for rule in app.url_map.iter_rules())
    assert not any("_bench" in path for path in client.get("/api/v1/openapi.json").json["paths"])
    web_sources = [path.read_text() for path in (ROOT / "web").rglob("*.py")]
    assert not any("bench" in source for source in web_sources)


def test_bare_inserts_one_row_behind_authentication(bench_app):
    client = bench_app.test_client()
    tenant = make_tenant("Bench MSP")
    session_id = _session(client, tenant)
    assert client.post(f"/api/v1/_bench/bare/{session_id}").status_code == 401
    response = client.post(f"/api/v1/_bench/bare/{session_id}", headers=tenant.auth("tech"))
    assert response.status_code == 201
    assert db.session.get(Message, response.get_json()["id"]).session_id == session_id
    assert not any("_bench" in path for path in client.get("/api/v1/openapi.json").json["paths"])


def test_naive_escalate_emails_every_senior_before_answering(app_with):
    with SmtpSink() as sink:
        with app_with(SMTP_HOST=sink.host, SMTP_PORT=sink.port, SMTP_TIMEOUT=5.0) as app:
            register(app)
            client = app.test_client()
            tenant = make_tenant("Naive MSP")
            session_id = _session(client, tenant)
            response = client.post(
                f"/api/v1/_bench/naive-escalate/{session_id}",
                json={"reason": "Disk full"},
                headers=tenant.auth("tech"),
            )
            assert response.status_code == 201
            assert db.session.get(Handoff, response.get_json()["id"]).status == "open"
            # Sent inside the request: already at the sink when the response arrived.
            recipients = sorted(r for m in sink.messages for r in m.rcpt_tos)
            assert recipients == [
                "eng2@naive-msp.example",
                "eng@naive-msp.example",
                "owner@naive-msp.example",
            ]
            assert all("Printer on fire" in m.subject for m in sink.messages)

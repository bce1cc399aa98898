"""The browser pages through Flask's test client, with CSRF protection and the login rate
limit switched on (as in production): sign-in, redirects, error pages, tenant scoping,
escaping, CSRF refusals and the live chat room. The same pages in a real browser against
the real stack are in tests/e2e/."""

from __future__ import annotations

import re
import time
from html import unescape

import pytest
from flask import g
from sqlalchemy import select

from models import db
from models.accounts import create_user
from models.entities import Account, SecurityEvent
from models.events import MESSAGE_CREATED
from models.rollup import roll_up
from tests.factories import UNREACHABLE_REDIS, Tenant, make_tenant, new_handoff, new_session
from web.extensions import socketio
from web.pages.live import WATCH_SESSION

PASSWORD = "user-password"
LIMIT_PER_EMAIL = 3
LIMIT_PER_ADDRESS = 6
SLOWDOWN_AFTER = 4
SLOWDOWN_STEP = 0.3


@pytest.fixture
def app(app_with):
    """The conftest app, but with CSRF and the login rate limit on (in-memory counters)."""
    with app_with(
        WTF_CSRF_ENABLED=True,
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        LOGIN_RATE_LIMIT_PER_ADDRESS_AND_EMAIL=f"{LIMIT_PER_EMAIL} per minute",
        LOGIN_RATE_LIMIT_PER_ADDRESS=f"{LIMIT_PER_ADDRESS} per minute",
        LOGIN_SLOWDOWN_AFTER=SLOWDOWN_AFTER,
        LOGIN_SLOWDOWN_STEP_SECONDS=SLOWDOWN_STEP,
        LOGIN_SLOWDOWN_MAX_SECONDS=SLOWDOWN_STEP * 2,
    ) as app:

        @app.before_request
        def _fresh_csrf_token_cache():
            # The fixtures keep one app context open across requests, so `g` would carry
            # one client's CSRF token into another client's request; a server has a `g`
            # per request.
            g.pop("csrf_token", None)

        yield app


def email_of(tenant_name: str, who: str) -> str:
    return f"{who}@{tenant_name.lower().replace(' ', '-')}.example"


def csrf_token(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def login(
    client,
    email: str,
    password: str = PASSWORD,
    next_path: str | None = None,
    address: str = "127.0.0.1",
):
    environ = {"REMOTE_ADDR": address}
    token = csrf_token(client.get("/login", environ_base=environ).text)
    form = {"email": email, "password": password, "csrf_token": token}
    if next_path is not None:
        form["next"] = next_path
    return client.post("/login", data=form, environ_base=environ)


def signed_in(app, tenant_name: str, who: str):
    """A fresh browser (test client) signed in as `who` of the named tenant."""
    browser = app.test_client()
    response = login(browser, email_of(tenant_name, who))
    assert response.status_code == 303, response.text
    return browser


def page_text(response) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", response.text))


# --- sign-in, sign-out, redirects ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/escalations", "/analytics", "/sessions", "/pilot/1"])
def test_pages_that_need_a_login_redirect_to_login_with_next(client, tenant, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next={path}"


def test_the_login_page_has_an_email_and_password_field_and_a_submit_button(client):
    html = client.get("/login").text
    assert re.search(r'<input[^>]+name="email"[^>]+type="email"', html)
    assert re.search(r'<input[^>]+name="password"[^>]+type="password"', html)
    assert re.search(r'<button type="submit"[^>]*>Sign in</button>', html)


def test_signing_in_sets_a_lax_httponly_cookie_and_follows_next(client, tenant):
    response = login(client, email_of("Alpha MSP", "eng"), next_path="/analytics")
    assert response.status_code == 303
    assert response.headers["Location"] == "/analytics"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/analytics").status_code == 200


@pytest.mark.parametrize(
    ("who", "home"), [("eng", "/escalations"), ("admin", "/escalations"), ("tech", "/sessions")]
)
def test_home_sends_seniors_to_the_queue_and_technicians_to_their_sessions(
    client, tenant, who, home
):
    password = "owner-password" if who == "admin" else PASSWORD
    email = "owner@alpha-msp.example" if who == "admin" else email_of("Alpha MSP", who)
    assert login(client, email, password).headers["Location"] == home
    assert client.get("/").headers["Location"] == home
    assert client.get("/").status_code == 302


def test_a_wrong_password_shows_the_form_again_and_signs_nobody_in(client, tenant):
    response = login(client, email_of("Alpha MSP", "eng"), "not-the-password")
    assert response.status_code == 200
    assert "That email and password do not match an account." in page_text(response)
    assert client.get("/escalations").status_code == 302


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
def test_next_is_followed_only_to_paths_on_this_site(client, tenant, target):
    response = login(client, email_of("Alpha MSP", "eng"), next_path=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/escalations"


def test_signing_out_ends_the_session(client, tenant):
    login(client, email_of("Alpha MSP", "eng"))
    token = csrf_token(client.get("/escalations").text)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login")
    assert client.get("/escalations").status_code == 302


# --- CSRF ----------------------------------------------------------------------------------------


def test_a_form_post_without_the_csrf_token_is_refused_with_a_page(client, tenant):
    login(client, email_of("Alpha MSP", "eng"))
    response = client.post("/logout")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "security token is missing or expired" in page_text(response)
    assert client.get("/escalations").status_code == 200  # still signed in


def test_the_login_form_itself_needs_the_csrf_token(client, tenant):
    response = client.post(
        "/login", data={"email": email_of("Alpha MSP", "eng"), "password": PASSWORD}
    )
    assert response.status_code == 403
    assert client.get("/escalations").status_code == 302


def test_a_cookie_api_call_without_a_valid_csrf_header_is_refused(app, client, tenant):
    handoff = new_handoff(client, tenant)
    senior = signed_in(app, "Alpha MSP", "eng")
    claim_url = f"/api/v1/escalations/{handoff['id']}/claim"

    for headers in ({}, {"X-CSRFToken": "forged"}):
        refused = senior.post(claim_url, headers=headers)
        assert refused.status_code == 403
        error = refused.get_json()["error"]
        assert error["code"] == "forbidden"
        assert "CSRF" in error["message"]
        assert set(error) == {"code", "message", "details"}
    still_open = client.get(f"/api/v1/escalations/{handoff['id']}", headers=tenant.auth("eng"))
    assert still_open.get_json()["status"] == "open"

    token = csrf_token(senior.get("/escalations").text)
    claimed = senior.post(claim_url, headers={"X-CSRFToken": token})
    assert claimed.status_code == 200
    assert claimed.get_json()["redirect_url"] == f"/pilot/{handoff['session_id']}"


def test_a_csrf_token_from_another_login_session_is_refused(app, client, tenant):
    handoff = new_handoff(client, tenant)
    someone_else = signed_in(app, "Alpha MSP", "eng2")
    stolen = csrf_token(someone_else.get("/escalations").text)
    senior = signed_in(app, "Alpha MSP", "eng")
    refused = senior.post(
        f"/api/v1/escalations/{handoff['id']}/claim", headers={"X-CSRFToken": stolen}
    )
    assert refused.status_code == 403


def test_bearer_token_calls_need_no_csrf_token_and_no_login_is_still_401(client, tenant):
    session = new_session(client, tenant)  # a bearer POST with CSRF protection on
    posted = client.post(
        f"/api/v1/sessions/{session['id']}/messages",
        json={"body": "hello"},
        headers=tenant.auth("tech"),
    )
    assert posted.status_code == 201
    anonymous = client.post(f"/api/v1/sessions/{session['id']}/messages", json={"body": "x"})
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"]["code"] == "unauthorized"


# --- the login rate limit ----------------------------------------------------------------------


def test_failed_sign_ins_are_limited_per_address_and_email(client, tenant):
    email = email_of("Alpha MSP", "eng")
    for _ in range(LIMIT_PER_EMAIL):
        assert login(client, email, "wrong-password").status_code == 200
    blocked = login(client, email, PASSWORD)  # even the right password waits now
    assert blocked.status_code == 429
    assert "Too many sign-in attempts" in page_text(blocked)
    assert client.get("/escalations").status_code == 302
    # Another account's email is not blocked by this one's failures.
    assert login(client, email_of("Alpha MSP", "eng2")).status_code == 303


def test_failures_for_an_email_never_lock_its_owner_out_from_another_address(app, tenant):
    """Finding: five wrong passwords for an admin's email locked the admin out. Failures
    from many addresses now slow that email's sign-ins down, never refuse them."""
    email = email_of("Alpha MSP", "owner")
    attacker = app.test_client()
    for attempt in range(SLOWDOWN_AFTER + 2):
        address = f"203.0.113.{attempt}"  # each address stays under its own limits
        assert login(attacker, email, "wrong-password", address=address).status_code == 200
    owner = app.test_client()
    started = time.monotonic()
    response = login(owner, email, "owner-password", address="198.51.100.7")
    waited = time.monotonic() - started
    assert response.status_code == 303  # signed in
    assert SLOWDOWN_STEP * 2 * 0.9 <= waited < 5  # slowed down, capped
    events = db.session.scalars(
        select(SecurityEvent).where(SecurityEvent.subject_user_id == tenant.users["admin"])
    ).all()
    kinds = [event.kind for event in events]
    assert kinds.count("sign_in_failed") == SLOWDOWN_AFTER + 2
    assert kinds.count("sign_in") == 1
    assert {event.ip for event in events if event.kind == "sign_in"} == {"198.51.100.7"}


def test_failed_sign_ins_are_limited_per_client_address(client, tenant):
    for attempt in range(LIMIT_PER_ADDRESS):
        response = login(client, f"nobody{attempt}@example.test", "wrong-password")
        assert response.status_code == 200
    assert login(client, email_of("Alpha MSP", "eng")).status_code == 429


def test_successful_sign_ins_do_not_count_against_the_limit(client, tenant):
    for _ in range(LIMIT_PER_EMAIL + 2):
        assert login(client, email_of("Alpha MSP", "eng")).status_code == 303
        client.post("/logout", data={"csrf_token": csrf_token(client.get("/sessions").text)})


# --- roles, unknown ids, other accounts ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/escalations", "/analytics"])
def test_senior_pages_show_a_403_page_to_technicians(app, tenant, path):
    technician = signed_in(app, "Alpha MSP", "tech")
    response = technician.get(path)
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "Not allowed" in page_text(response)


def test_unknown_and_other_account_sessions_are_a_404_page(app, client, tenant, other_tenant):
    theirs = new_session(client, other_tenant)
    senior = signed_in(app, "Alpha MSP", "eng")
    for path in (f"/pilot/{theirs['id']}", "/pilot/999999", "/pilot/99999999999999999999999"):
        response = senior.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/html"
        assert "Not found" in page_text(response)
    assert theirs["title"] not in senior.get(f"/pilot/{theirs['id']}").text


def test_another_technicians_session_is_a_403_page(app, client, tenant):
    session = new_session(client, tenant)
    account = db.session.get(Account, tenant.account_id)
    create_user(account, "Second Tech", "tech2@alpha-msp.example", "technician", PASSWORD)
    other_technician = app.test_client()
    assert login(other_technician, "tech2@alpha-msp.example").status_code == 303
    assert other_technician.get(f"/pilot/{session['id']}").status_code == 403


def test_an_unknown_page_is_an_html_404_and_an_unknown_api_path_stays_json(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.get_json()["error"]["code"] == "not_found"


# --- the queue -----------------------------------------------------------------------------------


def cards(html: str) -> list[str]:
    return re.findall(r'<li class="card" data-handoff-id="(\d+)"', html)


def test_the_queue_shows_the_accounts_open_handoffs_oldest_first(app, client, tenant):
    other = make_tenant("Beta MSP")
    first = new_handoff(client, tenant, reason="First reason")
    second = new_handoff(client, tenant, reason="Second reason")
    claimed = new_handoff(client, tenant, reason="Taken already")
    client.post(f"/api/v1/escalations/{claimed['id']}/claim", headers=tenant.auth("eng2"))
    theirs = new_handoff(client, other, reason="Beta's problem")

    response = signed_in(app, "Alpha MSP", "eng").get("/escalations")
    assert response.status_code == 200
    assert cards(response.text) == [str(first["id"]), str(second["id"])]
    text = page_text(response)
    for expected in ("VPN drops every hour", "Alpha MSP Tech", "First reason", "Second reason"):
        assert expected in text
    assert "Likely a stale VPN profile" in text  # the AI assessment's gist
    assert re.search(r">\s*Claim\s*</button>", response.text)
    assert "Taken already" not in text and "Beta's problem" not in text
    assert str(theirs["id"]) not in cards(response.text)


def test_the_queue_says_so_when_it_is_empty(app, tenant):
    response = signed_in(app, "Alpha MSP", "eng").get("/escalations")
    assert cards(response.text) == []
    assert re.search(r'<p id="queue-empty" class="empty">', response.text)


# --- the session page ---------------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_the_session_page_renders_everything_as_escaped_text(app, client, tenant):
    session = client.post(
        "/api/v1/sessions",
        json={
            "title": f"Printer {HOSTILE}",
            "snapshot": {"device": HOSTILE, "steps": ["power cycle", HOSTILE], HOSTILE: 1},
            "ai_assessment": {"summary": f"Driver {HOSTILE}", "confidence": 0.4},
        },
        headers=tenant.auth("tech"),
    ).get_json()
    client.post(
        f"/api/v1/sessions/{session['id']}/messages",
        json={"body": f"tried {HOSTILE}"},
        headers=tenant.auth("tech"),
    )
    client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": f"stuck {HOSTILE}", "notes": HOSTILE},
        headers=tenant.auth("tech"),
    )

    response = signed_in(app, "Alpha MSP", "eng").get(f"/pilot/{session['id']}")
    assert response.status_code == 200
    html = response.text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html
    text = page_text(response)
    for section in ("Snapshot", "AI assessment", "Escalation package", "Chat", "PSA ticket"):
        assert section in text
    assert "power cycle" in text and "Driver" in text and "tried" in text
    assert re.search(r'<button type="submit" class="button primary">Send</button>', html)
    # No PSA is connected to this account: nothing to write back to.
    assert "Write back to PSA" not in text and "No PSA is connected" in text
    assert 'id="escalate-form"' not in html  # a senior does not escalate


def test_the_technician_sees_an_escalate_form_until_the_session_is_escalated(app, client, tenant):
    session = new_session(client, tenant)
    technician = signed_in(app, "Alpha MSP", "tech")
    page = technician.get(f"/pilot/{session['id']}").text
    assert 'id="escalate-form"' in page
    assert re.search(r'<button type="submit" class="button danger">Escalate</button>', page)

    client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": "stuck"},
        headers=tenant.auth("tech"),
    )
    page = technician.get(f"/pilot/{session['id']}").text
    # Kept on the page, hidden, so it returns live once the escalation is resolved.
    assert re.search(r'id="escalate-panel"\s+hidden>', page)
    assert "waiting for a senior to claim it" in page


# --- analytics -----------------------------------------------------------------------------------


def test_analytics_shows_this_months_figures_and_a_twelve_month_chart(app, client, tenant):
    handoff = new_handoff(client, tenant)
    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
    client.post(
        f"/api/v1/sessions/{handoff['session_id']}/messages",
        json={"body": "On it"},
        headers=tenant.auth("eng"),
    )
    new_handoff(client, tenant)  # counted, not averaged
    roll_up()
    expected = client.get(
        "/api/v1/analytics/escalation-metrics", headers=tenant.auth("eng")
    ).get_json()

    response = signed_in(app, "Alpha MSP", "eng").get("/analytics")
    assert response.status_code == 200
    html = response.text
    assert "Minutes recovered per escalation" in html

    def metric(name: str) -> str:
        match = re.search(rf'data-metric="{name}">([^<]*)<', html)
        assert match, name
        return match.group(1).strip()

    recovered = expected["minutes_recovered_per_escalation"]
    assert float(metric("minutes_recovered_per_escalation")) == pytest.approx(recovered, abs=0.05)
    assert recovered > 44  # the first action came seconds after the escalation
    assert metric("manual_baseline_minutes") == "45"
    assert metric("escalations") == "2"
    assert metric("first_actions") == "1"
    chart = re.search(r'<svg id="history-chart".*?</svg>', html, re.S).group(0)
    assert len(re.findall(r'<g class="chart-bar', chart)) == 12
    assert chart.count("<rect") == 1  # only this month has a figure
    assert 'role="img"' in chart


def test_analytics_before_any_first_action_shows_a_dash_not_a_number(app, tenant):
    response = signed_in(app, "Alpha MSP", "eng").get("/analytics")
    assert re.search(r'data-metric="minutes_recovered_per_escalation">—<', response.text)
    assert "No first actions yet this month" in page_text(response)


# --- the technician's sessions -------------------------------------------------------------------


def test_a_technician_starts_a_session_from_the_form(app, tenant):
    technician = signed_in(app, "Alpha MSP", "tech")
    token = csrf_token(technician.get("/sessions").text)
    response = technician.post(
        "/sessions",
        data={
            "csrf_token": token,
            "title": "Outlook keeps asking for a password",
            "device": "LAPTOP-7",
            "steps": "cleared credentials\n\nrecreated profile\n",
            "ai_summary": "Modern auth disabled",
        },
    )
    assert response.status_code == 303
    session_id = int(response.headers["Location"].rsplit("/", 1)[1])
    session = technician.get(f"/pilot/{session_id}")
    assert "Outlook keeps asking for a password" in page_text(session)
    listing = page_text(technician.get("/sessions"))
    assert "Outlook keeps asking for a password" in listing

    from models import FlowSession

    stored = db.session.get(FlowSession, session_id)
    assert stored.snapshot == {
        "device": "LAPTOP-7",
        "steps_tried": ["cleared credentials", "recreated profile"],
    }
    assert stored.ai_assessment == {"summary": "Modern auth disabled"}


def test_a_session_form_without_a_title_is_shown_again_with_the_error(app, tenant):
    technician = signed_in(app, "Alpha MSP", "tech")
    token = csrf_token(technician.get("/sessions").text)
    response = technician.post("/sessions", data={"csrf_token": token, "title": "  "})
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text


# --- assets ------------------------------------------------------------------------


def test_the_socket_io_client_is_served_from_node_modules(client):
    response = client.get("/vendor/socket.io.min.js")
    assert response.status_code == 200
    assert "javascript" in response.mimetype
    assert b"io" in response.data[:2000]
    assert client.get("/vendor/package.json").status_code == 404


# --- the live chat room --------------------------------------------------------------------------


def watching(app, tenant_name: str, who: str, session_id: int):
    browser = signed_in(app, tenant_name, who)
    socket = socketio.test_client(app, flask_test_client=browser)
    assert socket.is_connected()
    ack = socket.emit(WATCH_SESSION, {"session_id": session_id}, callback=True)
    return socket, ack


def chat_events(socket) -> list[dict]:
    return [e["args"][0] for e in socket.get_received() if e["name"] == MESSAGE_CREATED]


def test_a_posted_message_reaches_the_pages_watching_its_session_only(
    app, client, tenant: Tenant, other_tenant: Tenant, live_in_process
):
    session = new_session(client, tenant)
    senior, senior_ack = watching(app, "Alpha MSP", "eng", session["id"])
    technician, technician_ack = watching(app, "Alpha MSP", "tech", session["id"])
    outsider, outsider_ack = watching(app, "Beta MSP", "eng", session["id"])
    assert senior_ack == {"ok": True} and technician_ack == {"ok": True}
    assert outsider_ack == {"ok": False, "error": "No such session."}

    posted = client.post(
        f"/api/v1/sessions/{session['id']}/messages",
        json={"body": "Can you check the VPN profile?"},
        headers=tenant.auth("tech"),
    ).get_json()

    assert chat_events(senior) == [posted]
    assert chat_events(technician) == [posted]
    assert chat_events(outsider) == []


@pytest.mark.parametrize("payload", [None, {}, {"session_id": "1"}, {"session_id": True}, 5])
def test_watching_needs_a_session_id(app, client, tenant, payload):
    browser = signed_in(app, "Alpha MSP", "eng")
    socket = socketio.test_client(app, flask_test_client=browser)
    ack = socket.emit(WATCH_SESSION, payload, callback=True)
    assert ack["ok"] is False


def test_with_the_counter_store_unreachable_sign_in_works_and_stays_limited(app_with):
    with app_with(
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI=UNREACHABLE_REDIS,
        LOGIN_RATE_LIMIT_PER_ADDRESS_AND_EMAIL=f"{LIMIT_PER_EMAIL} per minute",
    ) as app:
        make_tenant("Alpha MSP")
        client = app.test_client()
        form = {"email": email_of("Alpha MSP", "eng"), "password": PASSWORD}
        assert client.post("/login", data=form).status_code == 303
        wrong = {**form, "password": "wrong-password"}
        statuses = [client.post("/login", data=wrong).status_code for _ in range(LIMIT_PER_EMAIL)]
        assert statuses == [200] * LIMIT_PER_EMAIL
        assert client.post("/login", data=form).status_code == 429

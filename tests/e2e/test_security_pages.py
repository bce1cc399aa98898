"""Every page in headless Chromium under the Content-Security-Policy: no violation, no
script error, the live connection still comes up; and /settings creates a token (shown
once) and revokes it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack, Tenant

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


def watch(page: Page) -> list[str]:
    """Collect CSP violations and script errors of `page` (each navigation's listener too)."""
    problems: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            or "Content-Security-Policy" in message.text
            else None
        ),
    )
    return problems


def violations(page: Page) -> list[str]:
    return page.evaluate("window.__cspViolations || []")


def visit(page: Page, path: str, problems: list[str]) -> None:
    response = page.goto(path)
    assert response is not None
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
    page.wait_for_load_state("networkidle")
    if page.locator("#live-status").count():
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    assert violations(page) == [], (path, violations(page))
    assert problems == [], (path, problems)


def test_every_page_runs_under_the_policy(stack: Stack, acme: Tenant, sign_in):
    session = stack.api(
        acme["tech"].token,
        "POST",
        "/sessions",
        json={"title": "CSP check", "snapshot": {"device": "PC-1"}, "ai_assessment": {}},
    ).json()
    stack.api(
        acme["tech"].token, "POST", f"/sessions/{session['id']}/escalate", json={"reason": "CSP"}
    )

    technician = sign_in(acme["tech"], "/sessions")
    problems = watch(technician)
    for path in ("/sessions", f"/pilot/{session['id']}", "/pilot/999999"):
        visit(technician, path, problems)

    admin = sign_in(acme["admin"], "/escalations")
    problems = watch(admin)
    for path in ("/escalations", f"/pilot/{session['id']}", "/analytics", "/settings"):
        visit(admin, path, problems)
    admin.get_by_role("button", name="Sign out").click()
    admin.wait_for_url("**/login**")
    visit(admin, "/login", problems)


def test_settings_creates_a_token_shows_it_once_and_revokes_it(stack: Stack, acme: Tenant, sign_in):
    page = sign_in(acme["admin"], "/settings")
    problems = watch(page)
    page.reload()
    page.get_by_label("Token name").fill("Nightly export")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("[data-secret-value]")
    expect(secret).to_be_visible()
    token = secret.inner_text().strip()
    assert stack.api(token, "GET", "/me").status_code == 200

    page.reload()  # shown once: never again
    assert token not in page.content()
    row = page.locator("tr", has=page.get_by_role("rowheader", name="Nightly export"))
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    assert stack.api(token, "GET", "/me").status_code == 401
    page.reload()
    log = page.locator("#security-log")
    expect(log).to_contain_text("Token revoked")
    expect(log).to_contain_text("Token created")
    assert violations(page) == [] and problems == []

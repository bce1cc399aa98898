"""The senior's session page and analytics in headless Chromium against the real stack, at
desktop (1280×900) and phone (390×844) sizes: claim from the session page (and the loser's
"Already claimed by NAME"), read-only before the claim, every change live in a second
browser without a reload, Enter sends, resolve with an outcome, the analytics figures, and
an axe-core scan of both pages. The screenshots land in docs/screens/."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from devstack.net import REPO_ROOT
from tests.e2e.accessibility import axe_violations
from tests.e2e.conftest import PASSWORD, Person, Stack, Tenant
from tests.e2e.test_pages_flow import ASSESSMENT, SNAPSHOT, escalate, unique_title

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]

SCREENS = REPO_ROOT / "docs" / "screens"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
LIVE_MS = 5_000


def start_session(stack: Stack, technician: Person, title: str) -> dict:
    response = stack.api(
        technician.token,
        "POST",
        "/sessions",
        json={"title": title, "snapshot": SNAPSHOT, "ai_assessment": ASSESSMENT},
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def open_as(stack: Stack, browser, open_browsers) -> Callable[..., Page]:
    """open_as(person, path, phone=False, live=True) -> a signed-in page showing `path`.
    live=False blocks the Socket.IO connection: a page that hears nothing live."""

    def opener(person: Person, path: str, phone: bool = False, live: bool = True) -> Page:
        context = browser.new_context(
            base_url=stack.url,
            viewport=PHONE if phone else DESKTOP,
            is_mobile=phone,
            has_touch=phone,
            bypass_csp=True,  # lets the test inject axe-core
        )
        open_browsers.append(context)
        if not live:
            context.route("**/socket.io/**", lambda route: route.abort())
        page = context.new_page()
        page.goto(f"/login?next={path}")
        page.get_by_label("Email").fill(person.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{stack.url}{path}")
        if live and page.locator("#live-status").count():
            expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        return page

    return opener


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width} px wide"


def screenshot(page: Page, name: str, full_page: bool = False) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / name), full_page=full_page)


# --- the session page ------------------------------------------------------------------------


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_read_only_until_claimed_then_claim_from_the_session_page(
    stack: Stack, acme: Tenant, open_as, phone: bool
):
    erin, sam = acme["eng"], acme["eng2"]
    title = unique_title("Printer offline")
    session = start_session(stack, acme["tech"], title)
    stack.api(
        acme["tech"].token,
        "POST",
        f"/sessions/{session['id']}/messages",
        json={"body": "Spooler restarted twice"},
    )
    handoff = escalate(stack, acme["tech"], session["id"], "Spooler keeps crashing")
    path = f"/pilot/{session['id']}"
    page = open_as(erin, path, phone=phone)
    # Sam's page hears nothing live: he will click Claim after Erin took it.
    stale = open_as(sam, path, phone=phone, live=False)

    brief = page.locator("#handoff-brief")
    expect(brief).to_contain_text("Spooler keeps crashing")
    expect(page.locator("#message-form")).to_be_hidden()
    expect(page.locator("#psa-form")).to_be_hidden()
    expect(page.locator("#read-only-note")).to_contain_text("claim it to take over")
    # The chat reads as a chat: a bubble with a local time, not an ISO timestamp.
    bubble = page.locator("#messages li.message").first
    expect(bubble).to_contain_text("Spooler restarted twice")
    assert not re.search(r"\d{4}-\d\d-\d\dT", bubble.inner_text())
    if phone:
        # Chat first: the brief and the start of the chat fit on the first screen.
        box = page.locator("#chat-title").bounding_box()
        assert box is not None and box["y"] < PHONE["height"] - 60, box
        no_horizontal_scroll(page)
        screenshot(page, "pilot-phone.png")

    assert axe_violations(page) == []  # no serious or critical accessibility violations

    page.get_by_role("button", name="Claim to take over").click()
    expect(page.locator("#handoff-status")).to_have_text(f"Claimed by {erin.name}.")
    expect(page.locator("#message-form")).to_be_visible()
    expect(page.locator("#read-only-note")).to_be_hidden()
    expect(page.get_by_role("button", name="Resolve…")).to_be_visible()

    stale.locator("#claim-button").click()
    expect(stale.locator("#claim-status")).to_have_text(f"Already claimed by {erin.name}")
    expect(stale.locator("#read-only-note")).to_contain_text(f"Claimed by {erin.name}")
    expect(stale.locator("#message-form")).to_be_hidden()
    stored = stack.api(erin.token, "GET", f"/escalations/{handoff['id']}").json()
    assert stored["claimed_by"] == {"id": erin.id, "name": erin.name}


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_every_change_reaches_the_other_viewer_live_and_resolve_takes_an_outcome(
    stack: Stack, acme: Tenant, open_as, phone: bool
):
    technician, erin, sam = acme["tech"], acme["eng"], acme["eng2"]
    session = start_session(stack, technician, unique_title("Outlook keeps asking for a password"))
    path = f"/pilot/{session['id']}"
    tech_page = open_as(technician, path, phone=phone)
    watcher = open_as(sam, path, phone=phone)

    tech_page.get_by_label("Reason").fill("Modern auth loop after the tenant move")
    tech_page.get_by_label("Notes for the senior (optional)").fill("Cleared the credential cache")
    tech_page.get_by_role("button", name="Escalate").click()
    # The confirmation stays visible (it used to be written into the panel it hid).
    expect(tech_page.locator("#escalate-status")).to_have_text(
        "Escalated: the seniors have been notified."
    )
    expect(tech_page.locator("#escalate-status")).to_be_visible()
    expect(tech_page.locator("#escalate-panel")).to_be_hidden()
    expect(watcher.locator("#handoff-status")).to_contain_text(
        "waiting for a senior", timeout=LIVE_MS
    )
    expect(watcher.locator("#brief-notes")).to_contain_text("Cleared the credential cache")

    senior = open_as(erin, path, phone=phone)
    senior.get_by_role("button", name="Claim", exact=True).click()
    expect(tech_page.locator("#handoff-status")).to_have_text(
        f"Claimed by {erin.name}.", timeout=LIVE_MS
    )
    expect(watcher.locator("#read-only-note")).to_contain_text(
        f"Claimed by {erin.name}", timeout=LIVE_MS
    )

    # Enter sends; Shift+Enter is a new line in the same message.
    box = senior.get_by_label("Message")
    box.click()
    box.type("Two lines:")
    box.press("Shift+Enter")
    box.type("check the token broker")
    assert box.input_value() == "Two lines:\ncheck the token broker"
    box.press("Enter")
    expect(senior.locator("#messages")).to_contain_text("check the token broker")
    expect(box).to_have_value("")
    for viewer in (tech_page, watcher):
        expect(viewer.locator("#messages li.message").last).to_contain_text(
            "Two lines:\ncheck the token broker", timeout=LIVE_MS
        )

    # No PSA connected: nothing to write back to (tests/e2e/test_psa_flow.py has one).
    expect(senior.get_by_role("button", name="Write back to PSA")).to_have_count(0)

    senior.get_by_role("button", name="Resolve…").click()
    senior.get_by_label("Outcome (optional)").fill("Reset the WAM token broker; signed in fine")
    if not phone:
        screenshot(senior, "pilot-desktop.png")
    senior.get_by_role("button", name="Mark resolved").click()
    expect(senior.locator("#handoff-status")).to_have_text("Resolved.")
    for viewer in (tech_page, watcher):
        expect(viewer.locator("#handoff-status")).to_have_text("Resolved.", timeout=LIVE_MS)
        expect(viewer.locator("#brief-outcome")).to_contain_text("Reset the WAM token broker")
    # The technician can escalate again at once, no reload (a fresh Idempotency-Key).
    expect(tech_page.locator("#escalate-panel")).to_be_visible()
    expect(watcher.locator("#message-form")).to_be_visible()
    tech_page.get_by_label("Reason").fill("It came back after a day")
    tech_page.get_by_role("button", name="Escalate").click()
    expect(tech_page.locator("#handoff-status")).to_contain_text("waiting for a senior")
    handoffs = stack.api(erin.token, "GET", "/escalations?status=all&limit=200").json()["items"]
    mine = [h for h in handoffs if h["session_id"] == session["id"]]
    assert [h["status"] for h in mine] == ["resolved", "open"]
    assert mine[0]["outcome"] == "Reset the WAM token broker; signed in fine"


# --- analytics -----------------------------------------------------------------------------


def acted_handoff(stack: Stack, acme: Tenant) -> dict:
    session = start_session(stack, acme["tech"], unique_title("Teams calls drop"))
    handoff = escalate(stack, acme["tech"], session["id"], "Packet loss on the Wi-Fi")
    engineer = acme["eng"]
    assert stack.api(engineer.token, "POST", f"/escalations/{handoff['id']}/claim").ok
    posted = stack.api(
        engineer.token, "POST", f"/sessions/{session['id']}/messages", json={"body": "On it"}
    )
    assert posted.status_code == 201
    return handoff


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_analytics_shows_sample_sizes_percentiles_and_the_baseline_state(
    stack: Stack, acme: Tenant, open_as, phone: bool
):
    acted_handoff(stack, acme)
    stack.rollup()
    metrics = stack.api(acme["eng"].token, "GET", "/analytics/escalation-metrics").json()
    page = open_as(acme["admin"], "/analytics", phone=phone)
    widget = page.locator("#minutes-recovered")
    n = metrics["first_actions"]
    expect(widget.locator('[data-sample="first_actions"]').first).to_contain_text(f"n = {n}")
    expect(page.locator('[data-metric="median_time_to_first_action"]')).to_be_visible()
    expect(page.locator('[data-metric="p90_time_to_first_action"]')).to_be_visible()
    # Seconds after escalation: shown in seconds, not "0.0 min".
    expect(page.locator('[data-metric="median_time_to_first_action"]')).to_have_text(
        re.compile(r"^\d+ s$")
    )
    expect(page.locator("#engineers")).to_contain_text(acme["eng"].name)
    expect(page.locator("#history-chart .chart-axis-title")).to_have_count(2)
    if phone:
        no_horizontal_scroll(page)
        # The chart's labels stay readable on a phone: at least 10 px on screen.
        size = page.evaluate(
            "() => document.querySelector('#history-chart .chart-label')"
            ".getBoundingClientRect().height"
        )
        assert size >= 10, size
    assert axe_violations(page) == []
    screenshot(page, "analytics-phone.png" if phone else "analytics-desktop.png", full_page=True)


def test_the_admin_edits_the_baseline_on_analytics(stack: Stack, acme: Tenant, open_as):
    page = open_as(acme["admin"], "/analytics")
    baseline = stack.api(acme["admin"].token, "GET", "/me").json()["account"]
    if not baseline["baseline_is_set"]:
        expect(page.locator("#baseline-default-note")).to_be_visible()
    page.get_by_label("Manual baseline (minutes)").fill("52")
    page.get_by_role("button", name="Save baseline").click()
    expect(page.locator("#baseline-status")).to_contain_text("Saved")
    account = stack.api(acme["admin"].token, "GET", "/me").json()["account"]
    assert (account["manual_baseline_minutes"], account["baseline_is_set"]) == (52, True)
    page.reload()
    expect(page.locator("#baseline-default-note")).to_be_hidden()
    # An engineer sees the baseline but cannot edit it.
    engineer = open_as(acme["eng"], "/analytics")
    expect(engineer.get_by_label("Manual baseline (minutes)")).to_have_count(0)


# --- urgent first, straight to the chat, and an honest signed-out tab ------------------------


def escalate_with(stack: Stack, technician: Person, title: str, priority: str) -> dict:
    session = stack.api(
        technician.token,
        "POST",
        "/sessions",
        json={"title": title, "snapshot": SNAPSHOT, "priority": priority, "customer": "Initech"},
    )
    assert session.status_code == 201, session.text
    return escalate(stack, technician, session.json()["id"], "Out of ideas")


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_a_new_p1_lands_on_top_claim_lands_in_the_chat_and_a_signed_out_tab_says_so(
    stack: Stack, acme: Tenant, open_as, phone: bool
):
    technician, erin = acme["tech"], acme["eng"]
    # Waiting already: a P4 whose title is one long unbroken word.
    long_word = "Printer" + "x" * 180
    escalate_with(stack, technician, long_word, "p4")
    queue = open_as(erin, "/escalations", phone=phone)
    expect(queue.locator("#queue > li.card").first).to_be_visible()
    no_horizontal_scroll(queue)  # the long title wraps

    # A new P1 arrives live: it goes to the top, on the first screen.
    urgent = unique_title("Exchange mailbox won't sync")
    handoff = escalate_with(stack, technician, urgent, "p1")
    first = queue.locator("#queue > li.card").first
    expect(first.locator(".card-title")).to_have_text(urgent, timeout=LIVE_MS)
    box = first.bounding_box()
    height = (PHONE if phone else DESKTOP)["height"]
    assert box is not None and box["y"] < height, box
    expect(first.locator(".priority-badge")).to_have_text("P1 · critical")

    # Claim: the claimer lands with the cursor in the message box, on screen.
    first.get_by_role("button", name="Claim").click()
    queue.wait_for_url(f"{stack.url}/pilot/{handoff['session_id']}")
    pilot = queue
    box_field = pilot.locator("#message-body")
    expect(box_field).to_be_focused()
    field = box_field.bounding_box()
    assert field is not None and 0 <= field["y"] < height, field
    expect(pilot.get_by_role("button", name="Reassign…")).to_be_visible()
    no_horizontal_scroll(pilot)
    # The chat follows the brief straight away: no blank gap under it.
    brief, chat = (
        pilot.locator("#handoff-brief").bounding_box(),
        pilot.locator("#chat").bounding_box(),
    )
    assert brief and chat and chat["y"] - (brief["y"] + brief["height"]) < 40, (brief, chat)

    # A half-typed message survives a reload.
    box_field.fill("Checking the mailbox size")
    pilot.reload()
    expect(pilot.locator("#message-body")).to_have_value("Checking the mailbox size")

    # Signing out in another tab: this one says so within 5 s and offers to sign in again.
    other = pilot.context.new_page()
    other.goto("/escalations")
    other.get_by_role("button", name="Sign out").click()
    other.wait_for_url(re.compile(r"/login"))
    expect(pilot.locator("#signed-out")).to_be_visible(timeout=5_000)
    expect(pilot.locator("#signed-out")).to_contain_text("Your sign-in has ended")
    link = pilot.get_by_role("link", name="Sign in again")
    expect(link).to_have_attribute("href", f"/login?next=/pilot/{handoff['session_id']}")
    expect(pilot.locator("#live-status")).to_have_attribute("data-state", "off")
    expect(pilot.locator("#message-body")).to_have_value("Checking the mailbox size")
    no_horizontal_scroll(pilot)
    if not phone:
        screenshot(pilot, "pilot-signed-out.png")

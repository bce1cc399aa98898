"""Handing a claimed escalation back, in headless Chromium against the real stack: a
senior releases it from the session page, another senior sees it return to their open
queue live and claims it, and the session page's timeline shows every step."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Stack, Tenant
from tests.e2e.test_pages_flow import card, escalate, start_session, unique_title

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]

LIVE_MS = 5000
TIMELINE_REFRESH_MS = 15000  # the page re-reads the timeline every 10 s at most


def test_release_then_another_senior_claims_it_from_the_live_queue(
    stack: Stack, acme: Tenant, sign_in, artifacts
):
    technician, erin, sam = acme["tech"], acme["eng"], acme["eng2"]
    title = unique_title("Shared mailbox will not sync")
    session = start_session(stack, technician, title)
    handoff = escalate(stack, technician, session["id"], "Outlook keeps asking for a password")
    claimed = stack.api(erin.token, "POST", f"/escalations/{handoff['id']}/claim")
    assert claimed.status_code == 200, claimed.text

    queue = sign_in(sam, "/escalations")
    expect(card(queue, title)).to_have_count(0)
    pilot_erin = sign_in(erin, f"/pilot/{session['id']}")
    # Handing it on is one click away in the brief; the form opens under it.
    opener = pilot_erin.get_by_role("button", name="Release…")
    expect(opener).to_be_visible()
    opener.click()
    pilot_erin.get_by_label(re.compile("Why are you releasing it")).fill("Exchange is Sam's area")
    pilot_erin.get_by_role("button", name="Release to the queue").click()
    status = pilot_erin.locator("#handoff-status")
    expect(status).to_contain_text("waiting for a senior to claim it")
    expect(opener).to_be_hidden()
    # What happened is said where it stays in sight, not in the form that closed.
    expect(pilot_erin.locator("#claim-status")).to_have_text("Released: it is back on the queue.")

    returned = card(queue, title)
    expect(returned).to_be_visible(timeout=LIVE_MS)  # handoff.released, live
    returned.get_by_role("button", name="Claim").click()
    queue.wait_for_url(f"{stack.url}/pilot/{session['id']}")
    pilot_sam = queue
    expect(pilot_sam.get_by_role("button", name="Reassign…")).to_be_visible()
    # The claimer lands in the chat box.
    expect(pilot_sam.locator("#message-body")).to_be_focused()
    # Erin's page learns who holds it now, live.
    expect(pilot_erin.locator("#handoff-status")).to_have_text(f"Claimed by {sam.name}.")
    pilot_sam.get_by_label("Message").fill("Sam here: re-adding the mailbox now")
    pilot_sam.get_by_role("button", name="Send").click()
    expect(pilot_sam.locator("#messages")).to_contain_text("re-adding the mailbox")

    timeline = pilot_erin.locator("#timeline-items")
    expect(timeline.locator('li[data-kind="first_action"]')).to_have_count(
        1, timeout=TIMELINE_REFRESH_MS
    )
    kinds = [
        kind
        for kind in timeline.locator(":scope > li").evaluate_all(
            "items => items.map(i => i.dataset.kind)"
        )
        if kind != "notifications"
    ]
    assert kinds == ["created", "claimed", "released", "claimed", "first_action"]
    expect(timeline).to_contain_text(f"Released by {erin.name}: Exchange is Sam's area")
    expect(timeline).to_contain_text(f"Claimed by {sam.name}")
    # The notifications fold under one line each run; opened, they list each delivery.
    folded = timeline.locator('li[data-kind="notifications"]').first
    expect(folded).to_contain_text("notification")
    expect(folded.locator('li[data-kind="notified"]').first).to_be_hidden()
    folded.locator("summary").click()
    expect(folded.locator('li[data-kind="notified"]').first).to_be_visible()
    # Times carry seconds.
    expect(timeline.locator(":scope > li > time").first).to_have_text(re.compile(r"\d:\d\d:\d\d"))
    pilot_erin.screenshot(path=str(artifacts / "pilot-timeline.png"), full_page=True)


def test_the_owner_sets_the_escalation_policy_on_settings(stack: Stack, acme: Tenant, sign_in):
    owner = acme["admin"]
    page = sign_in(owner, "/settings")
    after = page.get_by_label("Remind the seniors after (minutes, 1–240)")
    expect(after).to_have_value("5")
    expect(page.get_by_label("At most this many reminders (0–10)")).to_have_value("2")
    admins = page.get_by_label("Tell every admin after (minutes, 1–1440)")
    expect(admins).to_have_value("15")
    after.fill("7")
    admins.fill("")
    page.locator("#escalation-policy").get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#policy-status")).to_have_text("Saved.")
    account = stack.api(owner.token, "GET", "/me").json()["account"]
    assert (account["renotify_after_minutes"], account["escalate_to_admins_after_minutes"]) == (
        7,
        None,
    )
    stack.api(
        owner.token,
        "PATCH",
        "/account",
        json={"renotify_after_minutes": 5, "escalate_to_admins_after_minutes": 15},
    )


def test_a_reassignment_asks_why_and_the_new_holder_hears_it_on_the_queue(
    stack: Stack, acme: Tenant, sign_in
):
    technician, erin, sam = acme["tech"], acme["eng"], acme["eng2"]
    title = unique_title("VPN drops every hour")
    session = start_session(stack, technician, title)
    handoff = escalate(stack, technician, session["id"], "Rekeying fails")
    assert stack.api(erin.token, "POST", f"/escalations/{handoff['id']}/claim").ok

    queue = sign_in(sam, "/escalations")
    pilot = sign_in(erin, f"/pilot/{session['id']}")
    pilot.get_by_role("button", name="Reassign…").click()
    pilot.get_by_label("Reassign to").select_option(label=f"{sam.name} (engineer)")
    pilot.get_by_role("button", name="Reassign", exact=True).click()
    # A reassignment says why: the form will not go without a reason.
    assert pilot.locator("#reassign-reason").evaluate("e => e.validity.valueMissing")
    expect(pilot.locator("#handoff-status")).to_have_text(f"Claimed by {erin.name}.")
    pilot.get_by_label(re.compile("Why them")).fill("Sam set up their VPN")
    pilot.get_by_role("button", name="Reassign", exact=True).click()
    expect(pilot.locator("#claim-status")).to_have_text(
        f"Reassigned to {sam.name}: they have been told."
    )
    expect(pilot.locator("#handoff-status")).to_have_text(f"Claimed by {sam.name}.")
    expect(pilot.get_by_role("button", name="Reassign…")).to_be_hidden()

    handed = queue.locator("#handed-to-you")
    expect(handed).to_be_visible(timeout=LIVE_MS)
    expect(handed).to_contain_text(f"{erin.name} handed you “{title}”: Sam set up their VPN")
    expect(handed.get_by_role("link", name="Open session")).to_have_attribute(
        "href", f"/pilot/{session['id']}"
    )
    timeline = pilot.locator("#timeline-items")
    expect(timeline).to_contain_text(
        f"{erin.name} handed it to {sam.name}: Sam set up their VPN", timeout=15_000
    )


def test_the_session_page_tells_the_new_holder_who_handed_it_over_and_why(
    stack: Stack, acme: Tenant, sign_in
):
    technician, erin, sam = acme["tech"], acme["eng"], acme["eng2"]
    title = unique_title("Printer queue stuck")
    session = start_session(stack, technician, title)
    handoff = escalate(stack, technician, session["id"], "Spooler restarts did not help")
    assert stack.api(erin.token, "POST", f"/escalations/{handoff['id']}/claim").ok

    pilot = sign_in(sam, f"/pilot/{session['id']}")
    expect(pilot.locator("#live-status")).to_have_attribute("data-state", "live")
    notice = pilot.locator("#handed-to-you")
    expect(notice).to_be_hidden()
    answer = stack.api(
        erin.token,
        "POST",
        f"/escalations/{handoff['id']}/reassign",
        json={"user_id": sam.id, "reason": "Sam knows this printer"},
    )
    assert answer.status_code == 200, answer.text
    expect(notice).to_be_visible(timeout=LIVE_MS)
    expect(notice).to_have_text(f"{erin.name} handed this to you: Sam knows this printer")
    expect(pilot.locator("#handoff-status")).to_have_text(f"Claimed by {sam.name}.")

    # Handed back: the notice is no longer true for Sam, so it goes.
    back = stack.api(
        sam.token,
        "POST",
        f"/escalations/{handoff['id']}/reassign",
        json={"user_id": erin.id, "reason": "Back to Erin"},
    )
    assert back.status_code == 200, back.text
    expect(notice).to_be_hidden(timeout=LIVE_MS)


def test_the_session_page_opens_one_live_connection(stack: Stack, acme: Tenant, sign_in):
    technician, erin = acme["tech"], acme["eng"]
    session = start_session(stack, technician, unique_title("One socket"))
    escalate(stack, technician, session["id"], "Needs a senior")

    page = sign_in(erin, "/escalations")
    handshakes: list[str] = []

    def opened(url: str) -> None:
        if "/socket.io/" in url and "sid=" not in url:
            handshakes.append(url)

    page.on("request", lambda request: opened(request.url))
    page.on("websocket", lambda socket: opened(socket.url))
    page.goto(f"/pilot/{session['id']}")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    # Both the chat and the timeline are live over it: a message and a timeline line arrive.
    stack.api(
        technician.token,
        "POST",
        f"/sessions/{session['id']}/messages",
        json={"body": "Still broken"},
    )
    expect(page.locator("#messages")).to_contain_text("Still broken", timeout=LIVE_MS)
    # Both scripts have run by now (each used to call io() as it loaded).
    assert len(handshakes) == 1, handshakes

"""The queue page shows what the server says, in headless Chromium against the real stack:
the Claim button exactly where the claim rule (models.permissions) allows, and the priority
label of the handoff summary, on the cards that arrive live as on the first page.

This module's stack runs with one priority label and the claim rule changed in Python
(tests/e2e/server_rules/sitecustomize.py: admins may not claim), so a page that restated
either would show the unchanged one."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Stack, Tenant
from tests.e2e.test_queue_page import card, escalate, open_as, unique  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]

STACK_ENV = {"PYTHONPATH": str(Path(__file__).parent / "server_rules")}
LABEL = "P2 · said by the server"


def test_a_live_card_offers_claim_by_the_servers_rule_with_its_label(
    stack: Stack,
    acme: Tenant,
    open_as,  # noqa: F811
):
    tech, erin, owner = acme["tech"], acme["eng"], acme["admin"]
    engineer = open_as(erin, "/escalations")
    admin = open_as(owner, "/escalations")

    title = unique("Backups failing")
    handoff = escalate(stack, tech, title, "p2")
    for page in (engineer, admin):
        arrived = card(page, title)
        expect(arrived).to_be_visible()  # live: neither page was reloaded
        expect(arrived.locator('[data-field="priority_label"]')).to_have_text(LABEL)

    expect(card(engineer, title).get_by_role("button", name="Claim")).to_be_visible()
    expect(card(engineer, title).get_by_role("link", name="Open session")).to_have_count(0)
    expect(card(admin, title).get_by_role("button", name="Claim")).to_have_count(0)
    expect(card(admin, title).get_by_role("link", name="Open session")).to_have_attribute(
        "href", f"/pilot/{handoff['session_id']}"
    )

    # The server refuses as the page offers, and the list carries the same label.
    refused = stack.api(owner.token, "POST", f"/escalations/{handoff['id']}/claim")
    assert refused.status_code == 403, refused.text
    listed = stack.api(erin.token, "GET", "/escalations?priority=p2").json()["items"]
    assert [item["priority_label"] for item in listed if item["id"] == handoff["id"]] == [LABEL]

    # The first page, rendered by the server, offers the same.
    admin.reload()
    expect(card(admin, title).get_by_role("button", name="Claim")).to_have_count(0)
    expect(card(admin, title).locator('[data-field="priority_label"]')).to_have_text(LABEL)

    engineer_card = card(engineer, title)
    engineer_card.get_by_role("button", name="Claim").click()
    engineer.wait_for_url(f"**/pilot/{handoff['session_id']}")

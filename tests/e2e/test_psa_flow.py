"""The PSA in the browser against the real stack: an admin connects ConnectWise (the fake
server) on /settings, an engineer writes a note on the session page, the worker posts it to
the ticket, and the page shows it sent with the PSA's note id."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Stack, Tenant
from tests.e2e.test_pages_flow import ASSESSMENT, SNAPSHOT, escalate
from tests.psa_fake import FakeConnectWise

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]

TICKET = "7001"


@pytest.fixture
def fake_cw() -> Iterator[FakeConnectWise]:
    fake = FakeConnectWise().start()
    fake.add_ticket(TICKET)
    yield fake
    fake.stop()


def test_connect_on_settings_then_a_note_reaches_the_ticket_and_shows_sent(
    stack: Stack, acme: Tenant, sign_in, fake_cw: FakeConnectWise
):
    admin = sign_in(acme["admin"], "/settings")
    state = admin.locator("#psa-settings-state")
    expect(state).to_have_text("No PSA is connected.")
    admin.get_by_label("Site URL").fill(fake_cw.url)
    admin.get_by_label("Company id").fill(fake_cw.company_id)
    admin.get_by_label("Public key").fill(fake_cw.public_key)
    admin.get_by_label("Private key").fill("not-the-key")
    admin.locator("#psa-settings").get_by_label("Client id").fill(fake_cw.client_id)
    admin.get_by_role("button", name="Test connection").click()
    expect(admin.locator("#psa-settings-status")).to_contain_text("Bad keys")
    admin.get_by_label("Private key").fill(fake_cw.private_key)
    admin.get_by_role("button", name="Test connection").click()
    expect(admin.locator("#psa-settings-status")).to_contain_text("Connected to ConnectWise")
    admin.get_by_role("button", name="Save connection").click()
    expect(state).to_contain_text(f"Connected to ConnectWise company {fake_cw.company_id}")
    expect(admin.get_by_label("Private key")).to_have_value("")
    assert [entry["url"] for entry in fake_cw.callbacks.values()] == [
        admin.locator("#psa-settings-callback-url").text_content()
    ]

    created = stack.api(
        acme["tech"].token,
        "POST",
        "/sessions",
        json={"title": "Printer jam", "snapshot": SNAPSHOT, "ai_assessment": ASSESSMENT,
              "psa_ticket_id": TICKET},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    handoff = escalate(stack, acme["tech"], session_id, "Needs a senior")
    claimed = stack.api(acme["eng"].token, "POST", f"/escalations/{handoff['id']}/claim")
    assert claimed.status_code == 200, claimed.text

    page = sign_in(acme["eng"], f"/pilot/{session_id}")
    expect(page.get_by_role("link", name=f"#{TICKET} in ConnectWise")).to_have_attribute(
        "href", re.compile(rf"service_recid={TICKET}")
    )
    page.get_by_label("Note to write back to the PSA ticket").fill("Cleared the jam, test page OK")
    page.get_by_role("button", name="Write back to PSA").click()
    state = page.locator("#writebacks .writeback-state").last
    expect(state).to_have_text(re.compile(r"Sent to the PSA \(note #\d+\)"), timeout=20_000)
    (note,) = fake_cw.notes(TICKET)
    assert note["text"].startswith("Cleared the jam, test page OK")
    assert f"note #{note['id']}" in state.text_content()
    timing = stack.api(acme["eng"].token, "GET", f"/escalations/{handoff['id']}").json()
    assert timing["first_action_kind"] == "psa_writeback"

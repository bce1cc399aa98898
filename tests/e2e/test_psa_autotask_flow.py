"""Autotask in the browser against the real stack: an admin picks Autotask on /settings,
the form shows Autotask's own fields, a wrong secret is said in words, the saved connection
names the zone found for the API user and says that notes are polled; an engineer's note
on the session page reaches the Autotask ticket through the worker and shows sent."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Stack, Tenant
from tests.e2e.test_pages_flow import ASSESSMENT, SNAPSHOT, escalate
from tests.integration.services import free_port
from tests.psa_fake.autotask import FakeAutotask

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]

TICKET = "7301"
FAKE_PORT = free_port()
# The stack's web process looks zones up at the stand-in.
STACK_ENV = {"PSA_AUTOTASK_ZONE_URL": f"http://127.0.0.1:{FAKE_PORT}/atservicesrest"}


@pytest.fixture
def fake_at() -> Iterator[FakeAutotask]:
    fake = FakeAutotask().start(port=FAKE_PORT)
    fake.add_ticket(TICKET)
    yield fake
    fake.stop()


def test_connect_autotask_on_settings_then_a_note_reaches_the_ticket(
    stack: Stack, acme: Tenant, sign_in, fake_at: FakeAutotask
):
    admin = sign_in(acme["admin"], "/settings")
    section = admin.locator("#psa-settings")
    expect(admin.locator("#psa-settings-state")).to_have_text("No PSA is connected.")
    expect(section.get_by_label("Site URL")).to_be_visible()  # ConnectWise first
    section.get_by_label("PSA", exact=True).select_option("autotask")
    expect(section.get_by_label("Site URL")).to_be_hidden()
    section.get_by_label("API user name").fill(fake_at.username)
    section.get_by_label("Secret", exact=True).fill("not-the-secret")
    section.get_by_label("Integration code").fill(fake_at.integration_code)
    section.get_by_role("button", name="Test connection").click()
    status = admin.locator("#psa-settings-status")
    expect(status).to_contain_text("Bad credentials")
    section.get_by_label("Secret", exact=True).fill(fake_at.secret)
    section.get_by_role("button", name="Test connection").click()
    expect(status).to_contain_text(f"Connected to Autotask as {fake_at.username}")
    section.get_by_role("button", name="Save connection").click()
    expect(admin.locator("#psa-settings-state")).to_have_text(
        f"Connected to Autotask as {fake_at.username} (zone {fake_at.zone_url})."
    )
    expect(admin.locator("#psa-settings-polled")).to_be_visible()
    expect(admin.locator("#psa-settings-callback")).to_be_hidden()
    expect(section.get_by_label("Secret", exact=True)).to_have_value("")
    expect(section.get_by_label("Integration code")).to_have_value("")
    # Reloaded, the page shows the saved Autotask connection and its user name.
    admin.reload()
    expect(section.get_by_label("API user name")).to_have_value(fake_at.username)

    created = stack.api(
        acme["tech"].token,
        "POST",
        "/sessions",
        json={"title": "VPN down", "snapshot": SNAPSHOT, "ai_assessment": ASSESSMENT,
              "psa_ticket_id": TICKET},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    handoff = escalate(stack, acme["tech"], session_id, "Needs a senior")
    claimed = stack.api(acme["eng"].token, "POST", f"/escalations/{handoff['id']}/claim")
    assert claimed.status_code == 200, claimed.text

    page = sign_in(acme["eng"], f"/pilot/{session_id}")
    expect(page.get_by_role("link", name=f"#{TICKET} in Autotask PSA")).to_have_attribute(
        "href", re.compile(rf"Code=OpenTicketDetail&TicketID={TICKET}$")
    )
    page.get_by_label("Note to write back to the PSA ticket").fill("Re-issued the VPN cert")
    page.get_by_role("button", name="Write back to PSA").click()
    state = page.locator("#writebacks .writeback-state").last
    expect(state).to_have_text(re.compile(r"Sent to the PSA \(note #\d+\)"), timeout=20_000)
    (note,) = fake_at.notes(TICKET)
    assert note["description"].startswith("Re-issued the VPN cert")
    assert f"note #{note['id']}" in state.text_content()

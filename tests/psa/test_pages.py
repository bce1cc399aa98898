"""The PSA on the pages: the settings section for admins, and the session page's ticket link
and writeback states."""

from __future__ import annotations

from html import unescape

from tests.psa.test_writeback import (
    TICKET,
    connect,
    delivery_id,
    dispatch_latest,
    post,
    session_with_ticket,
    write_back,
)


def browser(app, email: str, password: str):
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 303, response.text
    return client


def test_settings_show_the_psa_section_to_admins_only(app, tenant):
    admin = browser(app, "owner@alpha-msp.example", "owner-password")
    page = admin.get("/settings")
    assert page.status_code == 200
    assert 'id="psa-settings-form"' in page.text and "settings_psa.js" in page.text
    assert 'type="password"' in page.text  # the keys are typed, never shown back
    engineer = browser(app, "eng@alpha-msp.example", "user-password")
    assert engineer.get("/settings").status_code == 403


def test_the_session_page_links_the_ticket_and_shows_each_notes_state(app, client, tenant, fake_cw):
    session_id = session_with_ticket(client, tenant)
    write_back(client, tenant, session_id, "kept here")
    engineer = browser(app, "eng@alpha-msp.example", "user-password")
    before = unescape(engineer.get(f"/pilot/{session_id}").text)
    assert "No PSA is connected to this account" in before
    assert 'data-status="not_connected"' in before and "psa.js" in before
    connect(client, tenant, fake_cw)
    write_back(client, tenant, session_id, "sent there")
    dispatch_latest()
    post(delivery_id())
    page = unescape(engineer.get(f"/pilot/{session_id}").text)
    assert f"service_recid={TICKET}&companyName=acme" in page
    (note,) = fake_cw.notes(TICKET)
    assert f"Sent to the PSA (note #{note['id']})" in page
    assert "No PSA is connected" not in page

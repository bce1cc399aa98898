"""/oncall in headless Chromium against the real stack: an engineer sees the schedule,
takes a colleague's shift (an override for themselves), sees the queue header name them,
and creates and rotates their calendar link (the old one answers 404); an admin creates,
edits and deletes a rotation with the page's form, a bad field answered in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import Stack, Tenant

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]


def test_take_a_shift_and_rotate_the_calendar_link(stack: Stack, acme: Tenant, sign_in, artifacts):
    erin, sam, owner = acme["eng"], acme["eng2"], acme["admin"]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    rotation = stack.api(
        owner.token,
        "POST",
        "/oncall/rotations",
        json={
            "name": "After hours",
            "participants": [sam.id, erin.id],
            "shift_length_days": 1,
            "handoff_time": "00:00",
            "start_date": yesterday,
            "timezone": "UTC",
        },
    )
    assert rotation.status_code == 201, rotation.text
    page = sign_in(erin, "/oncall")
    expect(page.locator("#rotations")).to_contain_text("Sam Senior → Erin Engineer")
    sams = page.locator("#schedule tr.segment", has_text="Sam Senior")
    expect(sams.first).to_be_visible()
    start, end = sams.first.get_attribute("data-start"), sams.first.get_attribute("data-end")
    sams.first.get_by_role("button", name="Take this shift").click()
    expect(page.locator("#overrides")).to_contain_text("Erin Engineer covers")
    page.screenshot(path=str(artifacts / "oncall.png"), full_page=True)
    shifts = stack.api(
        erin.token, "GET", "/oncall/shifts", params={"from": start, "to": end}
    ).json()["items"]
    assert [(s["source"], s["user"]["id"], s["end"]) for s in shifts][-1] == (
        "override",
        erin.id,
        end,
    )

    create = page.get_by_role("button", name="Create calendar link")
    create.click()
    field = page.locator("#calendar-url")
    expect(field).to_be_visible()
    first_url = field.input_value()
    feed = requests.get(first_url.replace(first_url.split("/api/")[0], stack.url), timeout=10)
    assert feed.status_code == 200 and feed.headers["Content-Type"].startswith("text/calendar")
    assert "SUMMARY:On call: After hours" in feed.text
    page.get_by_role("button", name="Rotate calendar link").click()
    expect(field).not_to_have_value(first_url)
    old = requests.get(first_url.replace(first_url.split("/api/")[0], stack.url), timeout=10)
    assert old.status_code == 404

    queue = sign_in(owner, "/escalations")
    expect(queue.locator("#queue-on-call")).to_contain_text("On call now:")


def test_an_admin_creates_edits_and_deletes_a_rotation(stack: Stack, acme: Tenant, sign_in):
    erin, sam, owner = acme["eng"], acme["eng2"], acme["admin"]

    def mine() -> list[dict]:
        items = stack.api(owner.token, "GET", "/oncall/rotations").json()["items"]
        return [r for r in items if r["name"].startswith("Database")]

    page = sign_in(owner, "/oncall")
    form = page.locator("#rotation-form")
    form.get_by_label("Name").fill("Database nights")
    form.get_by_label(sam.name).check()
    form.get_by_label(erin.name).check()
    expect(page.locator("#rotation-order")).to_have_text("Sam Senior → Erin Engineer")
    form.get_by_label("Shift length").fill("0")
    form.get_by_role("button", name="Create rotation").click()
    expect(page.locator("#rotation-status")).to_contain_text(
        "shift length days: A whole number of days from 1 to 28."
    )
    assert mine() == []

    form.get_by_label("Shift length").fill("7")
    form.get_by_label("Hands off at").fill("09:30")
    form.get_by_label("First shift starts on").fill("2026-12-07")
    form.get_by_label("Time zone").fill("America/Chicago")
    form.get_by_role("button", name="Create rotation").click()
    row = page.locator("#rotations tr", has_text="Database nights")
    expect(row).to_contain_text("Sam Senior → Erin Engineer")
    expect(row).to_contain_text("09:30 America/Chicago")
    [created] = mine()
    assert (
        [p["id"] for p in created["participants"]],
        created["shift_length_days"],
        created["handoff_time"],
        created["start_date"],
        created["timezone"],
    ) == ([sam.id, erin.id], 7, "09:30", "2026-12-07", "America/Chicago")

    row.get_by_role("button", name="Edit Database nights").click()
    expect(page.locator("#rotation-form-title")).to_have_text("Edit rotation: Database nights")
    expect(page.locator("#rotation-order")).to_have_text("Sam Senior → Erin Engineer")
    form.get_by_label("Name").fill("Database on call")
    form.get_by_label(sam.name).uncheck()
    form.get_by_label(sam.name).check()  # now after Erin
    expect(page.locator("#rotation-order")).to_have_text("Erin Engineer → Sam Senior")
    form.get_by_label("Shift length").fill("1")
    form.get_by_role("button", name="Save rotation").click()
    row = page.locator("#rotations tr", has_text="Database on call")
    expect(row).to_contain_text("Erin Engineer → Sam Senior")
    expect(row).to_contain_text("1 day")
    [edited] = mine()
    assert edited["id"] == created["id"] and edited["name"] == "Database on call"
    assert [p["id"] for p in edited["participants"]] == [erin.id, sam.id]
    assert edited["shift_length_days"] == 1 and edited["handoff_time"] == "09:30"

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete Database on call").click()
    expect(page.locator("#rotations tr", has_text="Database on call")).to_have_count(0)
    assert mine() == []

    engineer = sign_in(erin, "/oncall")
    expect(engineer.locator("#rotations-title")).to_be_visible()
    expect(engineer.locator("#rotation-form")).to_have_count(0)
    expect(engineer.locator(".edit-rotation")).to_have_count(0)

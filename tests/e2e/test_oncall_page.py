"""/oncall in headless Chromium against the real stack: an engineer sees the schedule,
takes a colleague's shift (an override for themselves), sees the queue header name them,
and creates and rotates their calendar link (the old one answers 404). An admin creates,
reorders and deletes a rotation on the page, with the stack's clock set; engineers and
technicians get no rotation controls, and the API refuses them too."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from models.clock import set_test_clock
from tests.e2e.accessibility import axe_violations
from tests.e2e.conftest import Stack, Tenant

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(180)]

# Every process of this module's stack follows this clock file once a test writes it (the
# system clock until then, and again once it is removed).
CLOCK_FILE = Path(tempfile.gettempdir()) / f"oncall-page-clock-{os.getpid()}"
STACK_ENV = {"APP_ENV": "test", "TEST_CLOCK_FILE": str(CLOCK_FILE)}


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


# Saturday 6 March 2027, 12:00 UTC (frozen): the page shows until Saturday 20 March, 12:00
# UTC. Chicago springs forward on Sunday 14 March 2027 (09:00 CST is 15:00Z, CDT 14:00Z).
PAGE_NOW = datetime(2027, 3, 6, 12, 0, tzinfo=UTC)


def _rotation_rows(page, rotation_id: int) -> list[tuple[str, str, str]]:
    rows = page.locator(f'#schedule tr.segment[data-rotation-id="{rotation_id}"]')
    return [
        (
            row.locator("td").nth(1).inner_text().strip(),
            row.get_attribute("data-start"),
            row.get_attribute("data-end"),
        )
        for row in rows.all()
    ]


def test_an_admin_creates_reorders_and_deletes_a_rotation(
    stack: Stack, acme: Tenant, sign_in, artifacts
):
    erin, sam, owner = acme["eng"], acme["eng2"], acme["admin"]
    set_test_clock(CLOCK_FILE, PAGE_NOW, frozen=True)
    try:
        page = sign_in(owner, "/oncall")
        form = page.locator("#rotation-form")
        form.get_by_label("Name").fill("Night desk")
        pick = form.get_by_label("Add an engineer or admin")
        pick.select_option(label="Erin Engineer")
        form.get_by_role("button", name="Add", exact=True).click()
        pick.select_option(label="Sam Senior")
        form.get_by_role("button", name="Add", exact=True).click()
        expect(form.locator("#participant-list li")).to_have_text(
            [re.compile("^Erin Engineer"), re.compile("^Sam Senior")]
        )
        form.get_by_label("Shift length").fill("3")
        form.get_by_label("Handoff time").fill("09:00")
        form.get_by_label("Time zone", exact=True).fill("America/Chicago")
        form.get_by_label("Start date").fill("2027-03-08")
        form.get_by_role("button", name="Create rotation").click()
        expect(page.locator("#rotation-status")).to_contain_text("Created Night desk.")

        created = [
            r
            for r in stack.api(owner.token, "GET", "/oncall/rotations").json()["items"]
            if r["name"] == "Night desk"
        ]
        assert [(r["participants"], r["shift_length_days"], r["handoff_time"],
                 r["timezone"], r["start_date"]) for r in created] == [(
            [{"id": erin.id, "name": "Erin Engineer"}, {"id": sam.id, "name": "Sam Senior"}],
            3, "09:00", "America/Chicago", "2027-03-08",
        )]  # fmt: skip
        rotation_id = created[0]["id"]
        row = page.locator(f'#rotations tr[data-rotation-id="{rotation_id}"]')
        expect(row).to_contain_text("Erin Engineer → Sam Senior")
        # Redrawn from the API: nobody before the first handoff, then 3-day shifts from
        # Monday 8 March 09:00 in Chicago (the one across the change lasts 71 hours), the
        # last cut where the page ends.
        shifts = page.locator(f'#schedule tr.segment[data-rotation-id="{rotation_id}"]')
        expect(shifts).to_have_count(5)
        assert _rotation_rows(page, rotation_id) == [
            ("Nobody (gap)", "2027-03-06T12:00:00Z", "2027-03-08T15:00:00Z"),
            ("Erin Engineer", "2027-03-08T15:00:00Z", "2027-03-11T15:00:00Z"),
            ("Sam Senior", "2027-03-11T15:00:00Z", "2027-03-14T14:00:00Z"),
            ("Erin Engineer", "2027-03-14T14:00:00Z", "2027-03-17T14:00:00Z"),
            ("Sam Senior", "2027-03-17T14:00:00Z", "2027-03-20T12:00:00Z"),
        ]

        # Edit: Sam first, moved with the keyboard; the focus stays on Sam's controls.
        row.get_by_role("button", name="Edit rotation Night desk").click()
        expect(page.locator("#rotation-form-title")).to_have_text("Edit Night desk")
        expect(form.get_by_label("Name")).to_be_focused()
        form.get_by_role("button", name="Move Sam Senior up").focus()
        page.keyboard.press("Enter")
        expect(form.get_by_role("button", name="Move Sam Senior down")).to_be_focused()
        form.get_by_role("button", name="Save changes").click()
        expect(page.locator("#rotation-status")).to_contain_text("Saved Night desk.")
        expect(row).to_contain_text("Sam Senior → Erin Engineer")
        expect(shifts.nth(1)).to_contain_text("Sam Senior")
        assert _rotation_rows(page, rotation_id) == [
            ("Nobody (gap)", "2027-03-06T12:00:00Z", "2027-03-08T15:00:00Z"),
            ("Sam Senior", "2027-03-08T15:00:00Z", "2027-03-11T15:00:00Z"),
            ("Erin Engineer", "2027-03-11T15:00:00Z", "2027-03-14T14:00:00Z"),
            ("Sam Senior", "2027-03-14T14:00:00Z", "2027-03-17T14:00:00Z"),
            ("Erin Engineer", "2027-03-17T14:00:00Z", "2027-03-20T12:00:00Z"),
        ]

        # A shift of 40 days: the server's 422, under the field, and nothing changes.
        row.get_by_role("button", name="Edit rotation Night desk").click()
        length = form.get_by_label("Shift length")
        length.fill("40")
        form.get_by_role("button", name="Save changes").click()
        error = page.locator("#rotation-shift-error")
        expect(error).to_have_text("A whole number of days from 1 to 28.")
        expect(length).to_have_attribute("aria-invalid", "true")
        expect(length).to_have_attribute("aria-describedby", "rotation-shift-error")
        page.screenshot(path=str(artifacts / "oncall-rotation-form.png"), full_page=True)
        problems = {"the form with a 422": axe_violations(page)}
        page.keyboard.press("Escape")
        expect(page.locator("#rotation-form-title")).to_have_text("New rotation")
        expect(error).to_have_count(0)
        assert stack.api(
            owner.token, "GET", f"/oncall/shifts?rotation_id={rotation_id}",
            params={"from": "2027-03-08T15:00:00Z", "to": "2027-03-11T15:00:00Z"},
        ).json()["items"][0]["user"]["id"] == sam.id  # fmt: skip

        # Delete, once confirmed ("Keep it" first: nothing happens).
        row.get_by_role("button", name="Delete rotation Night desk").click()
        expect(row.get_by_role("button", name="Keep it")).to_be_focused()
        problems["a delete to confirm"] = axe_violations(page)
        assert problems == {what: [] for what in problems}
        row.get_by_role("button", name="Keep it").click()
        expect(row.get_by_role("button", name="Delete rotation Night desk")).to_be_focused()
        row.get_by_role("button", name="Delete rotation Night desk").click()
        row.get_by_role("button", name="Delete rotation", exact=True).click()
        expect(page.locator("#rotations-status")).to_have_text(
            "Deleted Night desk and its overrides."
        )
        expect(row).to_have_count(0)
        expect(shifts).to_have_count(0)
        left = stack.api(owner.token, "GET", "/oncall/rotations").json()["items"]
        assert "Night desk" not in [r["name"] for r in left]

        # An edit of a rotation someone deleted meanwhile says so, and the row goes.
        spare = stack.api(owner.token, "POST", "/oncall/rotations", json={
            "name": "Spare desk", "participants": [erin.id], "shift_length_days": 1,
            "handoff_time": "08:00", "start_date": "2027-03-08",
        }).json()  # fmt: skip
        page.reload()
        page.get_by_role("button", name="Edit rotation Spare desk").click()
        assert stack.api(owner.token, "DELETE", f"/oncall/rotations/{spare['id']}").ok
        form.get_by_role("button", name="Save changes").click()
        expect(page.locator("#rotation-status")).to_have_text(
            "Spare desk no longer exists (deleted meanwhile)."
        )
        expect(page.locator("#rotation-form-title")).to_have_text("New rotation")
        expect(page.get_by_role("button", name="Edit rotation Spare desk")).to_have_count(0)
    finally:
        CLOCK_FILE.unlink(missing_ok=True)


def test_engineers_and_technicians_get_no_rotation_controls(stack: Stack, acme: Tenant, sign_in):
    erin, terry, owner = acme["eng"], acme["tech"], acme["admin"]
    body = {
        "name": "Weekend desk",
        "participants": [erin.id],
        "shift_length_days": 2,
        "handoff_time": "08:00",
        "start_date": "2026-12-05",
        "timezone": "UTC",
    }
    created = stack.api(owner.token, "POST", "/oncall/rotations", json=body)
    assert created.status_code == 201, created.text
    rotation_id = created.json()["id"]
    try:
        for person in (erin, terry):
            page = sign_in(person, "/oncall")
            expect(page.locator("#rotations")).to_contain_text("Weekend desk")
            expect(page.locator("#rotation-form")).to_have_count(0)
            expect(page.get_by_role("button", name="Edit rotation Weekend desk")).to_have_count(0)
            expect(page.get_by_role("button", name="Delete rotation Weekend desk")).to_have_count(0)
            assert "create one below" not in page.content()
            # The API refuses them as well.
            path = f"/oncall/rotations/{rotation_id}"
            answers = [
                stack.api(person.token, "POST", "/oncall/rotations", json=body),
                stack.api(person.token, "PATCH", path, json={"shift_length_days": 3}),
                stack.api(person.token, "DELETE", path),
            ]
            assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [
                (403, "forbidden")
            ] * 3
        after = stack.api(owner.token, "GET", "/oncall/rotations").json()["items"]
        assert [r["shift_length_days"] for r in after if r["id"] == rotation_id] == [2]
    finally:
        stack.api(owner.token, "DELETE", f"/oncall/rotations/{rotation_id}")

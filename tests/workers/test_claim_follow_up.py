"""The "claimed by X" follow-up email: one to each senior who was emailed about the
handoff (not the claimer, not those who were online), sent once however often the claim
is dispatched; and the escalation email's times in the account's zone with a link to the
session page."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from flask import current_app
from sqlalchemy import update

from models import db
from models.entities import Account, Delivery
from tests.factories import new_handoff
from tests.workers.test_email_message import BASE_URL, MAIL_FROM, SENT, notice, parts
from tests.workers.test_fanout import (  # noqa: F401  (fixtures)
    email_rows,
    outbox_event,
    presence,
    queue_server,
    quick_retries,
    run,
    sent_tasks,
    web_node,
)
from workers import mail as email_worker
from workers import names
from workers.email_message import compose, message_id


def mark(row_ids: list[int], status: str) -> None:
    db.session.execute(update(Delivery).where(Delivery.id.in_(row_ids)).values(status=status))
    db.session.commit()


@pytest.mark.usefixtures("web_node")
def test_those_emailed_about_it_hear_who_claimed_it_once(client, tenant, request):
    online, enqueued_tasks = (
        request.getfixturevalue("presence"),
        request.getfixturevalue("sent_tasks"),
    )
    online.connected(tenant.users["eng"], "sid-eng")  # online: never emailed
    handoff = new_handoff(client, tenant)
    run(outbox_event(handoff["id"]))
    admin_row, eng2_row = email_rows(handoff["id"])
    assert (admin_row.recipient_id, eng2_row.recipient_id) == (
        tenant.users["admin"],
        tenant.users["eng2"],
    )
    mark([admin_row.id, eng2_row.id], "sent")

    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng2"))
    claimed = outbox_event(handoff["id"], "handoff.claimed")
    assert run(claimed).get() == "sent"
    follow_ups = [r for r in email_rows(handoff["id"]) if r.event == "handoff.claimed"]
    # The claimer (eng2) knows already; eng was online and never emailed.
    assert [r.recipient_id for r in follow_ups] == [tenant.users["admin"]]
    assert follow_ups[0].dedupe_key == f"email-claimed:{handoff['id']}:{tenant.users['admin']}"
    enqueued = [args for name, args in enqueued_tasks if name == names.SEND_EMAILS]
    assert [[follow_ups[0].id]] in enqueued

    # A duplicate dispatch of the claim (relay, redelivery) adds nothing.
    db.session.execute(
        update(Delivery)
        .where(Delivery.outbox_event_id == claimed.id, Delivery.channel == "socket")
        .values(status="pending", locked_until=None)
    )
    db.session.commit()
    run(claimed)
    again = [r for r in email_rows(handoff["id"]) if r.event == "handoff.claimed"]
    assert [r.id for r in again] == [follow_ups[0].id]

    settings = email_worker.EmailSettings.from_config(current_app.config)
    message, address = email_worker.build_message(again[0], settings)
    assert address == "owner@alpha-msp.example"
    assert message["Subject"] == "[P3] Claimed by Alpha MSP Eng2: VPN drops every hour"
    assert "Alpha MSP Eng2 claimed" in message.get_body(("plain",)).get_content()


@pytest.mark.usefixtures("web_node", "presence")
def test_a_failed_escalation_email_gets_no_follow_up(client, tenant):
    handoff = new_handoff(client, tenant)
    run(outbox_event(handoff["id"]))
    rows = email_rows(handoff["id"])
    mark([row.id for row in rows], "failed")
    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
    run(outbox_event(handoff["id"], "handoff.claimed"))
    assert [r for r in email_rows(handoff["id"]) if r.event == "handoff.claimed"] == []


@pytest.mark.usefixtures("web_node", "presence")
def test_the_escalation_email_shows_times_in_the_accounts_zone(client, tenant):
    db.session.execute(
        update(Account).where(Account.id == tenant.account_id).values(timezone="America/Chicago")
    )
    db.session.commit()
    handoff = new_handoff(client, tenant)
    run(outbox_event(handoff["id"]))
    row = email_rows(handoff["id"])[0]
    settings = email_worker.EmailSettings.from_config(current_app.config)
    message, _ = email_worker.build_message(row, settings)
    plain = message.get_body(("plain",)).get_content()
    created = datetime.fromisoformat(handoff["created_at"].replace("Z", "+00:00"))
    # December in Chicago is UTC-6 (CST), computed here by hand.
    local = created.astimezone(UTC).replace(tzinfo=None)
    hours = (local.hour - 6) % 24
    assert f"{hours:02d}:{local.minute:02d} C" in plain
    assert "(America/Chicago)" in plain and " UTC" not in plain


def build(kind: str = "created", **overrides):
    message = compose(
        notice(**overrides),
        recipient_name="Erin Engineer",
        recipient_email="erin@msp.example",
        mail_from=MAIL_FROM,
        base_url=BASE_URL,
        message_id=message_id(5, 17, MAIL_FROM),
        date=SENT,
        kind=kind,
    )
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def test_the_link_opens_this_escalation_with_its_claim_button():
    plain, html = parts(build(timezone="Asia/Tokyo"))
    assert f"Open this escalation and claim it: {BASE_URL}/pilot/42" in plain
    assert f'<a href="{BASE_URL}/pilot/42"' in html and "Open and claim</a>" in html
    # 2026-03-04 05:00 UTC is 14:00 in Tokyo (UTC+9, no daylight saving).
    assert "Escalated at: 2026-03-04 14:00 JST (Asia/Tokyo)" in plain


def test_the_claimed_follow_up_is_short_and_names_the_claimer():
    message = build(
        "claimed",
        claimed_by="Sam <Senior>",
        claimed_at=datetime(2026, 3, 4, 5, 9),
        timezone="America/Chicago",
    )
    assert message["Subject"] == "[P1 · Initech] Claimed by Sam <Senior>: VPN drops every hour"
    plain, html = parts(message)
    # 05:09 UTC on 4 March is 23:09 the day before in Chicago (CST, UTC-6).
    assert 'Sam <Senior> claimed "VPN drops every hour" at 2026-03-03 23:09 CST' in plain
    assert "Sam &lt;Senior&gt;" in html and "<Senior>" not in html
    assert len(plain.splitlines()) <= 6

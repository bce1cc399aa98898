"""Quiet hours hold an email, they do not drop it; reminders and reassignments follow the
seniors' preferences too. On a pinned clock (time-machine), at a summer and a winter date,
with every instant written out by hand: the account is in America/Chicago (UTC-5 in July,
UTC-6 in December), the admin's quiet hours are 22:00-07:00 there, eng2 chose `never`.

The dispatch runs in-process (fakeredis for the message queue and presence, as in
test_fanout.py); the mailer's sweep releases what is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import current_app
from sqlalchemy import select, update

from models import db, handoff_steps
from models.entities import Account, Delivery, OutboxEvent
from tests.factories import both_databases, new_handoff
from tests.workers.test_fanout import (  # noqa: F401 - fixtures
    email_rows,
    outbox_event,
    presence,
    queue_server,
    quick_retries,
    sent_tasks,
    web_node,
)
from workers import fanout, mail, names

# 23:30 in Chicago, and 07:00 the next morning, when the admin's quiet hours end.
SEASONS = {
    "summer": (datetime(2026, 7, 16, 4, 30, tzinfo=UTC), datetime(2026, 7, 16, 12, 0, tzinfo=UTC)),
    "winter": (
        datetime(2026, 12, 10, 5, 30, tzinfo=UTC),
        datetime(2026, 12, 10, 13, 0, tzinfo=UTC),
    ),
}
seasons = pytest.mark.parametrize("season", ["summer", "winter"])


@pytest.fixture
def chicago(client, tenant):
    db.session.execute(
        update(Account).where(Account.id == tenant.account_id).values(timezone="America/Chicago")
    )
    db.session.commit()
    for who, body in [
        ("admin", {"quiet_hours": {"start": "22:00", "end": "07:00"}}),
        ("eng2", {"notify_email": "never"}),
    ]:
        response = client.patch("/api/v1/me", json=body, headers=tenant.auth(who))
        assert response.status_code == 200, response.get_json()
    return tenant


def email_ids(tasks) -> list[list[int]]:
    return [args[0] for name, args in tasks if name == names.SEND_EMAILS]


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


@both_databases
@seasons
@pytest.mark.usefixtures("web_node", "presence")
def test_a_held_email_goes_out_when_the_quiet_hours_end(
    client,
    chicago,
    sent_tasks,  # noqa: F811
    season,
):
    late, quiet_end = SEASONS[season]
    tenant = chicago
    with time_machine.travel(late, tick=False) as clock:
        handoff = new_handoff(client, tenant)
        fanout.dispatch(outbox_event(handoff["id"]).id)
        admin_row, eng_row = email_rows(handoff["id"])
        assert (admin_row.recipient_id, admin_row.status) == (tenant.users["admin"], "held")
        assert admin_row.held_until == naive(quiet_end)
        assert (eng_row.recipient_id, eng_row.status) == (tenant.users["eng"], "pending")
        assert email_ids(sent_tasks) == [[eng_row.id]]  # eng2 said never: no row at all

        listed = client.get(
            f"/api/v1/escalations/{handoff['id']}/deliveries", headers=tenant.auth("admin")
        ).get_json()["items"]
        held = next(item for item in listed if item["id"] == admin_row.id)
        assert (held["status"], held["reason"]) == ("held", "business_hours")
        assert held["held_until"] == quiet_end.strftime("%Y-%m-%dT%H:%M:%SZ")

        clock.move_to(quiet_end - timedelta(minutes=1))
        assert mail.release_held() == []
        clock.move_to(quiet_end)
        assert mail.release_held() == [admin_row.id]
        assert mail.release_held() == []  # once
        assert email_ids(sent_tasks)[-1] == [admin_row.id]
        db.session.expire_all()
        released = db.session.get(Delivery, admin_row.id)
        assert released.status == "pending"
        settings = mail.EmailSettings.from_config(current_app.config)
        message, address = mail.build_message(released, settings)
        assert address == "owner@alpha-msp.example"
        assert "VPN drops every hour" in message["Subject"]


@both_databases
@seasons
@pytest.mark.usefixtures("web_node", "presence")
def test_a_held_email_of_a_handoff_claimed_meanwhile_fails_not_sent_claimed(
    client, chicago, season
):
    late, quiet_end = SEASONS[season]
    tenant = chicago
    with time_machine.travel(late, tick=False) as clock:
        handoff = new_handoff(client, tenant)
        fanout.dispatch(outbox_event(handoff["id"]).id)
        admin_row = email_rows(handoff["id"])[0]
        clock.move_to(late + timedelta(hours=2))
        claimed = client.post(
            f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng")
        )
        assert claimed.status_code == 200
        clock.move_to(quiet_end + timedelta(seconds=5))
        assert mail.release_held() == [admin_row.id]
        settings = mail.EmailSettings.from_config(current_app.config)
        assert mail.attempt_delivery(admin_row.id, settings).status == "failed"
    db.session.expire_all()
    row = db.session.get(Delivery, admin_row.id)
    assert (row.status, row.last_error) == ("failed", "Not sent: claimed")
    timeline = client.get(
        f"/api/v1/escalations/{handoff['id']}/timeline", headers=tenant.auth("admin")
    ).get_json()["items"]
    notified = [i for i in timeline if i["kind"] == "notified" and i["details"]["recipient"]]
    mine = next(i for i in notified if i["details"]["recipient"]["id"] == tenant.users["admin"])
    assert mine["details"]["reason"] == "business_hours"
    assert mine["details"]["status"] == "failed"


def step_emails(handoff_id: int, event: str) -> list[tuple[int, str, str | None]]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(Delivery)
        .where(Delivery.handoff_id == handoff_id, Delivery.channel == "email")
        .where(Delivery.event == event)
        .order_by(Delivery.recipient_id)
    )
    return [(row.recipient_id, row.status, row.reason) for row in rows]


def event_of(handoff_id: int, name: str) -> OutboxEvent:
    db.session.expire_all()
    return db.session.scalar(
        select(OutboxEvent)
        .where(OutboxEvent.handoff_id == handoff_id, OutboxEvent.event == name)
        .order_by(OutboxEvent.id.desc())
    )


@seasons
@pytest.mark.usefixtures("web_node", "presence")
def test_a_reminder_follows_each_seniors_preferences_now(client, chicago, season):
    """Before, a reminder went to every offline senior at any hour, `never` included."""
    late, quiet_end = SEASONS[season]
    tenant = chicago
    with time_machine.travel(late, tick=False) as clock:
        hid = new_handoff(client, tenant)["id"]
        clock.move_to(late + timedelta(minutes=5))
        assert handoff_steps.run_due_steps().reminders == 1
        fanout.dispatch(event_of(hid, "handoff.reminder").id)
    assert step_emails(hid, "handoff.reminder") == [
        (tenant.users["admin"], "held", "business_hours"),  # quiet hours
        (tenant.users["eng"], "pending", "business_hours"),
    ]  # eng2: never


@seasons
@pytest.mark.usefixtures("web_node")
def test_a_reassignment_email_follows_its_targets_preferences(
    client,
    chicago,
    presence,  # noqa: F811
    season,
):
    late, quiet_end = SEASONS[season]
    tenant = chicago
    with time_machine.travel(late, tick=False):
        hid = new_handoff(client, tenant)["id"]
        client.post(f"/api/v1/escalations/{hid}/claim", headers=tenant.auth("eng"))
        to = {"user_id": tenant.users["eng2"]}  # never
        moved = client.post(
            f"/api/v1/escalations/{hid}/reassign", json=to, headers=tenant.auth("eng")
        )
        assert moved.status_code == 200, moved.get_json()
        fanout.dispatch(event_of(hid, "handoff.reassigned").id)
        assert step_emails(hid, "handoff.reassigned") == []

        to = {"user_id": tenant.users["admin"]}  # offline, in quiet hours: held
        client.post(f"/api/v1/escalations/{hid}/reassign", json=to, headers=tenant.auth("eng2"))
        fanout.dispatch(event_of(hid, "handoff.reassigned").id)
        assert step_emails(hid, "handoff.reassigned") == [
            (tenant.users["admin"], "held", "reassigned")
        ]
        presence.connected(tenant.users["eng"], "tab-1")  # online: nothing to email
        to = {"user_id": tenant.users["eng"]}
        client.post(f"/api/v1/escalations/{hid}/reassign", json=to, headers=tenant.auth("admin"))
        fanout.dispatch(event_of(hid, "handoff.reassigned").id)
        assert len(step_emails(hid, "handoff.reassigned")) == 1

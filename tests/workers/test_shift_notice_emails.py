"""Shift notices: one email per final segment whatever beat does, none once the segment is
over, and the text in the senior's own zone. The segments are written by hand here (the
schedule computes them in the product); Chicago is UTC-6 in December, UTC-5 in July."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from flask import current_app
from sqlalchemy import select

from models import db, shift_notices
from models.entities import Delivery
from models.oncall_view import Segment
from tests.factories import both_databases
from workers import mail
from workers import shift_notices as shift_task

# A weekly shift handing off Monday 09:00 Chicago: (start, end) in UTC.
SEASONS = {
    "summer": (datetime(2026, 7, 6, 14, 0, tzinfo=UTC), datetime(2026, 7, 13, 14, 0, tzinfo=UTC)),
    "winter": (datetime(2026, 12, 7, 15, 0, tzinfo=UTC), datetime(2026, 12, 14, 15, 0, tzinfo=UTC)),
}
seasons = pytest.mark.parametrize("season", ["summer", "winter"])


def segment(tenant, season: str, who: str = "eng") -> Segment:
    start, end = SEASONS[season]
    return Segment(tenant.account_id, 7, "Servers", tenant.users[who], start, end)


def notices() -> list[Delivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(Delivery).where(Delivery.event == "shift.start")))


@both_databases
@seasons
def test_one_notice_per_segment_in_the_seniors_zone(client, tenant, monkeypatch, season):
    client.patch("/api/v1/me", json={"timezone": "America/Chicago", "notify_email": "never"},
                 headers=tenant.auth("eng"))  # fmt: skip
    start, _ = SEASONS[season]
    monkeypatch.setattr(
        shift_notices, "segments_in_progress", lambda at, after: [segment(tenant, season)]
    )
    with time_machine.travel(start, tick=False):
        first = shift_notices.run_tick()
        assert shift_notices.run_tick() == [] and shift_notices.run_tick() == []  # once
        [row] = notices()
        assert first == [row.id]
        assert (row.recipient_id, row.reason, row.status) == (
            tenant.users["eng"], "shift_start", "pending"
        )  # fmt: skip
        assert row.dedupe_key == f"shift:7:{start:%Y%m%dT%H%M%SZ}:{tenant.users['eng']}"
        settings = mail.EmailSettings.from_config(current_app.config)
        message, address = mail.build_message(row, settings)
    assert address == "eng@alpha-msp.example"  # `never` does not hold a shift notice
    assert message["Subject"] == "You're on call for Servers until Mon 09:00"
    body = message.get_body(("plain",)).get_content()
    offset = "CDT" if season == "summer" else "CST"
    assert f"09:00 {offset} (America/Chicago)" in body


@seasons
def test_no_notice_goes_out_for_a_segment_already_over(client, tenant, season):
    _, end = SEASONS[season]
    with time_machine.travel(end, tick=False):
        [row_id] = shift_notices.create_notices([segment(tenant, season)])
        settings = mail.EmailSettings.from_config(current_app.config)
        assert mail.attempt_delivery(row_id, settings).status == "failed"
    [row] = notices()
    assert row.last_error == "Not sent: the shift ended before this notice went out."


def test_the_beat_task_hands_the_new_notices_to_the_mailer(app, tenant, monkeypatch):
    start, _ = SEASONS["winter"]
    sent = []
    celery = app.extensions["celery"]
    monkeypatch.setattr(celery, "send_task", lambda name, args=None, **kw: sent.append(args))
    monkeypatch.setattr(
        shift_notices, "segments_in_progress", lambda at, after: [segment(tenant, "winter")]
    )
    with time_machine.travel(start, tick=False):
        assert shift_task.send_shift_notices() == 1
        assert shift_task.send_shift_notices() == 0
    assert sent == [[[row.id for row in notices()]]]

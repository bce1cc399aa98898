"""Shift notices: at the start of each final segment of a shift (a rotation's shift, or the
part of it an override leaves or takes), its senior gets one email saying so.

A beat tick asks the schedule once for every segment in progress that started within
`LOOKBACK` (so a tick missed while beat was down is made up, and a segment already over
gets none), and inserts one email delivery per segment with a unique key
(`shift:<rotation>:<start>:<user>`) in one statement: however often beat runs, or two
beats run, a segment is announced once. The rule's entry for `shift.start`
(models/notification_rule.py) says it goes to its senior always, whatever their
preferences.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.db import db, insert_on_conflict, transaction, utcnow
from models.deliveries import EMAIL
from models.entities import Delivery
from models.events import SHIFT_START
from models.notification_rule import SHIFT_STARTS, delivery_key
from models.oncall_view import Segment, segments_in_progress

# How late a notice may still go out for a segment in progress (beat was down, say).
LOOKBACK = timedelta(hours=12)
# Rows per INSERT.
BATCH = 500


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def segment_label(segment: Segment) -> str:
    return f"{segment.rotation_id}:{segment.start.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _row(segment: Segment, now: datetime) -> dict:
    return {
        "dedupe_key": delivery_key(SHIFT_START, segment.user_id, label=segment_label(segment)),
        "account_id": segment.account_id,
        "handoff_id": None,
        "outbox_event_id": None,
        "channel": EMAIL,
        "event": SHIFT_START,
        "recipient_id": segment.user_id,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "reason": SHIFT_STARTS,
        "details": {
            "rotation_id": segment.rotation_id,
            "rotation": segment.rotation_name,
            "start": _stamp(segment.start),
            "end": _stamp(segment.end),
        },
    }


def create_notices(segments: list[Segment]) -> list[int]:
    """One email delivery per segment not announced yet; the ids of the new ones."""
    now = utcnow()
    created: list[int] = []
    for start in range(0, len(segments), BATCH):
        rows = [_row(segment, now) for segment in segments[start : start + BATCH]]
        with transaction():
            created += db.session.scalars(
                insert_on_conflict(Delivery)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(Delivery.id)
            )
    return sorted(created)


def run_tick(at: datetime | None = None) -> list[int]:
    """One beat tick: the notices of the segments that started lately and are still on."""
    at = at or utcnow().replace(tzinfo=UTC)
    return create_notices(segments_in_progress(at, at - LOOKBACK))


def ended_before_sent(details: dict | None, now: datetime) -> bool:
    """Whether the segment a notice announces is over (a notice that waited too long)."""
    if not details or not details.get("end"):
        return False
    end = datetime.fromisoformat(details["end"].replace("Z", "+00:00"))
    return end <= now.replace(tzinfo=UTC) if now.tzinfo is None else end <= now

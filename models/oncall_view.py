"""What the notification rule asks of the on-call schedule, in one place: the schedule at
one instant (inside business hours? who is on call?) and the final segments in progress.
The schedule itself (business hours, rotations, overrides) is computed by models.oncall;
this module only reads it, once per dispatch or beat tick, never per recipient (and one
account's from the copy models/schedule_cache.py keeps, while it still holds)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from models import oncall, schedule_cache
from models.notification_rule import Moment


@dataclass(frozen=True)
class Segment:
    """One final segment of a shift: who is on call for a rotation, from when to when."""

    account_id: int
    rotation_id: int
    rotation_name: str
    user_id: int
    start: datetime  # aware UTC
    end: datetime


def _moment(schedule: oncall.Schedule | None, at: datetime) -> Moment:
    if schedule is None:
        return Moment(at)
    return Moment(at, schedule.inside_business_hours(at), schedule.on_call_users(at))


def moment_for(account_id: int, at: datetime) -> Moment:
    """The account's schedule at `at` (aware): inside business hours or not, and who is on
    call. An account without business hours is always inside them (today's behaviour).
    From the copy models.schedule_cache keeps while the account's schedule version holds."""
    entry = schedule_cache.loaded(account_id, at)
    return entry.moment(at) if entry is not None else Moment(at)


def moments_for(account_ids: Iterable[int], at: datetime) -> dict[int, Moment]:
    """`moment_for` for many accounts at once (one set of queries): a beat tick's form."""
    ids = list(account_ids)
    schedules = oncall.covering_schedules(ids, at)
    return {account_id: _moment(schedules.get(account_id), at) for account_id in ids}


def segments_in_progress(at: datetime, started_after: datetime) -> list[Segment]:
    """Every account's final segments that started in (`started_after`, `at`] and have not
    ended at `at`."""
    found = []
    for schedule in oncall.schedules_at(None, at).values():
        for segment in schedule.on_call(at):
            if started_after < segment.start <= at and segment.user_id is not None:
                found.append(
                    Segment(
                        schedule.account_id,
                        segment.rotation_id,
                        segment.rotation_name,
                        segment.user_id,
                        segment.start,
                        segment.end,
                    )
                )
    return found

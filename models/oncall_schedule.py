"""The on-call schedule's arithmetic, pure: business hours at an instant, a rotation's shifts
and the final schedule (overrides cut into shifts, gaps where nobody is on call).

Nothing here reads the database; models/oncall.py loads the rows once and calls these.
Instants are aware datetimes in UTC.

Shift k of a rotation starts at `start_date + k × shift_length_days` at `handoff_time`,
local to the rotation's zone, and ends where shift k+1 starts; it belongs to
`participants[k mod n]`. A local time inside the spring-forward gap is read with the offset
before the change (PEP 495 fold=0), which lands as many minutes later as the gap is long
(02:30 → 03:30); a time that occurs twice is its first occurrence (fold=0 again).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

ROTATION, OVERRIDE, GAP = "rotation", "override", "gap"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class RotationRule:
    id: int
    name: str
    participants: tuple[int, ...]
    shift_length_days: int
    handoff_time: str  # "HH:MM"
    start_date: date
    timezone: str


@dataclass(frozen=True)
class OverrideRule:
    id: int  # later-created overrides have higher ids and win where they overlap
    rotation_id: int
    user_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class FinalSegment:
    """One piece of the final schedule of a rotation. `user_id` is None for a gap. `ref` names
    what it comes from (shift k, override id, or the time before the rotation starts), so a
    segment keeps its identity (the calendar's UID) while its neighbours change."""

    rotation_id: int
    rotation_name: str
    user_id: int | None
    source: str
    start: datetime
    end: datetime
    ref: str

    @property
    def uid(self) -> str:
        stamp = self.start.strftime("%Y%m%dT%H%M%SZ")
        return f"oncall-{self.rotation_id}-{self.ref}-{stamp}"


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `zone` (gap: later; fold: first)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


@lru_cache(maxsize=65536)
def shift_start(rotation: RotationRule, k: int) -> datetime:
    """When shift k of the rotation starts (remembered: a definition's shifts never move)."""
    zone = ZoneInfo(rotation.timezone)
    day = rotation.start_date + timedelta(days=k * rotation.shift_length_days)
    return local_instant(day, parse_hhmm(rotation.handoff_time), zone)


def shift_index(rotation: RotationRule, at: datetime) -> int:
    """The shift k in progress at `at` (-1 before the first shift)."""
    first = shift_start(rotation, 0)
    if at < first:
        return -1
    length = timedelta(days=rotation.shift_length_days)
    k = int((at - first) / length)
    while k > 0 and shift_start(rotation, k) > at:
        k -= 1
    while shift_start(rotation, k + 1) <= at:
        k += 1
    return k


def shifts(
    rotation: RotationRule, start: datetime, end: datetime
) -> Iterator[tuple[int, datetime, datetime]]:
    """(k, shift start, shift end) of every shift overlapping [start, end), unclipped."""
    k = max(shift_index(rotation, start), 0)
    begin = shift_start(rotation, k)
    while begin < end:
        finish = shift_start(rotation, k + 1)
        if finish > start:
            yield k, begin, finish
        k, begin = k + 1, finish


def _base_owner(
    rotation: RotationRule, pieces: list[tuple[int, datetime, datetime]], at: datetime
) -> tuple[str, int | None, str]:
    for k, begin, finish in pieces:
        if begin <= at < finish:
            user = (
                rotation.participants[k % len(rotation.participants)]
                if rotation.participants
                else None
            )
            return ROTATION, user, f"s{k}"
    return GAP, None, "before"


def final_segments(
    rotation: RotationRule,
    overrides: Iterable[OverrideRule],
    active: set[int],
    start: datetime,
    end: datetime,
) -> list[FinalSegment]:
    """The rotation's final schedule over [start, end): its shifts, overrides cut into them
    (the later override wins), and gaps where the one on call is no longer an active senior
    or nobody is (before the first shift). Clipped to the range, ordered by start."""
    mine = sorted(
        (o for o in overrides if o.rotation_id == rotation.id and o.end > start and o.start < end),
        key=lambda o: o.id,
    )
    pieces = list(shifts(rotation, start, end))
    cuts = {start, end}
    cuts.update(t for _, b, f in pieces for t in (b, f) if start < t < end)
    cuts.update(t for o in mine for t in (o.start, o.end) if start < t < end)
    edges = sorted(cuts)
    segments: list[FinalSegment] = []
    for begin, finish in zip(edges, edges[1:], strict=False):
        source, user, ref = _owner_at(rotation, mine, pieces, begin)
        if user is not None and user not in active:
            source, user = GAP, None
        last = segments[-1] if segments else None
        if last and last.ref == ref and last.source == source and last.end == begin:
            segments[-1] = FinalSegment(
                rotation.id, rotation.name, user, source, last.start, finish, ref
            )
        else:
            segments.append(
                FinalSegment(rotation.id, rotation.name, user, source, begin, finish, ref)
            )
    return segments


def _owner_at(
    rotation: RotationRule,
    overrides: Sequence[OverrideRule],
    pieces: list[tuple[int, datetime, datetime]],
    at: datetime,
) -> tuple[str, int | None, str]:
    for override in reversed(overrides):  # the latest created first
        if override.start <= at < override.end:
            return OVERRIDE, override.user_id, f"o{override.id}"
    return _base_owner(rotation, pieces, at)


def segment_at(
    rotation: RotationRule, overrides: Iterable[OverrideRule], active: set[int], at: datetime
) -> FinalSegment | None:
    """The final segment in progress at `at` with its own bounds (not clipped to a window):
    the window spans the shift in progress and every override covering `at`."""
    overrides = list(overrides)
    k = shift_index(rotation, at)
    low, high = (
        (shift_start(rotation, k), shift_start(rotation, k + 1))
        if k >= 0
        else (at, shift_start(rotation, 0))
    )
    for override in overrides:
        if override.rotation_id == rotation.id and override.start <= at < override.end:
            low, high = min(low, override.start), max(high, override.end)
    for segment in final_segments(rotation, overrides, active, low, high):
        if segment.start <= at < segment.end:
            return segment
    return None


def who_at(
    rotation: RotationRule, overrides: Iterable[OverrideRule], active: set[int], at: datetime
) -> tuple[str, int | None]:
    """(source, user) on call for the rotation at `at`: the latest-created override covering
    it, else the shift's participant; a gap (GAP, None) when that senior is no longer active
    or before the first shift. Needs only the overrides covering `at`."""
    best: OverrideRule | None = None
    for override in overrides:
        if override.rotation_id == rotation.id and override.start <= at < override.end:
            if best is None or override.id > best.id:
                best = override
    if best is not None:
        source, user = OVERRIDE, best.user_id
    else:
        k = shift_index(rotation, at)
        if k < 0 or not rotation.participants:
            return GAP, None
        source, user = ROTATION, rotation.participants[k % len(rotation.participants)]
    return (source, user) if user in active else (GAP, None)


def span_at(
    rotation: RotationRule, covering: Iterable[OverrideRule], at: datetime
) -> tuple[datetime, datetime]:
    """The span whose overrides can shape the segment in progress at `at`: the shift in
    progress (or the time before the first) and every override covering `at`."""
    k = shift_index(rotation, at)
    low, high = (
        (shift_start(rotation, k), shift_start(rotation, k + 1))
        if k >= 0
        else (
            at,
            shift_start(rotation, 0),
        )
    )
    for override in covering:
        if override.rotation_id == rotation.id and override.start <= at < override.end:
            low, high = min(low, override.start), max(high, override.end)
    return low, high


# Business hours ----------------------------------------------------------------------------


def inside_business_hours(hours: dict | None, timezone: str, at: datetime) -> bool:
    """Whether `at` is inside the account's business hours: null is always inside; a
    holiday (a local date) and a time outside every window of its weekday are outside."""
    if hours is None:
        return True
    local = at.astimezone(ZoneInfo(timezone))
    if local.date().isoformat() in set(hours.get("holidays") or ()):
        return False
    day, clock = DAYS[local.weekday()], local.strftime("%H:%M")
    return any(
        window["day"] == day and window["start"] <= clock < window["end"]
        for window in hours.get("windows") or ()
    )

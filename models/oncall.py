"""On call: business hours, rotations, overrides, the final schedule and calendar feeds.

The schedule of one account (or of many, for a beat tick) is loaded with one set of queries
(`load_schedules`: rotations, the overrides near the range, the active seniors) and then
computed in memory by models/oncall_schedule.py, never per recipient. Every "now" is
`models.clock.now()`, so the test clock holds here too.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select

from models import clock, tenancy
from models.db import db, transaction
from models.entities import SENIOR_ROLES, Account, CalendarFeed, OnCallOverride, Rotation, User
from models.errors import Forbidden, NotFound, ValidationFailed
from models.oncall_schedule import (
    DAYS,
    GAP,
    FinalSegment,
    OverrideRule,
    RotationRule,
    final_segments,
    inside_business_hours,
    segment_at,
    span_at,
    who_at,
)
from models.timezones import validate_timezone

MAX_OVERRIDE = timedelta(days=31)
MAX_RANGE = timedelta(days=93)
INSTANT = timedelta(microseconds=1)
# Overrides last at most 31 days and shifts at most 28 (plus a daylight-saving hour): every
# override that can shape the segment in progress at an instant lies within this of it.
NEAR = timedelta(days=32)
FEED_BACK, FEED_AHEAD = timedelta(days=15), timedelta(days=180)
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed("Some fields are invalid.", {field_name: [message]})


# Business hours ----------------------------------------------------------------------------


def _window(window: object, index: int) -> dict[str, str]:
    where = f"windows[{index}]"
    if not isinstance(window, dict) or set(window) - {"day", "start", "end"}:
        raise _invalid("business_hours", f"{where} must be an object with day, start and end.")
    day, start, end = window.get("day"), window.get("start"), window.get("end")
    if day not in DAYS:
        raise _invalid("business_hours", f"{where}.day must be one of {', '.join(DAYS)}.")
    if not isinstance(start, str) or not _HHMM.match(start):
        raise _invalid("business_hours", f"{where}.start must be HH:MM (00:00 to 23:59).")
    if not isinstance(end, str) or not (_HHMM.match(end) or end == "24:00"):
        raise _invalid("business_hours", f"{where}.end must be HH:MM (up to 24:00).")
    if end <= start:
        raise _invalid("business_hours", f"{where}.end must be after its start.")
    return {"day": day, "start": start, "end": end}


def _holiday(value: object, index: int) -> str:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise _invalid("business_hours", f"holidays[{index}] must be a date YYYY-MM-DD.") from None


def validate_business_hours(value: object) -> dict | None:
    """The stored form of `business_hours` (PATCH /account), or ValidationFailed."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"windows", "holidays"}:
        raise _invalid("business_hours", "Must be null or an object with windows and holidays.")
    windows, holidays = value.get("windows", []), value.get("holidays", [])
    if not isinstance(windows, list) or not isinstance(holidays, list):
        raise _invalid("business_hours", "windows and holidays must be lists.")
    if len(windows) > 100 or len(holidays) > 400:
        raise _invalid("business_hours", "At most 100 windows and 400 holidays.")
    return {
        "windows": [_window(window, i) for i, window in enumerate(windows)],
        "holidays": sorted({_holiday(day, i) for i, day in enumerate(holidays)}),
    }


# Loading the schedule ----------------------------------------------------------------------


@dataclass
class Schedule:
    """One account's schedule rows, loaded once: enough to answer any instant or range
    within the window it was loaded for."""

    account_id: int
    timezone: str
    business_hours: dict | None
    rotations: list[RotationRule] = field(default_factory=list)
    overrides: list[OverrideRule] = field(default_factory=list)
    active: set[int] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)
    _by_rotation: dict[int, list[OverrideRule]] | None = field(default=None, repr=False)
    # Each rotation's last segment found by `on_call`: still the answer while it lasts.
    _current: dict[int, FinalSegment] = field(default_factory=dict, repr=False)

    def inside_business_hours(self, at: datetime) -> bool:
        return inside_business_hours(self.business_hours, self.timezone, at)

    def overrides_of(self, rotation_id: int) -> list[OverrideRule]:
        """The rotation's overrides (grouped once, on first use)."""
        if self._by_rotation is None:
            self._by_rotation = {}
            for override in self.overrides:
                self._by_rotation.setdefault(override.rotation_id, []).append(override)
        return self._by_rotation.get(rotation_id, [])

    def on_call_users(self, at: datetime) -> frozenset[int]:
        """Who is on call at `at`, over every rotation (needs only the covering overrides)."""
        found = (who_at(r, self.overrides_of(r.id), self.active, at) for r in self.rotations)
        return frozenset(user for _, user in found if user is not None)

    def on_call(self, at: datetime) -> list[FinalSegment]:
        """One segment per rotation that has someone on call at `at` (gaps left out). A
        segment has its own bounds and one owner throughout, so the one found for an earlier
        instant answers every later one inside it without computing it again."""
        found = []
        for rotation in self.rotations:
            segment = self._current.get(rotation.id)
            if segment is None or not segment.start <= at < segment.end:
                overrides = self.overrides_of(rotation.id)
                segment = segment_at(rotation, overrides, self.active, at)
                if segment is None:
                    continue
                self._current[rotation.id] = segment
            if segment.source != GAP:
                found.append(segment)
        return found

    def segments(self, start: datetime, end: datetime) -> list[FinalSegment]:
        """The final schedule of every rotation over [start, end), ordered by start."""
        items = [
            segment
            for rotation in self.rotations
            for segment in final_segments(
                rotation, self.overrides_of(rotation.id), self.active, start, end
            )
        ]
        return sorted(items, key=lambda s: (s.start, s.rotation_id))


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def rotation_rule(row: Rotation) -> RotationRule:
    return RotationRule(
        row.id,
        row.name,
        tuple(row.participants or ()),
        row.shift_length_days,
        row.handoff_time,
        row.start_date,
        row.timezone,
    )


def _load_overrides(schedules: dict[int, Schedule], low: datetime, high: datetime) -> None:
    ids = list(schedules)
    overrides = (
        select(
            OnCallOverride.id,
            OnCallOverride.account_id,
            OnCallOverride.rotation_id,
            OnCallOverride.user_id,
            OnCallOverride.start_at,
            OnCallOverride.end_at,
        )
        .where(
            OnCallOverride.account_id.in_(ids),
            OnCallOverride.end_at > _naive(low),
            OnCallOverride.start_at < _naive(high),
        )
        .order_by(OnCallOverride.id)
    )
    for row in db.session.execute(overrides):
        schedules[row.account_id].overrides.append(
            OverrideRule(
                row.id,
                row.rotation_id,
                row.user_id,
                row.start_at.replace(tzinfo=UTC),  # stored as naive UTC
                row.end_at.replace(tzinfo=UTC),
            )
        )


def load_schedules(
    account_ids: Iterable[int] | None, low: datetime, high: datetime
) -> dict[int, Schedule]:
    """The schedules of these accounts (None: every account with a rotation or business
    hours) with the overrides overlapping [low, high): four queries whatever the count."""
    accounts = select(Account.id, Account.timezone, Account.business_hours)
    if account_ids is not None:
        accounts = accounts.where(Account.id.in_(list(account_ids)))
    else:
        accounts = accounts.where(
            Account.id.in_(select(Rotation.account_id)) | Account.business_hours.is_not(None)
        )
    schedules = {
        row.id: Schedule(row.id, row.timezone, row.business_hours)
        for row in db.session.execute(accounts)
    }
    ids = list(schedules)
    columns = (Rotation.id, Rotation.name, Rotation.participants, Rotation.shift_length_days)
    columns += (Rotation.handoff_time, Rotation.start_date, Rotation.timezone)
    rotations = select(Rotation.account_id, *columns).where(Rotation.account_id.in_(ids))
    for account_id, *fields in db.session.execute(rotations.order_by(Rotation.id)):
        fields[2] = tuple(fields[2] or ())
        schedules[account_id].rotations.append(RotationRule(*fields))
    _load_overrides(schedules, low, high)
    seniors = select(User.id, User.account_id, User.name, User.active, User.role).where(
        User.account_id.in_(ids)
    )
    for row in db.session.execute(seniors):
        schedules[row.account_id].names[row.id] = row.name
        if row.active and row.role in SENIOR_ROLES:
            schedules[row.account_id].active.add(row.id)
    return schedules


def schedule_for(account_id: int, low: datetime, high: datetime) -> Schedule:
    return load_schedules([account_id], low, high)[account_id]


def covering_schedules(account_ids: Iterable[int] | None, at: datetime) -> dict[int, Schedule]:
    """The accounts' schedules with only the overrides covering `at`: enough for who is on
    call (`Schedule.on_call_users`), not for the segments' bounds. Four queries."""
    return load_schedules(account_ids, at, at + INSTANT)


def schedule_at(account_id: int, at: datetime) -> Schedule:
    """An account's schedule loaded to answer the instant `at` (aware), bounds included."""
    return schedules_at([account_id], at)[account_id]


def schedules_at(account_ids: Iterable[int] | None, at: datetime) -> dict[int, Schedule]:
    """Many accounts' schedules (None: all that have one) for the instant `at`, loaded
    together (the beat tick's form): first with the overrides covering `at`, then with
    every override overlapping the spans those and the shifts in progress reach (one more
    query), so each segment in progress has its own bounds."""
    schedules = covering_schedules(account_ids, at)
    spans = [
        span_at(rotation, schedule.overrides_of(rotation.id), at)
        for schedule in schedules.values()
        for rotation in schedule.rotations
    ]
    if spans:
        for schedule in schedules.values():
            schedule.overrides, schedule._by_rotation, schedule._current = [], None, {}
        low, high = min(s[0] for s in spans), max(s[1] for s in spans)
        _load_overrides(schedules, low, high + INSTANT)
    return schedules


def on_call_now(account_id: int, at: datetime | None = None) -> tuple[bool, list[FinalSegment]]:
    """(inside business hours?, who is on call) for the account at `at` (default now)."""
    at = _aware(at) if at is not None else clock.now()
    schedule = schedule_at(account_id, at)
    return schedule.inside_business_hours(at), schedule.on_call(at)


def check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise _invalid("to", "Must be after from.")
    if end - start > MAX_RANGE:
        raise _invalid("to", "At most 93 days after from.")


def final_schedule(
    account_id: int,
    start: datetime,
    end: datetime,
    rotation_id: int | None = None,
    user_id: int | None = None,
) -> list[FinalSegment]:
    """The final schedule over [start, end) (at most 93 days), optionally one rotation's
    or one senior's, clipped to the range and ordered by start."""
    check_range(start, end)
    segments = schedule_for(account_id, start, end).segments(start, end)
    if rotation_id is not None:
        segments = [s for s in segments if s.rotation_id == rotation_id]
    if user_id is not None:
        segments = [s for s in segments if s.user_id == user_id]
    return segments


# Rotations ---------------------------------------------------------------------------------


def _participants(account: Account, value: object) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise _invalid("participants", "Must be a non-empty list of user ids.")
    if len(set(value)) != len(value):
        raise _invalid("participants", "Each participant may appear once.")
    found = set(
        db.session.scalars(
            select(User.id).where(
                User.id.in_(value),
                User.account_id == account.id,
                User.active.is_(True),
                User.role.in_(SENIOR_ROLES),
            )
        )
    )
    missing = [v for v in value if v not in found]
    if missing:
        raise _invalid("participants", f"Not active engineers or admins of the account: {missing}.")
    return list(value)


def _rotation_fields(account: Account, fields: dict, partial: bool) -> dict:
    out: dict = {}
    if "name" in fields or not partial:
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise _invalid("name", "Required, at most 200 characters.")
        out["name"] = name.strip()
    if "participants" in fields or not partial:
        out["participants"] = _participants(account, fields.get("participants"))
    if "shift_length_days" in fields or not partial:
        days = fields.get("shift_length_days")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 28:
            raise _invalid("shift_length_days", "A whole number of days from 1 to 28.")
        out["shift_length_days"] = days
    if "handoff_time" in fields or not partial:
        handoff = fields.get("handoff_time")
        if not isinstance(handoff, str) or not _HHMM.match(handoff):
            raise _invalid("handoff_time", "Must be HH:MM (00:00 to 23:59).")
        out["handoff_time"] = handoff
    if "start_date" in fields or not partial:
        out["start_date"] = _start_date(fields.get("start_date"))
    if fields.get("timezone") is not None:
        out["timezone"] = validate_timezone(fields["timezone"])
    elif not partial:
        out["timezone"] = account.timezone
    return out


def _start_date(value: object) -> date:
    if isinstance(value, date):
        return value
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise _invalid("start_date", "Must be a date YYYY-MM-DD.") from None


def list_rotations(account: Account) -> list[Rotation]:
    return list(
        db.session.scalars(
            select(Rotation).where(Rotation.account_id == account.id).order_by(Rotation.id)
        )
    )


def get_rotation(account: Account, rotation_id: int) -> Rotation:
    rotation = db.session.scalar(
        select(Rotation).where(Rotation.id == rotation_id, Rotation.account_id == account.id)
    )
    if rotation is None:
        raise NotFound("No such rotation.")
    return rotation


def create_rotation(account: Account, fields: dict) -> Rotation:
    values = _rotation_fields(account, fields, partial=False)
    with transaction(expire_on_commit=False):
        rotation = Rotation(account_id=account.id, **values)
        db.session.add(rotation)
    return rotation


def update_rotation(account: Account, rotation_id: int, fields: dict) -> Rotation:
    rotation = get_rotation(account, rotation_id)
    values = _rotation_fields(account, fields, partial=True)
    with transaction(expire_on_commit=False):
        for name, value in values.items():
            setattr(rotation, name, value)
    return rotation


def delete_rotation(account: Account, rotation_id: int) -> None:
    rotation = get_rotation(account, rotation_id)
    with transaction():
        db.session.execute(delete(OnCallOverride).where(OnCallOverride.rotation_id == rotation.id))
        db.session.delete(rotation)


def user_names(account_id: int) -> dict[int, str]:
    rows = db.session.execute(select(User.id, User.name).where(User.account_id == account_id))
    return {row.id: row.name for row in rows}


def participant_names(account: Account, rotations: Iterable[Rotation]) -> dict[int, str]:
    ids = {user for rotation in rotations for user in rotation.participants or ()}
    if not ids:
        return {}
    rows = db.session.execute(
        select(User.id, User.name).where(User.id.in_(ids), User.account_id == account.id)
    )
    return {row.id: row.name for row in rows}


# Overrides ---------------------------------------------------------------------------------


def create_override(actor: User, fields: dict) -> OnCallOverride:
    """An admin for any active senior of the account; an engineer for themselves."""
    account = actor.account
    rotation = get_rotation(account, fields["rotation_id"])
    user_id, start, end = fields["user_id"], _aware(fields["start"]), _aware(fields["end"])
    if actor.role != "admin" and user_id != actor.id:
        raise Forbidden("An engineer may only take an override for themselves.")
    user = db.session.get(User, user_id)
    if user is None or user.account_id != account.id or not user.active or not user.is_senior:
        raise _invalid("user_id", "Must be an active engineer or admin of the account.")
    if end <= start:
        raise _invalid("end", "Must be after start.")
    if end - start > MAX_OVERRIDE:
        raise _invalid("end", "An override lasts at most 31 days.")
    reason = fields.get("reason")
    if reason is not None and len(reason) > 500:
        raise _invalid("reason", "At most 500 characters.")
    with transaction(expire_on_commit=False):
        override = OnCallOverride(
            account_id=account.id,
            rotation_id=rotation.id,
            user_id=user.id,
            start_at=_naive(start),
            end_at=_naive(end),
            reason=reason,
            created_by_id=actor.id,
        )
        db.session.add(override)
    return override


def list_overrides(
    account: Account, start: datetime | None, end: datetime | None
) -> list[OnCallOverride]:
    query = select(OnCallOverride).where(OnCallOverride.account_id == account.id)
    if start is not None:
        query = query.where(OnCallOverride.end_at > _naive(start))
    if end is not None:
        query = query.where(OnCallOverride.start_at < _naive(end))
    return list(db.session.scalars(query.order_by(OnCallOverride.start_at, OnCallOverride.id)))


def delete_override(actor: User, override_id: int) -> None:
    override = db.session.scalar(
        select(OnCallOverride).where(
            OnCallOverride.id == override_id, OnCallOverride.account_id == actor.account_id
        )
    )
    if override is None:
        raise NotFound("No such override.")
    if actor.role != "admin" and override.user_id != actor.id:
        raise Forbidden("Only an admin or the override's senior may delete it.")
    with transaction():
        db.session.delete(override)


# Calendar feeds ----------------------------------------------------------------------------


def _feed_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_feed(user: User) -> str:
    """A new secret for the senior's calendar feed (the old one stops answering)."""
    secret = secrets.token_urlsafe(32)
    with transaction():
        db.session.execute(delete(CalendarFeed).where(CalendarFeed.user_id == user.id))
        db.session.add(
            CalendarFeed(
                account_id=user.account_id, user_id=user.id, secret_hash=_feed_hash(secret)
            )
        )
    return secret


def revoke_feed(user: User) -> None:
    with transaction():
        db.session.execute(delete(CalendarFeed).where(CalendarFeed.user_id == user.id))


def feed_owner(secret: str) -> User | None:
    """The active senior whose feed this secret is, or None."""
    if not secret or len(secret) > 100:
        return None
    # Before the tenant is known: the secret finds the user (and the account).
    with tenancy.system("calendar_feed"):
        user = db.session.scalar(
            select(User)
            .join(CalendarFeed, CalendarFeed.user_id == User.id)
            .where(CalendarFeed.secret_hash == _feed_hash(secret), User.active.is_(True))
        )
    if user is not None:
        tenancy.set_tenant(user.account_id)
    return user


def feed_segments(user: User) -> list[FinalSegment]:
    """The senior's final segments overlapping 15 days back to 180 ahead, with their own
    bounds (not clipped to that span, so each keeps its UID from one day to the next)."""
    now = clock.now()
    start, end = now - FEED_BACK, now + FEED_AHEAD
    schedule = schedule_for(user.account_id, start - NEAR, end + NEAR)
    return [
        s
        for s in schedule.segments(start - NEAR, end + NEAR)
        if s.user_id == user.id and s.end > start and s.start < end
    ]

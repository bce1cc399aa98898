"""Who gets an email now by their own preferences: presence, `notify_email` and quiet hours.

Pure: no database, no clock of its own. models.preferences loads the inputs; the
notification rule (models/notification_rule.py) calls `plan_emails` wherever an email goes
by the seniors' preferences (inside business hours, a reassignment, a follow-up to those).

- `never`: no email.
- `when_offline` (the default): an email only while no connection of theirs is open.
- `always`: an email even while online.
- Quiet hours (in the user's time zone, else the account's) hold the email: it is planned
  for the moment they end (`held_until`), not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.entities import DEFAULT_NOTIFY_EMAIL


@dataclass(frozen=True)
class EmailPreference:
    user_id: int
    notify_email: str = DEFAULT_NOTIFY_EMAIL
    quiet_start: str | None = None  # "HH:MM"
    quiet_end: str | None = None
    timezone: str = "UTC"
    role: str = "engineer"


@dataclass
class EmailPlan:
    now: list[int] = field(default_factory=list)
    held_until: dict[int, datetime] = field(default_factory=dict)  # user id → UTC moment


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def quiet_hours_end(preference: EmailPreference, at: datetime) -> datetime | None:
    """When the quiet hours that contain `at` (aware) end, as aware UTC; None outside them.
    A window whose end is earlier than its start runs over midnight (22:00–07:00)."""
    if not (preference.quiet_start and preference.quiet_end):
        return None
    start, end = _clock(preference.quiet_start), _clock(preference.quiet_end)
    if start == end:
        return None
    zone = ZoneInfo(preference.timezone)
    local = at.astimezone(zone)
    now = local.time().replace(second=0, microsecond=0, tzinfo=None)
    if start < end:
        inside = start <= now < end
        end_day = local.date()
    else:
        inside = now >= start or now < end
        end_day = local.date() + timedelta(days=1) if now >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def plan_emails(preferences: list[EmailPreference], online: set[int], at: datetime) -> EmailPlan:
    """Split the candidates into those to email now and those held by quiet hours.
    `online`: the candidates with an open connection; `at`: now, timezone-aware."""
    plan = EmailPlan()
    for preference in preferences:
        if preference.notify_email == "never":
            continue
        if preference.notify_email != "always" and preference.user_id in online:
            continue
        held_until = quiet_hours_end(preference, at)
        if held_until is not None:
            plan.held_until[preference.user_id] = held_until
        else:
            plan.now.append(preference.user_id)
    return plan

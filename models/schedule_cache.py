"""Each account's on-call schedule and its seniors' email preferences, loaded once and kept
in this process while they still hold.

Loading an account's schedule takes four queries and the seniors' preferences one more; a
dispatch, a beat tick and `GET /oncall/now` would pay them every time. Instead the loaded
copy is kept under the account's `schedule_version`, which every write the on-call
decision reads changes in its own transaction (models/entities.py `_new_schedule_versions`:
business hours, the time zone, rotations, overrides, the users' roles, activation, names
and preferences), whichever process makes it. A use reads the version first (one primary
key look-up) and takes the copy only if it was loaded under that same version, so a write
committed by the web process is seen by the worker's and beat's next decision: nothing is
invalidated by message, and a process that never hears of a write cannot serve a stale
schedule. The version is read before the rows are loaded, so a write that lands in between
only costs one more load.

The copy answers instants within `SLACK` of the one it was loaded for (its overrides reach
`oncall.NEAR` further, enough for the bounds of every segment in progress), and at most
`MAX_ACCOUNTS` accounts are kept, the least recently used dropped first. Under row-level
security the version of another tenant's account is not visible, so nothing is served
across tenants; the key also names the database, so two databases in one process (tests,
benchmarks) never share a copy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from models import oncall
from models.db import db
from models.email_rules import EmailPreference
from models.entities import SENIOR_ROLES, Account
from models.notification_rule import Moment
from models.preferences import account_email_preferences

MAX_ACCOUNTS = 2048
SLACK = timedelta(days=7)


@dataclass(frozen=True)
class Loaded:
    """One account's schedule and active seniors' preferences, as of `version`, able to
    answer any instant in [low, high)."""

    version: int
    schedule: oncall.Schedule
    seniors: tuple[EmailPreference, ...]
    low: datetime
    high: datetime

    def moment(self, at: datetime) -> Moment:
        """Inside business hours or not at `at`, and who is on call."""
        segments = self.schedule.on_call(at)
        on_call = frozenset(s.user_id for s in segments if s.user_id is not None)
        return Moment(at, self.schedule.inside_business_hours(at), on_call)


_entries: OrderedDict[tuple[str, int], Loaded] = OrderedDict()
_lock = threading.Lock()


def _database() -> str:
    return str(db.session.get_bind().url)


_VERSION = select(Account.__table__.c.schedule_version).where(
    Account.__table__.c.id == bindparam("account_id")
)


def current_version(account_id: int) -> int | None:
    """The account's schedule version as committed (None: no such account visible). On
    the session's connection, past the ORM: this runs once per decision."""
    return db.session.connection().execute(_VERSION, {"account_id": account_id}).scalar()


def loaded(account_id: int, at: datetime) -> Loaded | None:
    """The account's schedule and seniors as they are now, able to answer `at` (aware):
    the kept copy when its version is still the account's, else loaded again and kept.
    None when the account is not visible (another tenant's, or none)."""
    version = current_version(account_id)
    if version is None:
        return None
    key = (_database(), account_id)
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry.version == version and entry.low <= at < entry.high:
            _entries.move_to_end(key)
            return entry
    reach = SLACK + oncall.NEAR
    schedule = oncall.schedule_for(account_id, at - reach, at + reach)
    seniors = tuple(account_email_preferences(account_id, SENIOR_ROLES))
    entry = Loaded(version, schedule, seniors, at - SLACK, at + SLACK)
    with _lock:
        _entries[key] = entry
        _entries.move_to_end(key)
        while len(_entries) > MAX_ACCOUNTS:
            _entries.popitem(last=False)
    return entry


def decision_inputs(account_id: int, at: datetime) -> tuple[list[EmailPreference], Moment]:
    """What the notification rule needs of the account at `at`: its active seniors'
    preferences and the schedule's moment (one query when the kept copy still holds)."""
    entry = loaded(account_id, at)
    if entry is None:
        return [], Moment(at)
    return list(entry.seniors), entry.moment(at)


def schedule_at(account_id: int, at: datetime) -> oncall.Schedule:
    """The account's schedule, able to answer `at` with each segment's own bounds."""
    entry = loaded(account_id, at)
    return entry.schedule if entry is not None else oncall.Schedule(account_id, "UTC", None)


def clear() -> None:
    """Forget every kept copy (tests that count the loading queries)."""
    with _lock:
        _entries.clear()

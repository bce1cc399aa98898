"""A user's own notification settings (PATCH /me) and loading them for the email rule."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models.db import db, transaction
from models.email_rules import EmailPreference
from models.entities import NOTIFY_EMAIL_CHOICES, Account, User
from models.errors import ValidationFailed
from models.timezones import validate_timezone

UNSET: Any = object()


def update_preferences(
    user: User,
    notify_email: str = UNSET,
    quiet_hours: dict[str, str] | None = UNSET,
    timezone: str | None = UNSET,
) -> User:
    """Change what was given; `quiet_hours=None` turns quiet hours off, `timezone=None`
    falls back to the account's."""
    problems: dict[str, list[str]] = {}
    if notify_email is not UNSET and notify_email not in NOTIFY_EMAIL_CHOICES:
        problems["notify_email"] = ["Must be always, when_offline or never."]
    if quiet_hours not in (UNSET, None) and quiet_hours["start"] == quiet_hours["end"]:
        problems["quiet_hours"] = ["Start and end must differ."]
    if timezone not in (UNSET, None):
        try:
            validate_timezone(timezone)
        except ValidationFailed as error:
            problems.update(error.details)
    if problems:
        raise ValidationFailed("Some fields are invalid.", problems)
    with transaction(expire_on_commit=False):
        if notify_email is not UNSET:
            user.notify_email = notify_email
        if quiet_hours is not UNSET:
            user.quiet_hours_start = quiet_hours["start"] if quiet_hours else None
            user.quiet_hours_end = quiet_hours["end"] if quiet_hours else None
        if timezone is not UNSET:
            user.timezone = timezone
    return user


def account_email_preferences(account_id: int, roles: tuple[str, ...]) -> list[EmailPreference]:
    """The email rule's inputs for the account's active users of these roles, by id (one
    query: the dispatch of every new handoff asks)."""
    rows = db.session.execute(
        select(
            User.id,
            User.notify_email,
            User.quiet_hours_start,
            User.quiet_hours_end,
            User.timezone,
            Account.timezone,
            User.role,
        )
        .join(Account, Account.id == User.account_id)
        .where(User.account_id == account_id, User.role.in_(roles), User.active.is_(True))
        .order_by(User.id)
    ).all()
    return [
        EmailPreference(row[0], row[1] or "when_offline", row[2], row[3], row[4] or row[5], row[6])
        for row in rows
    ]

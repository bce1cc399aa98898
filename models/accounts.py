"""Accounts, users, credentials."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from models import handoff_steps, oncall, security_log, tenancy, tokens
from models.db import db, transaction
from models.entities import DEFAULT_BASELINE_MINUTES, ROLES, Account, User
from models.errors import Conflict, ValidationFailed
from models.security_log import NO_CLIENT, Client
from models.timezones import validate_timezone


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _email_taken() -> Conflict:
    return Conflict(
        "A user with this email already exists.", {"email": ["Already in use."]}, code="email_taken"
    )


def _new_user(account: Account, name: str, email: str, role: str, password: str | None) -> User:
    if role not in ROLES:
        raise ValidationFailed("Unknown role.", {"role": [f"Must be one of: {', '.join(ROLES)}."]})
    email = normalize_email(email)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise _email_taken()
    user = User(
        account=account,
        name=name.strip(),
        email=email,
        role=role,
        password_hash=generate_password_hash(password) if password else None,
    )
    db.session.add(user)
    return user


def create_account(
    name: str,
    owner_name: str,
    owner_email: str,
    owner_password: str | None = None,
    timezone: str = "UTC",
    manual_baseline_minutes: int = DEFAULT_BASELINE_MINUTES,
) -> tuple[Account, User, str]:
    """Bootstrap a tenant with its owner (an admin) and an API token for them."""
    validate_timezone(timezone)
    try:
        # A new tenant: nobody's tenant yet, so the system role writes it. The rows stay
        # loaded: the caller reads them as the new account's work, not the system's.
        with tenancy.system("create_account"), transaction(expire_on_commit=False):
            account = Account(
                name=name.strip(),
                timezone=timezone,
                manual_baseline_minutes=manual_baseline_minutes,
                baseline_is_set=manual_baseline_minutes != DEFAULT_BASELINE_MINUTES,
            )
            db.session.add(account)
            owner = _new_user(account, owner_name, owner_email, "admin", owner_password)
            _, token = tokens.mint(owner)
    except IntegrityError as exc:
        raise _email_taken() from exc
    return account, owner, token


def create_user(
    account: Account,
    name: str,
    email: str,
    role: str,
    password: str | None = None,
    *,
    actor: User | None = None,
    client: Client = NO_CLIENT,
) -> tuple[User, str]:
    try:
        with transaction():
            user = _new_user(account, name, email, role, password)
            _, token = tokens.mint(user, client=client, actor=actor)
            if actor is not None:
                security_log.add(
                    security_log.USER_CREATED,
                    account.id,
                    client,
                    actor=actor,
                    subject=user,
                    role=role,
                )
    except IntegrityError as exc:  # a concurrent insert of the same email
        raise _email_taken() from exc
    return user, token


def user_for_password(email: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None or not user.password_hash:
        # Spend the same time as a real check so a missing email is not observable.
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


_DUMMY_HASH = generate_password_hash("not-a-real-password")


def update_account(
    account: Account,
    manual_baseline_minutes: int | None = None,
    timezone: str | None = None,
    policy: dict | None = None,
    **by_priority: object,
) -> Account:
    """Change the account's settings. `policy` holds the escalation-policy fields given
    (a None value turns that step off) and `policy_by_priority`, when given, replaces the
    per-priority entries (None: back to the defaults); open handoffs are rescheduled to
    the result at once."""
    policy = handoff_steps.validate_policy(policy or {})
    unknown = set(by_priority) - {"policy_by_priority", "business_hours"}
    if unknown:
        raise TypeError(f"Unexpected account settings: {sorted(unknown)}")
    if "policy_by_priority" in by_priority:
        policy["policy_by_priority"] = handoff_steps.validate_policy_by_priority(
            by_priority["policy_by_priority"]
        )
    if timezone is not None:
        validate_timezone(timezone)
    hours = by_priority.get("business_hours")
    hours = oncall.validate_business_hours(hours) if "business_hours" in by_priority else None
    with transaction():
        if "business_hours" in by_priority:
            account.business_hours = hours
        if timezone is not None:
            account.timezone = timezone
        if manual_baseline_minutes is not None:
            account.manual_baseline_minutes = manual_baseline_minutes
            account.baseline_is_set = True
        for name, value in policy.items():
            setattr(account, name, value)
        if policy:
            db.session.flush()
            handoff_steps.reschedule_open_handoffs(account)
    return account

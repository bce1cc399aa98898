"""The security log: who signed in or out, and who changed which credential or role.

Rows are written inside the transaction of the change they record (a revoked token and its
log row commit together); a failed sign-in, which changes nothing, gets its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from models import tenancy
from models.db import db, transaction
from models.entities import SecurityEvent, User

SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_OUT = "sign_out"
TOKEN_CREATED = "token_created"
TOKEN_REVOKED = "token_revoked"
USER_CREATED = "user_created"
ROLE_CHANGED = "role_changed"
USER_DEACTIVATED = "user_deactivated"
USER_REACTIVATED = "user_reactivated"
PSA_CREDENTIALS_CHANGED = "psa_credentials_changed"
SSO_CONNECTION_CHANGED = "sso_connection_changed"
SSO_LINKED = "sso_linked"
SSO_PROVISIONED = "sso_provisioned"
SSO_SIGN_IN_REFUSED = "sso_sign_in_refused"
PASSWORD_SIGN_IN_REFUSED = "password_sign_in_refused"
KINDS = (
    SIGN_IN,
    SIGN_IN_FAILED,
    SIGN_OUT,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    USER_CREATED,
    ROLE_CHANGED,
    USER_DEACTIVATED,
    USER_REACTIVATED,
    PSA_CREDENTIALS_CHANGED,
    SSO_CONNECTION_CHANGED,
    SSO_LINKED,
    SSO_PROVISIONED,
    SSO_SIGN_IN_REFUSED,
    PASSWORD_SIGN_IN_REFUSED,
)
MAX_PAGE = 200


@dataclass(frozen=True)
class Client:
    """Where a request came from, as the web edge saw it."""

    ip: str | None = None
    user_agent: str | None = None


NO_CLIENT = Client()


def add(
    kind: str,
    account_id: int | None,
    client: Client = NO_CLIENT,
    actor: User | None = None,
    subject: User | None = None,
    **details: Any,
) -> SecurityEvent:
    """Add a row to the caller's transaction."""
    if kind not in KINDS:
        raise ValueError(f"Unknown security event kind: {kind!r}")
    event = SecurityEvent(
        account_id=account_id,
        kind=kind,
        actor_id=actor.id if actor is not None else None,
        subject_user_id=subject.id if subject is not None else None,
        ip=(client.ip or None) and client.ip[:64],
        user_agent=(client.user_agent or None) and client.user_agent[:300],
        details=details,
    )
    db.session.add(event)
    return event


def record(kind: str, account_id: int | None, client: Client = NO_CLIENT, **kwargs: Any) -> None:
    """Write one row in a transaction of its own (for events that change nothing else), as
    the account's work; an event of no account (a failed sign-in for an email nobody has)
    is system work."""
    if account_id is None:
        with tenancy.system("security_event_without_account"), transaction():
            add(kind, account_id, client, **kwargs)
        return
    with tenancy.use_tenant(account_id), transaction():
        add(kind, account_id, client, **kwargs)


def page(admin: User, limit: int, before_id: int | None = None) -> list[SecurityEvent]:
    """The admin's account's events, newest first; `before_id` continues a previous page."""
    query = select(SecurityEvent).where(SecurityEvent.account_id == admin.account_id)
    if before_id is not None:
        query = query.where(SecurityEvent.id < before_id)
    query = query.order_by(SecurityEvent.id.desc()).limit(min(max(limit, 1), MAX_PAGE))
    return list(db.session.scalars(query))

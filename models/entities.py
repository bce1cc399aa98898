"""Tables. Every row that belongs to a tenant carries `account_id`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import db, utcnow

ROLES = ("technician", "engineer", "admin")
SENIOR_ROLES = ("engineer", "admin")
SESSION_STATUSES = ("active", "escalated", "resolved")
HANDOFF_STATUSES = ("open", "claimed", "resolved")
LIVE_HANDOFF_STATUSES = ("open", "claimed")
FIRST_ACTION_KINDS = ("chat", "psa_writeback")
DELIVERY_STATUSES = ("pending", "sent", "retrying", "failed")


class Account(db.Model):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    manual_baseline_minutes: Mapped[int] = mapped_column(Integer, default=45)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A deactivated user keeps their history but cannot sign in, call the API, hold a socket
    # or be notified.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    account: Mapped[Account] = relationship(lazy="joined")

    @property
    def is_senior(self) -> bool:
        return self.role in SENIOR_ROLES


class ApiToken(db.Model):
    """API tokens are stored only as SHA-256 hashes; the plain token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    name: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class LoginSession(db.Model):
    """A browser sign-in. The cookie carries a random key whose SHA-256 is stored here, so
    signing out (or deactivation) ends the login on the server, not only in the browser."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship(lazy="joined")


class SecurityEvent(db.Model):
    """The security log: sign-ins, sign-outs, credential and role changes, per account.
    `account_id` is null only for a failed sign-in with an email no account has."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_account_id_desc", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    subject_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id], lazy="joined")
    subject: Mapped[User | None] = relationship(foreign_keys=[subject_user_id], lazy="joined")


class FlowSession(db.Model):
    """A FlowPilot troubleshooting session worked by a technician."""

    __tablename__ = "flow_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    technician_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    ai_assessment: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    technician: Mapped[User] = relationship(lazy="joined")


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_session_created", "session_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("flow_sessions.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined")


class PsaWriteback(db.Model):
    """A note written back to the PSA ticket: a non-chat action."""

    __tablename__ = "psa_writebacks"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("flow_sessions.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined")


class Handoff(db.Model):
    """An escalation of a session from its technician to the account's seniors."""

    __tablename__ = "handoffs"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_handoffs_idempotency"),
        # At most one live (open or claimed) handoff per session, enforced by the database.
        Index(
            "uq_handoffs_live_session",
            "session_id",
            unique=True,
            sqlite_where=text("status IN ('open', 'claimed')"),
            postgresql_where=text("status IN ('open', 'claimed')"),
        ),
        Index("ix_handoffs_account_status_created", "account_id", "status", "created_at", "id"),
        Index("ix_handoffs_account_created", "account_id", "created_at"),
        Index("ix_handoffs_account_first_action", "account_id", "first_action_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    session_id: Mapped[int] = mapped_column(ForeignKey("flow_sessions.id"), index=True)
    escalated_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    title: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    escalation_package: Mapped[dict[str, Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    first_action_at: Mapped[datetime | None]
    first_action_kind: Mapped[str | None] = mapped_column(String(20))
    # Stored with the first action so the monthly rollup is a plain AVG on any database.
    time_to_first_action_seconds: Mapped[float | None]

    escalated_by: Mapped[User] = relationship(foreign_keys=[escalated_by_id], lazy="joined")
    claimed_by: Mapped[User | None] = relationship(foreign_keys=[claimed_by_id], lazy="joined")
    session: Mapped[FlowSession] = relationship(lazy="select")


class OutboxEvent(db.Model):
    """Notification work written in the same transaction as the change it announces.

    The web process publishes it to the broker right after commit; the beat-driven
    relay re-publishes whatever is still unpublished (the broker was down).
    """

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)

    handoff: Mapped[Handoff] = relationship(lazy="select")


class Delivery(db.Model):
    """One notification to one recipient over one channel; `dedupe_key` makes it unique.

    A worker claims the row (sets `locked_until`) before sending, so two workers
    never send the same delivery; a sweeper re-enqueues rows whose lock expired.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id"), index=True)
    outbox_event_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_events.id"))
    channel: Mapped[str] = mapped_column(String(10))
    event: Mapped[str] = mapped_column(String(40))
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    recipient: Mapped[User | None] = relationship(lazy="joined")


class MonthlyRollup(db.Model):
    """Escalation metrics per account and calendar month (in the account's time zone)."""

    __tablename__ = "monthly_rollups"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    first_actions: Mapped[int] = mapped_column(Integer, default=0)
    avg_time_to_first_action_minutes: Mapped[float | None]
    manual_baseline_minutes: Mapped[int] = mapped_column(Integer)
    minutes_recovered_per_escalation: Mapped[float | None]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)

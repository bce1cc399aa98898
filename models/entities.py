"""Tables. Every row that belongs to a tenant carries `account_id`."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    inspect,
    text,
    true,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.db import db, utcnow

ROLES = ("technician", "engineer", "admin")
SENIOR_ROLES = ("engineer", "admin")
SESSION_STATUSES = ("active", "escalated", "resolved")
HANDOFF_STATUSES = ("open", "claimed", "resolved")
LIVE_HANDOFF_STATUSES = ("open", "claimed")
FIRST_ACTION_KINDS = ("chat", "psa_writeback")
DELIVERY_STATUSES = ("pending", "held", "sent", "retrying", "failed")
PRIORITIES = ("p1", "p2", "p3", "p4")  # p1 is the most urgent
DEFAULT_PRIORITY = "p3"
#: How every page, email and API summary names a priority (one definition).
PRIORITY_LABELS = {"p1": "P1 · critical", "p2": "P2 · high", "p3": "P3 · normal", "p4": "P4 · low"}
NOTIFY_EMAIL_CHOICES = ("always", "when_offline", "never")
DEFAULT_NOTIFY_EMAIL = "when_offline"
#: The escalation policy an account starts with (models/handoff_steps.py), defined once:
#: the columns' defaults and the policy read these; null turns a step off.
POLICY_DEFAULTS: dict[str, int] = {
    "renotify_after_minutes": 5,
    "renotify_max": 2,
    "escalate_to_admins_after_minutes": 15,
}
DEFAULT_BASELINE_MINUTES = 45
PSA_CONNECTION_STATUSES = ("connected", "broken")


def new_schedule_version() -> int:
    """A fresh `Account.schedule_version`: random rather than counted, so two databases (or
    an account deleted and made again) never show one process the same value by chance."""
    return secrets.randbits(62)


class Account(db.Model):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    manual_baseline_minutes: Mapped[int] = mapped_column(Integer, default=DEFAULT_BASELINE_MINUTES)
    # False while the baseline is still the default nobody chose; analytics says so.
    baseline_is_set: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The escalation policy for unclaimed handoffs (models/handoff_steps.py); null: step off.
    renotify_after_minutes: Mapped[int | None] = mapped_column(
        Integer,
        default=POLICY_DEFAULTS["renotify_after_minutes"],
        server_default=str(POLICY_DEFAULTS["renotify_after_minutes"]),
    )
    renotify_max: Mapped[int] = mapped_column(
        Integer,
        default=POLICY_DEFAULTS["renotify_max"],
        server_default=str(POLICY_DEFAULTS["renotify_max"]),
    )
    escalate_to_admins_after_minutes: Mapped[int | None] = mapped_column(
        Integer,
        default=POLICY_DEFAULTS["escalate_to_admins_after_minutes"],
        server_default=str(POLICY_DEFAULTS["escalate_to_admins_after_minutes"]),
    )
    # Per priority, the policy fields that differ from the account-wide ones
    # (models/handoff_steps.py); null: the product's defaults (p1 and p2 run faster).
    policy_by_priority: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Weekly windows and holidays in the account's time zone (models/oncall.py); null:
    # always inside business hours.
    business_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Changes with every write the on-call decision reads (business hours, the time zone,
    # rotations, overrides, the seniors and their preferences): models/schedule_cache.py
    # keeps a loaded schedule only while this still holds the value it was loaded under.
    schedule_version: Mapped[int] = mapped_column(
        BigInteger, default=new_schedule_version, server_default="0"
    )


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Notification preferences (PATCH /me): when to email, quiet hours ("HH:MM", both or
    # neither) in `timezone` (null: the account's).
    notify_email: Mapped[str] = mapped_column(
        String(16), default=DEFAULT_NOTIFY_EMAIL, server_default=DEFAULT_NOTIFY_EMAIL
    )
    quiet_hours_start: Mapped[str | None] = mapped_column(String(5))
    quiet_hours_end: Mapped[str | None] = mapped_column(String(5))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # A deactivated user keeps their history but cannot sign in, call the API, hold a socket
    # or be notified.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    account: Mapped[Account] = relationship(lazy="joined")

    @property
    def is_senior(self) -> bool:
        return self.role in SENIOR_ROLES

    @property
    def quiet_hours(self) -> dict[str, str] | None:
        if self.quiet_hours_start and self.quiet_hours_end:
            return {"start": self.quiet_hours_start, "end": self.quiet_hours_end}
        return None


class ApiToken(db.Model):
    """API tokens are stored only as SHA-256 hashes; the plain token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The user's account (set from the user when left unset): row security needs it here.
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
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
    # The user's account (set from the user when left unset): row security needs it here.
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
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
    customer: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(
        String(2), default=DEFAULT_PRIORITY, server_default=DEFAULT_PRIORITY
    )
    # The ticket in the account's PSA this session works on (a string: PSAs differ).
    psa_ticket_id: Mapped[str | None] = mapped_column(String(64))

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
    # The delivery that posts it to the PSA (none when the account has no PSA connection)
    # and, once posted, the note's id in the PSA.
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"), index=True)
    psa_note_id: Mapped[str | None] = mapped_column(String(64))

    author: Mapped[User] = relationship(lazy="joined")
    delivery: Mapped[Delivery | None] = relationship(lazy="joined")


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
        Index("ix_handoffs_account_claimed_by", "account_id", "claimed_by_id", "status"),
        # The reminder scan: open handoffs whose next step is due, a range scan by due time.
        Index(
            "ix_handoffs_open_next_step",
            "next_step_at",
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_handoffs_account_first_claimed", "account_id", "first_claimed_at"),
        Index("ix_handoffs_account_admins_told", "account_id", "escalated_to_admins_at"),
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
    # The resolver's note on how it ended (optional).
    outcome: Mapped[str | None] = mapped_column(Text)
    first_action_at: Mapped[datetime | None]
    first_action_kind: Mapped[str | None] = mapped_column(String(20))
    # Who took the first action: credited to them whoever holds the handoff later.
    first_action_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Stored with the first action so the monthly rollup is a plain AVG on any database.
    time_to_first_action_seconds: Mapped[float | None]
    # Unclaimed steps: when the next one is due (null: none), reminders sent, admins told.
    next_step_at: Mapped[datetime | None]
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalated_to_admins_at: Mapped[datetime | None]
    # The first claim, kept through releases and reassignments (time to claim).
    first_claimed_at: Mapped[datetime | None]
    time_to_claim_seconds: Mapped[float | None]

    escalated_by: Mapped[User] = relationship(foreign_keys=[escalated_by_id], lazy="joined")
    claimed_by: Mapped[User | None] = relationship(foreign_keys=[claimed_by_id], lazy="joined")
    # A many-to-one: usually answered from the identity map (the holder or a senior loaded).
    first_action_by: Mapped[User | None] = relationship(
        foreign_keys=[first_action_by_id], lazy="select"
    )
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
    # None for work that is about a session rather than a handoff (a PSA writeback).
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id"), index=True)
    # A session's live event (models.events.SESSION_EVENTS): the session whose pages hear
    # it, and the chat message or the writeback it carries.
    session_id: Mapped[int | None] = mapped_column(ForeignKey("flow_sessions.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    # Created after both tables (a writeback points at its delivery, which points here).
    writeback_id: Mapped[int | None] = mapped_column(
        ForeignKey("psa_writebacks.id", use_alter=True)
    )
    event: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    # Set once the event went live (the web process emitted it right after the commit); a
    # dispatch that finds it set only plans the emails.
    emitted_at: Mapped[datetime | None]
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)

    handoff: Mapped[Handoff | None] = relationship(lazy="select")
    session: Mapped[FlowSession | None] = relationship(lazy="select")
    message: Mapped[Message | None] = relationship(lazy="select")
    writeback: Mapped[PsaWriteback | None] = relationship(lazy="select")


class Delivery(db.Model):
    """One notification to one recipient over one channel; `dedupe_key` makes it unique.

    A worker claims the row (sets `locked_until`) before sending, so two workers
    never send the same delivery; a sweeper re-enqueues rows whose lock expired.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id"), index=True)
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
    # Email only: why it went (models.notification_rule.REASONS), and, for one quiet hours
    # held (status `held` until then), when it is due.
    reason: Mapped[str | None] = mapped_column(String(20))
    held_until: Mapped[datetime | None]
    # What a notice about no handoff says (a shift notice: its rotation and end).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    recipient: Mapped[User | None] = relationship(lazy="joined")


class HandoffStep(db.Model):
    """One unclaimed-handoff step taken (`reminder-<n>` or `admins`): the unique key makes
    each happen once per handoff, whatever duplicate ticks or crashes occur."""

    __tablename__ = "handoff_steps"
    __table_args__ = (UniqueConstraint("handoff_id", "step", name="uq_handoff_steps_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id"))
    step: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime]
    outbox_event_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_events.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    outbox_event: Mapped[OutboxEvent | None] = relationship(lazy="select")


class HandoffEvent(db.Model):
    """The handoff's timeline: one row per change, written in the change's transaction."""

    __tablename__ = "handoff_events"
    __table_args__ = (Index("ix_handoff_events_handoff", "handoff_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id"))
    kind: Mapped[str] = mapped_column(String(30))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    actor: Mapped[User | None] = relationship(lazy="joined")
    handoff: Mapped[Handoff] = relationship(lazy="select")


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
    # Handoffs first claimed in the month: their average time from creation to claim.
    avg_time_to_claim_minutes: Mapped[float | None]
    # Handoffs whose escalation to the admins happened in the month.
    escalated_to_admins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class PsaConnection(db.Model):
    """An account's connection to its PSA. The API keys and the callback secret live only
    in `secrets`, encrypted (models.psa.vault); they are never answered or logged."""

    __tablename__ = "psa_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    # The PSA's API address (ConnectWise: the site; Autotask: the zone found for the user).
    site_url: Mapped[str] = mapped_column(String(300))
    company_id: Mapped[str | None] = mapped_column(String(100))  # ConnectWise only
    client_id: Mapped[str | None] = mapped_column(String(100))  # ConnectWise only
    # The connector's other non-secret settings, as JSON (field name → value).
    public_settings: Mapped[str | None] = mapped_column(Text)
    secrets: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="connected")
    status_message: Mapped[str | None] = mapped_column(Text)
    # The callback registered with the PSA for this account, to delete with the connection.
    psa_callback_id: Mapped[str | None] = mapped_column(String(64))
    # SHA-256 (hex) of the URL that callback was registered with: a URL of another form
    # (an older release's, another BASE_URL) is registered again by `release`.
    callback_registered: Mapped[str | None] = mapped_column(String(64))
    # Callbacks must carry ConnectWise's signature (models.psa.signatures); an admin may
    # switch it off for a server that does not sign.
    verify_signatures: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PsaMemberLink(db.Model):
    """An admin's mapping from a PSA member (its login identifier) to one of our users, for
    seniors whose PSA email differs from their login here."""

    __tablename__ = "psa_member_links"
    __table_args__ = (
        UniqueConstraint("account_id", "psa_member", name="uq_psa_member_links_member"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    psa_member: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")


class Rotation(db.Model):
    """An on-call rotation: participants in turn, each for `shift_length_days`, handing off
    at `handoff_time` (HH:MM) in `timezone`, from `start_date` on (models/oncall.py)."""

    __tablename__ = "oncall_rotations"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    participants: Mapped[list[int]] = mapped_column(JSON)  # user ids, in turn order
    shift_length_days: Mapped[int] = mapped_column(Integer)
    handoff_time: Mapped[str] = mapped_column(String(5))
    start_date: Mapped[date] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OnCallOverride(db.Model):
    """A senior covering part of a rotation; where overrides overlap, the later one (the
    higher id) wins."""

    __tablename__ = "oncall_overrides"
    __table_args__ = (Index("ix_oncall_overrides_account_end", "account_id", "end_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    rotation_id: Mapped[int] = mapped_column(
        ForeignKey("oncall_rotations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    start_at: Mapped[datetime] = mapped_column()
    end_at: Mapped[datetime] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id], lazy="joined")


class CalendarFeed(db.Model):
    """A senior's secret calendar feed URL, stored hashed; posting again replaces it."""

    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# What the on-call decision reads of each table (models/schedule_cache.py): a flush that
# changes one of these fields (None: any field), or adds or deletes such a row, gives the
# account a new `schedule_version` in the same transaction.
_SCHEDULE_FIELDS: dict[type, tuple[str, ...] | None] = {
    Account: ("timezone", "business_hours"),
    User: (
        "account_id",
        "name",
        "role",
        "active",
        "notify_email",
        "quiet_hours_start",
        "quiet_hours_end",
        "timezone",
    ),
    Rotation: None,
    OnCallOverride: None,
}


def _schedule_changed(session: Session, row: object, fields: tuple[str, ...] | None) -> bool:
    if row in session.new or row in session.deleted or fields is None:
        return True
    state = inspect(row)
    return any(state.attrs[name].history.has_changes() for name in fields)


def _schedule_accounts(session: Session) -> set[int]:
    found: set[int] = set()
    for row in (*session.new, *session.dirty, *session.deleted):
        fields = _SCHEDULE_FIELDS.get(type(row), ())
        if fields == () or not _schedule_changed(session, row, fields):
            continue
        if isinstance(row, Account):
            if row not in session.new and row not in session.deleted:
                found.add(row.id)  # a new account already has a version of its own
            continue
        history = inspect(row).attrs.account_id.history
        found.update(a for a in (*history.deleted, row.account_id) if a is not None)
    return found


@event.listens_for(Session, "after_flush")
def _new_schedule_versions(session: Session, _context) -> None:
    """Every write the on-call decision reads changes its account's `schedule_version`, in
    the flush that writes it, whichever command or process made it."""
    accounts = _schedule_accounts(session)
    if accounts:
        table = Account.__table__
        session.connection().execute(
            table.update()
            .where(table.c.id.in_(sorted(accounts)))
            .values(schedule_version=new_schedule_version())
        )


@event.listens_for(ApiToken, "before_insert")
@event.listens_for(LoginSession, "before_insert")
def _account_of_user(_mapper, _connection, target) -> None:
    """A token or login belongs to its user's account (the user is written first)."""
    if target.account_id is None and target.user is not None:
        target.account_id = target.user.account_id

"""Single sign-on tables: an account's OpenID Connect connection, the email domains it
serves, the identities (issuer, subject) linked to users, and sign-ins under way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import db, utcnow
from models.entities import User

PROVIDERS = ("microsoft", "google", "oidc")
JIT_ROLES = ("technician", "engineer")


class SsoConnection(db.Model):
    """One per account. The client secret lives only in `secrets`, sealed with the same
    keys as the PSA secrets (models.psa.vault); it is never answered or logged."""

    __tablename__ = "sso_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    issuer_url: Mapped[str | None] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(300))
    secrets: Mapped[str] = mapped_column(Text)
    jit_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    jit_role: Mapped[str] = mapped_column(String(20), default="technician")
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    # The value of the TXT record that proves the account holds a domain.
    verification_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    domains: Mapped[list[SsoDomain]] = relationship(
        back_populates="connection",
        cascade="all, delete-orphan",
        order_by="SsoDomain.domain",
        lazy="selectin",
    )


class SsoDomain(db.Model):
    """An email domain a connection serves. Any account may list a domain; it serves
    sign-ins once verified, and only one account can hold it verified."""

    __tablename__ = "sso_domains"
    __table_args__ = (
        UniqueConstraint("account_id", "domain", name="uq_sso_domains_account_domain"),
        Index(
            "uq_sso_domains_verified",
            "domain",
            unique=True,
            sqlite_where=text("verified_at IS NOT NULL"),
            postgresql_where=text("verified_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("sso_connections.id"), index=True)
    domain: Mapped[str] = mapped_column(String(253))
    verified_at: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]

    connection: Mapped[SsoConnection] = relationship(back_populates="domains")


class SsoIdentity(db.Model):
    """A user's identity at the account's provider: (issuer, subject), never the email."""

    __tablename__ = "sso_identities"
    __table_args__ = (
        UniqueConstraint("account_id", "issuer", "subject", name="uq_sso_identities_identity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class SsoSignIn(db.Model):
    """A sign-in sent to the provider and not yet back: its `state` (stored as a hash),
    nonce and PKCE verifier. Used once: the callback marks it used before anything else."""

    __tablename__ = "sso_sign_ins"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

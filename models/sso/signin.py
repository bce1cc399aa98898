"""Signing in through the account's provider: the sign-in sent out (state, nonce, PKCE
verifier), taking it back once, and deciding who the verified ID token is.

Identity is the issuer and subject, never the email. An email only links a user once: the
first SSO sign-in of an active user of this account whose verified email is in the
connection's verified domains. Just-in-time provisioning creates a user only for a
verified email in those domains that exists in no account."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from models import security_log
from models.accounts import normalize_email
from models.db import db, transaction, utcnow
from models.entities import User
from models.errors import DomainError
from models.security_log import NO_CLIENT, Client
from models.sso import lookups
from models.sso.connection import email_domain, get_connection, verified_domains
from models.sso.entities import SsoConnection, SsoIdentity, SsoSignIn
from models.tokens import hash_token

log = logging.getLogger(__name__)

SIGN_IN_TTL = timedelta(minutes=10)
# A login made by SSO lasts at most this long: then the provider is asked again, so that
# disabling someone in the directory takes effect.
SSO_LOGIN_LIFETIME = timedelta(hours=12)

REASONS = {
    "bad_state": "This sign-in link is not valid, has expired or was already used. "
    "Start again from the sign-in page.",
    "denied": "The sign-in was not completed at your identity provider.",
    "provider_error": "Your identity provider answered with an error.",
    "invalid_token": "The identity provider's answer could not be verified.",
    "wrong_tenant": "This sign-in comes from a different directory than the one this "
    "account's single sign-on trusts.",
    "wrong_domain": "Your email's domain is not one this account's single sign-on serves.",
    "unverified_email": "Your identity provider does not vouch for your email address, so "
    "it cannot be used to sign you in.",
    "email_taken": "Your email belongs to a user of another account, so it cannot sign in "
    "here. Ask your administrator.",
    "already_linked": "Your user is already linked to a different identity at this provider.",
    "deactivated": "Your user is deactivated. Ask your administrator.",
    "no_user": "There is no user for you in this account, and new users are not created "
    "automatically. Ask your administrator to invite you.",
    "not_configured": "This account no longer has single sign-on set up.",
}


class SsoRefused(DomainError):
    """A sign-in the callback refuses: a 400 page saying why."""

    status = 400
    code = "sso_refused"

    def __init__(self, reason: str, detail: str | None = None) -> None:
        message = REASONS[reason] + (f" ({detail})" if detail else "")
        super().__init__(message, {"reason": [reason]})
        self.reason = reason


# --- the sign-in under way -----------------------------------------------------------------


def record_sign_in(
    connection: SsoConnection, state: str, nonce: str, code_verifier: str, redirect_uri: str
) -> None:
    now = utcnow()
    with transaction():
        # Sign-ins that never came back (or did) are kept only a while past their time.
        db.session.execute(
            delete(SsoSignIn).where(
                SsoSignIn.account_id == connection.account_id,
                SsoSignIn.expires_at < now - SIGN_IN_TTL,
            )
        )
        db.session.add(
            SsoSignIn(
                account_id=connection.account_id,
                state_hash=hash_token(state),
                nonce=nonce,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
                created_at=now,
                expires_at=now + SIGN_IN_TTL,
            )
        )


@dataclass(frozen=True)
class PendingSignIn:
    account_id: int
    nonce: str
    code_verifier: str
    redirect_uri: str
    connection: SsoConnection


def take_sign_in(state: str | None) -> PendingSignIn:
    """The sign-in this state belongs to, marked used (a second use is refused); the unit of
    work then acts for its account."""
    if not state or len(state) > 500:
        raise SsoRefused("bad_state")
    now = utcnow()
    with lookups.system("sso_callback"):
        row = db.session.scalar(select(SsoSignIn).where(SsoSignIn.state_hash == hash_token(state)))
        taken = row is not None and (
            db.session.execute(
                update(SsoSignIn)
                .where(
                    SsoSignIn.id == row.id,
                    SsoSignIn.used_at.is_(None),
                    SsoSignIn.expires_at > now,
                )
                .values(used_at=now)
            ).rowcount
            == 1
        )
        if row is not None:
            pending = (row.account_id, row.nonce, row.code_verifier, row.redirect_uri)
    if not taken:
        raise SsoRefused("bad_state")
    account_id, nonce, verifier, redirect_uri = pending
    lookups.act_for(account_id)
    connection = get_connection(account_id)
    if connection is None:
        raise SsoRefused("not_configured")
    return PendingSignIn(account_id, nonce, verifier, redirect_uri, connection)


# --- who the ID token is -----------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true") or value == 1


def check_claims(connection: SsoConnection, claims: dict[str, Any]) -> None:
    """The provider-specific checks beyond signature, issuer, audience and expiry."""
    if connection.provider == "microsoft":
        tid = str(claims.get("tid") or "").lower()
        if tid != (connection.tenant_id or ""):
            raise SsoRefused("wrong_tenant", f"tenant {tid or 'missing'}")
    if connection.provider == "google":
        hd = str(claims.get("hd") or "").lower()
        if hd not in {row.domain for row in connection.domains}:
            raise SsoRefused("wrong_tenant", f"Google Workspace domain {hd or 'missing'}")


def verified_email(connection: SsoConnection, claims: dict[str, Any]) -> str | None:
    """The email the provider vouches for, or None. Entra does not send `email_verified`:
    there the pinned tenant (checked before) and `xms_edov` (the domain's owner verified
    it) stand for it."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        return None
    if connection.provider == "microsoft":
        vouched = _truthy(claims.get("xms_edov"))
    else:
        vouched = claims.get("email_verified") is True
    return normalize_email(email) if vouched else None


def _refuse(
    connection: SsoConnection,
    reason: str,
    client: Client,
    claims: dict[str, Any],
    subject: User | None = None,
    detail: str | None = None,
) -> SsoRefused:
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    security_log.record(
        security_log.SSO_SIGN_IN_REFUSED,
        connection.account_id,
        client,
        subject=subject,
        reason=reason,
        email=(email or "")[:254] or None,
        issuer=str(claims.get("iss") or "")[:500] or None,
    )
    log.info("SSO sign-in refused for account %s: %s", connection.account_id, reason)
    return SsoRefused(reason, detail)


def refuse_callback(
    connection: SsoConnection, reason: str, client: Client = NO_CLIENT, detail: str | None = None
) -> SsoRefused:
    """A refusal before any claims were read (denied, provider error, bad token)."""
    return _refuse(connection, reason, client, {}, detail=detail)


def _linked_user(connection: SsoConnection, issuer: str, subject: str) -> SsoIdentity | None:
    return db.session.scalar(
        select(SsoIdentity).where(
            SsoIdentity.account_id == connection.account_id,
            SsoIdentity.issuer == issuer,
            SsoIdentity.subject == subject,
        )
    )


def _email_anywhere(email: str) -> tuple[int, int] | None:
    """(account id, user id) of the user with this email in any account."""
    with lookups.system("jit_exists"):
        row = db.session.execute(
            select(User.account_id, User.id).where(User.email == email)
        ).first()
    return (row[0], row[1]) if row is not None else None


def identify(connection: SsoConnection, claims: dict[str, Any], client: Client = NO_CLIENT) -> User:
    """The user this verified ID token signs in: linked before, linked now, or created."""
    check_claims_logged(connection, claims, client)
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    identity = _linked_user(connection, issuer, subject)
    if identity is not None:
        if not identity.user.active:
            raise _refuse(connection, "deactivated", client, claims, identity.user)
        with transaction(expire_on_commit=False):
            identity.last_sign_in_at = utcnow()
        return identity.user
    email = verified_email(connection, claims)
    if email is None:
        raise _refuse(connection, "unverified_email", client, claims)
    if email_domain(email) not in verified_domains(connection):
        raise _refuse(connection, "wrong_domain", client, claims)
    owner = _email_anywhere(email)
    if owner is not None and owner[0] != connection.account_id:
        raise _refuse(connection, "email_taken", client, claims)
    if owner is not None:
        return _link(connection, db.session.get(User, owner[1]), issuer, subject, client, claims)
    if not connection.jit_enabled:
        raise _refuse(connection, "no_user", client, claims)
    return _provision(connection, email, issuer, subject, client, claims)


def check_claims_logged(connection: SsoConnection, claims: dict[str, Any], client: Client) -> None:
    try:
        check_claims(connection, claims)
    except SsoRefused as refused:
        raise _refuse(connection, refused.reason, client, claims) from None


def _link(
    connection: SsoConnection,
    user: User,
    issuer: str,
    subject: str,
    client: Client,
    claims: dict[str, Any],
) -> User:
    if not user.active:
        raise _refuse(connection, "deactivated", client, claims, user)
    already = db.session.scalar(
        select(SsoIdentity.id).where(SsoIdentity.user_id == user.id, SsoIdentity.issuer == issuer)
    )
    if already is not None:
        raise _refuse(connection, "already_linked", client, claims, user)
    try:
        with transaction(expire_on_commit=False):
            db.session.add(
                SsoIdentity(
                    account_id=connection.account_id, user_id=user.id, issuer=issuer,
                    subject=subject, last_sign_in_at=utcnow(),
                )
            )  # fmt: skip
            security_log.add(
                security_log.SSO_LINKED, connection.account_id, client, actor=user,
                subject=user, issuer=issuer, provider=connection.provider,
            )  # fmt: skip
    except IntegrityError as exc:  # the same identity linked concurrently
        raise _refuse(connection, "already_linked", client, claims, user) from exc
    return user


def _display_name(claims: dict[str, Any], email: str) -> str:
    name = claims.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()[:200]
    return email.partition("@")[0][:200]


def _provision(
    connection: SsoConnection,
    email: str,
    issuer: str,
    subject: str,
    client: Client,
    claims: dict[str, Any],
) -> User:
    try:
        with transaction(expire_on_commit=False):
            user = User(
                account_id=connection.account_id,
                name=_display_name(claims, email),
                email=email,
                role=connection.jit_role,
                password_hash=None,
            )
            db.session.add(user)
            db.session.flush()
            db.session.add(
                SsoIdentity(
                    account_id=connection.account_id, user_id=user.id, issuer=issuer,
                    subject=subject, last_sign_in_at=utcnow(),
                )
            )  # fmt: skip
            security_log.add(
                security_log.SSO_PROVISIONED, connection.account_id, client, actor=user,
                subject=user, issuer=issuer, provider=connection.provider, role=user.role,
            )  # fmt: skip
    except IntegrityError as exc:  # the email was taken meanwhile
        raise _refuse(connection, "email_taken", client, claims) from exc
    return user


# --- password sign-in under "require SSO" ------------------------------------------------------


def password_refused(user: User) -> SsoConnection | None:
    """The connection that forbids this user a password sign-in (admins are never refused:
    they are the break-glass way in), or None."""
    if user.role == "admin":
        return None
    connection = get_connection(user.account_id)
    return connection if connection is not None and connection.required else None

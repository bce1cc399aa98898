"""Credentials: API tokens (named, expiring, revocable), browser logins kept on the server,
and the admin's user management (role, deactivation).

Every check reads the database, so a revoked token, an ended login or a deactivated user is
refused on the very next request; open Socket.IO connections are re-checked by the web
nodes (`invalid_connections`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from models import security_log, tenancy, tokens
from models.accounts import normalize_email, user_for_password
from models.db import db, transaction, utcnow
from models.entities import ROLES, ApiToken, LoginSession, User
from models.errors import Conflict, Forbidden, NotFound, ValidationFailed
from models.security_log import NO_CLIENT, Client
from models.sso import signin as sso_signin
from models.sso.connection import PROVIDER_LABELS

TOKEN = "token"
LOGIN = "login"
# last_used_at is written at most this often per token: a busy client must not turn every
# read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_TOKEN_DAYS = 3650


class SsoRequired(Forbidden):
    """Password sign-in refused: the account requires single sign-on for this user."""

    def __init__(self, provider: str) -> None:
        label = PROVIDER_LABELS.get(provider, "SSO")
        super().__init__(
            f'Your account signs in with single sign-on: use "Sign in with {label}" '
            "instead of a password.",
            code="sso_required",
        )
        self.provider = provider


@dataclass(frozen=True)
class Credential:
    """What authenticated a request or a socket: a token or a login, and its user."""

    kind: str
    id: int
    user: User


# --- API tokens ---------------------------------------------------------------------------


def _usable_token(now: datetime):
    return (
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        User.active.is_(True),
    )


def authenticate_token(secret: str) -> Credential | None:
    """The token's credential if it exists, is neither revoked nor expired, and its user is
    active. Notes the use (`last_used_at`, at minute resolution)."""
    if not secret:
        return None
    now = utcnow()
    # Before the tenant is known: the token's hash finds it (and its account).
    with tenancy.system("credential_lookup"):
        token = db.session.scalar(
            select(ApiToken)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == tokens.hash_token(secret), *_usable_token(now))
        )
    if token is None:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        with tenancy.use_tenant(token.account_id), transaction(expire_on_commit=False):
            db.session.execute(
                update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
            )
    return Credential(TOKEN, token.id, token.user)


def create_token(
    user: User, name: str, expires_in_days: int | None = None, client: Client = NO_CLIENT
) -> tuple[ApiToken, str]:
    """A new token for `user`; the secret is returned once and only its hash is stored."""
    name = name.strip()
    if not name:
        raise ValidationFailed("Some fields are invalid.", {"name": ["Must not be blank."]})
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise ValidationFailed(
            "Some fields are invalid.",
            {"expires_in_days": [f"Must be between 1 and {MAX_TOKEN_DAYS}."]},
        )
    with transaction(expire_on_commit=False):
        return tokens.mint(user, name, expires_in_days, client)


def tokens_of(caller: User, user_id: int | None = None) -> list[ApiToken]:
    """The live (not revoked) tokens of the caller, or of `user_id` in an admin's account."""
    owner = caller if user_id is None or user_id == caller.id else _account_user(caller, user_id)
    if owner.id != caller.id and caller.role != "admin":
        raise NotFound("No such user.")
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == owner.id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.id)
        )
    )


def revoke_token(caller: User, token_id: int, client: Client = NO_CLIENT) -> None:
    """Revoke a token of the caller's (or, for an admin, of anyone in their account)."""
    token = db.session.get(ApiToken, token_id)
    mine = token is not None and token.user_id == caller.id
    in_account = token is not None and token.user.account_id == caller.account_id
    if (
        token is None
        or token.revoked_at is not None
        or not (mine or (in_account and caller.role == "admin"))
    ):
        raise NotFound("No such token.")
    with transaction():
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        security_log.add(
            security_log.TOKEN_REVOKED,
            caller.account_id,
            client,
            actor=caller,
            subject=token.user,
            token_id=token_id,
            name=token.name,
        )


def revoke_all_tokens(user: User) -> int:
    """Revoke every live token of `user` (seed-demo uses it before minting new ones)."""
    with transaction():
        result = db.session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return result.rowcount or 0


# --- browser logins -------------------------------------------------------------------------


def sign_in(
    email: str, password: str, client: Client, lifetime: timedelta
) -> tuple[User, str] | None:
    """Check the password; on success start a login and return its user and cookie key.
    Every attempt, good or bad, is written to the security log."""
    # Before the tenant is known: the email finds the user (and the account).
    with tenancy.system("sign_in"):
        user = user_for_password(email, password) if email and password else None
        known = user or db.session.scalar(select(User).where(User.email == normalize_email(email)))
    connection = _sso_required(known) if known is not None else None
    if connection is not None:
        # Whatever the password: this account's users sign in through its provider.
        provider = connection.provider  # read before the log's commit expires it
        security_log.record(
            security_log.PASSWORD_SIGN_IN_REFUSED,
            known.account_id,
            client,
            subject=known,
            email=normalize_email(email)[:254],
        )
        raise SsoRequired(provider)
    if user is None or not user.active:
        security_log.record(
            security_log.SIGN_IN_FAILED,
            known.account_id if known is not None else None,
            client,
            subject=known,
            email=normalize_email(email)[:254],
        )
        return None
    # The rest of the request (the login, its log row) is the user's account's work.
    tenancy.set_tenant(user.account_id)
    return user, start_login(user, client, lifetime)


def _sso_required(user: User):
    """The SSO connection that refuses this user a password sign-in, read as their
    account's work."""
    with tenancy.use_tenant(user.account_id):
        connection = sso_signin.password_refused(user)
        if connection is not None:
            _ = connection.provider  # loaded while the account's rows are visible
        return connection


def start_login(user: User, client: Client, lifetime: timedelta, method: str = "password") -> str:
    """A new server-side login for `user`; returns the key its cookie will carry."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    with transaction(expire_on_commit=False):
        db.session.add(
            LoginSession(
                user=user,
                key_hash=tokens.hash_token(key),
                created_at=now,
                expires_at=now + lifetime,
                ip=(client.ip or "")[:64] or None,
                user_agent=(client.user_agent or "")[:300] or None,
            )
        )
        details = {"method": method} if method != "password" else {}
        security_log.add(
            security_log.SIGN_IN, user.account_id, client, actor=user, subject=user, **details
        )
    return key


def authenticate_login(key: str) -> Credential | None:
    if not key:
        return None
    with tenancy.system("credential_lookup"):
        login = db.session.scalar(
            select(LoginSession)
            .join(User, LoginSession.user_id == User.id)
            .where(
                LoginSession.key_hash == tokens.hash_token(key),
                LoginSession.ended_at.is_(None),
                LoginSession.expires_at > utcnow(),
                User.active.is_(True),
            )
        )
    return Credential(LOGIN, login.id, login.user) if login is not None else None


def sign_out(key: str, client: Client = NO_CLIENT) -> None:
    """End the login whose cookie carries `key` (nothing happens for an unknown key)."""
    with tenancy.system("credential_lookup"):
        login = db.session.scalar(
            select(LoginSession).where(LoginSession.key_hash == tokens.hash_token(key))
        )
    if login is None or login.ended_at is not None:
        return
    with tenancy.use_tenant(login.account_id), transaction():
        login.ended_at = utcnow()
        security_log.add(
            security_log.SIGN_OUT,
            login.user.account_id,
            client,
            actor=login.user,
            subject=login.user,
        )


# --- open connections -------------------------------------------------------------------------


def invalid_connections(connections: dict[str, tuple[str, int]]) -> list[str]:
    """Of `connections` (socket id → (kind, credential id)), the ones whose credential no
    longer authenticates: revoked, expired, signed out, or the user deactivated."""
    with tenancy.system("socket_credentials"):
        return _invalid_connections(connections)


def _invalid_connections(connections: dict[str, tuple[str, int]]) -> list[str]:
    now = utcnow()
    token_ids = {cid for kind, cid in connections.values() if kind == TOKEN}
    login_ids = {cid for kind, cid in connections.values() if kind == LOGIN}
    valid: set[tuple[str, int]] = set()
    if token_ids:
        rows = db.session.scalars(
            select(ApiToken.id)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.id.in_(token_ids), *_usable_token(now))
        )
        valid.update((TOKEN, token_id) for token_id in rows)
    if login_ids:
        rows = db.session.scalars(
            select(LoginSession.id)
            .join(User, LoginSession.user_id == User.id)
            .where(
                LoginSession.id.in_(login_ids),
                LoginSession.ended_at.is_(None),
                LoginSession.expires_at > now,
                User.active.is_(True),
            )
        )
        valid.update((LOGIN, login_id) for login_id in rows)
    return [sid for sid, credential in connections.items() if credential not in valid]


# --- users (admin) ------------------------------------------------------------------------------


def _account_user(caller: User, user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or user.account_id != caller.account_id:
        raise NotFound("No such user.")
    return user


def users_of(admin: User) -> list[User]:
    return list(
        db.session.scalars(
            select(User).where(User.account_id == admin.account_id).order_by(User.id)
        )
    )


def _active_admins(account_id: int, excluding: int) -> int:
    return len(
        db.session.scalars(
            select(User.id).where(
                User.account_id == account_id,
                User.role == "admin",
                User.active.is_(True),
                User.id != excluding,
            )
        ).all()
    )


def update_user(
    admin: User,
    user_id: int,
    role: str | None = None,
    active: bool | None = None,
    client: Client = NO_CLIENT,
) -> User:
    """Change a user's role or deactivate / reactivate them. The account always keeps one
    active admin, so an admin cannot lock everyone out (themselves included)."""
    user = _account_user(admin, user_id)
    if role is not None and role not in ROLES:
        raise ValidationFailed("Unknown role.", {"role": [f"Must be one of: {', '.join(ROLES)}."]})
    loses_admin = (
        user.role == "admin"
        and user.active
        and ((role is not None and role != "admin") or active is False)
    )
    if loses_admin and _active_admins(user.account_id, excluding=user.id) == 0:
        raise Conflict("The account needs at least one active admin.", code="last_admin")
    with transaction(expire_on_commit=False):
        if role is not None and role != user.role:
            security_log.add(
                security_log.ROLE_CHANGED,
                admin.account_id,
                client,
                actor=admin,
                subject=user,
                old=user.role,
                new=role,
            )
            user.role = role
        if active is not None and active != user.active:
            kind = security_log.USER_REACTIVATED if active else security_log.USER_DEACTIVATED
            security_log.add(kind, admin.account_id, client, actor=admin, subject=user)
            user.active = active
    return user

"""API tokens are minted in one place: a random secret shown once, its hash stored, an
optional expiry, and a `token_created` line in the security log. The token API
(`credentials.create_token`) and a new account's or user's first token both come here."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from models import security_log
from models.db import db, utcnow
from models.entities import ApiToken, User
from models.security_log import NO_CLIENT, Client


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough to make the stored value useless.
    return hashlib.sha256(token.encode()).hexdigest()


def new_token_secret() -> str:
    return secrets.token_urlsafe(32)


def mint(
    user: User,
    name: str | None = None,
    expires_in_days: int | None = None,
    client: Client = NO_CLIENT,
    actor: User | None = None,
) -> tuple[ApiToken, str]:
    """Add a new token for `user` to the caller's transaction and log who made it (`actor`,
    by default the user); returns the row and the secret, which is never stored."""
    secret = new_token_secret()
    now = utcnow()
    token = ApiToken(
        user=user,
        token_hash=hash_token(secret),
        name=name[:100] if name else None,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(token)
    db.session.flush()
    security_log.add(
        security_log.TOKEN_CREATED,
        user.account_id,
        client,
        actor=actor or user,
        subject=user,
        token_id=token.id,
        name=token.name,
    )
    return token, secret

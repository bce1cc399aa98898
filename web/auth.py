"""Who is calling: an API token (`Authorization: Bearer`) or the login session cookie.

Both lead to the same `request.auth_user`; role gates are decorators on the entry points.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import request, session

from models import User, tenancy
from models.credentials import Credential, authenticate_login, authenticate_token
from models.entities import SENIOR_ROLES
from models.security_log import Client
from web.errors import ApiError

F = TypeVar("F", bound=Callable)

# The signed cookie carries the login's random key (checked against the server's login
# sessions on every request) and, for convenience, the user's id. The id alone is never
# trusted: a cookie without a live login key is no login.
SESSION_USER_KEY = "user_id"
SESSION_LOGIN_KEY = "login_key"
ENGINEER_OR_ADMIN = SENIOR_ROLES


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def resolve_user() -> User | None:
    """The caller, once per request. A bearer header, when present, wins over the cookie
    (and a bad bearer token is not rescued by a cookie)."""
    if hasattr(request, "auth_user"):
        return request.auth_user
    credential, method = None, None
    if "Authorization" in request.headers:
        token = bearer_token()
        credential = authenticate_token(token) if token else None
        method = "token"
    elif (key := session.get(SESSION_LOGIN_KEY)) is not None:
        credential = authenticate_login(key) if isinstance(key, str) else None
        method = "cookie"
    elif session.get(SESSION_USER_KEY) is not None:
        method = "cookie"  # an id without a login key: forged or from before logins were kept
    request.auth_credential = credential
    request.auth_user = credential.user if credential is not None else None
    if credential is not None:
        # From here on the request's transactions see only the caller's account.
        tenancy.set_tenant(credential.user.account_id)
    request.auth_method = method
    return request.auth_user


def resolve_credential() -> Credential | None:
    resolve_user()
    return request.auth_credential


def client_info() -> Client:
    """The caller's address and browser, for the security log."""
    return Client(ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))


def current_user() -> User:
    user = resolve_user()
    if user is None:
        raise ApiError(401, "Authentication required: send a valid bearer token.")
    return user


def require_roles(*roles: str) -> Callable[[F], F]:
    """Authenticate, then allow only the given roles (any role when none are given)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if roles and user.role not in roles:
                raise ApiError(403, f"This needs one of the roles: {', '.join(roles)}.")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


authenticated = require_roles()
engineer_or_admin = require_roles(*ENGINEER_OR_ADMIN)
admin_only = require_roles("admin")

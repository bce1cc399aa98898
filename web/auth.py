"""Who is calling: an API token (`Authorization: Bearer`) or the login session cookie.

Both lead to the same `request.auth_user`; role gates are decorators on the entry points.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import request, session

from models import User, db
from models.accounts import user_for_token
from models.entities import SENIOR_ROLES
from web.errors import ApiError

F = TypeVar("F", bound=Callable)

SESSION_USER_KEY = "user_id"
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
    user, method = None, None
    if "Authorization" in request.headers:
        token = bearer_token()
        user = user_for_token(token) if token else None
        method = "token"
    elif (user_id := session.get(SESSION_USER_KEY)) is not None:
        user = db.session.get(User, user_id) if isinstance(user_id, int) else None
        method = "cookie"
    request.auth_user, request.auth_method = user, method
    return user


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

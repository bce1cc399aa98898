"""Browser security: CSRF for everything the login cookie can do, and the login rate limit.

- Form posts on the pages and JSON API calls authenticated by the login cookie must carry
  the page's CSRF token (form field `csrf_token`, or the `X-CSRFToken` header from JS).
- API calls with an `Authorization` header are exempt: a bearer token is never sent by the
  browser on its own, so a forged cross-site request cannot carry one.
- A refused API call gets the contract's error shape: 403 `forbidden`.
- Failed sign-ins are rate limited per client address and per email address
  (LOGIN_RATE_LIMIT_PER_ADDRESS, LOGIN_RATE_LIMIT_PER_EMAIL in web/config.py).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, current_app, request, session
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError

from models.accounts import normalize_email
from web import errors
from web.auth import SESSION_USER_KEY
from web.extensions import csrf

log = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRFToken"


def init_security(app: Flask) -> None:
    # Flask-WTF's blanket check is replaced by `_check_csrf`, which knows about bearer tokens.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    # A queue page stays open all shift: its token lives as long as the login session.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("WTF_CSRF_HEADERS", [CSRF_HEADER, "X-CSRF-Token"])
    app.before_request(_check_csrf)
    app.register_error_handler(CSRFError, _csrf_refused)


def _check_csrf() -> None:
    config = current_app.config
    if not config.get("WTF_CSRF_ENABLED", True):
        return
    if request.method not in config["WTF_CSRF_METHODS"]:
        return
    if "Authorization" in request.headers:
        return
    if errors.wants_json() and session.get(SESSION_USER_KEY) is None:
        return  # no cookie login: the API answers 401 on its own
    csrf.protect()


def _csrf_refused(error: CSRFError):
    log.info("CSRF check refused %s %s: %s", request.method, request.path, error.description)
    if errors.wants_json():
        return errors.error_response(
            403,
            "forbidden",
            f"Missing or invalid CSRF token: send the page's token in the {CSRF_HEADER} header.",
            {"csrf": [error.description]},
        )
    render = current_app.extensions["page_error"]
    return render(
        403,
        "This form could not be accepted: its security token is missing or expired. "
        "Go back, reload the page and try again.",
    )


# --- the login rate limit -------------------------------------------------------------


def login_limit_per_address() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_PER_ADDRESS"]


def login_limit_per_email() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_PER_EMAIL"]


def client_address_key() -> str:
    return f"login-address:{get_remote_address()}"


def login_email_key() -> str:
    email = normalize_email(request.form.get("email", ""))[:254]
    return f"login-email:{email}"


def login_failed(response) -> bool:
    """Only failed attempts count: a successful sign-in answers with a redirect."""
    return response.status_code != 303


# --- redirects after sign-in -----------------------------------------------------------


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target

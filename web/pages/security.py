"""Browser security: CSRF for everything the login cookie can do, and the login rate limit.

- Form posts on the pages and JSON API calls authenticated by the login cookie must carry
  the page's CSRF token (form field `csrf_token`, or the `X-CSRFToken` header from JS).
- API calls with an `Authorization` header are exempt: a bearer token is never sent by the
  browser on its own, so a forged cross-site request cannot carry one.
- A refused API call gets the contract's error shape: 403 `forbidden`.
- Failed sign-ins are refused past a limit per client address and per (address, email),
  and slowed down (never refused) per email; see "the login rate limit" below.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from flask import Flask, current_app, request, session
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError
from limits import RateLimitItem, RateLimitItemPerSecond

from models.accounts import normalize_email
from web import errors
from web.auth import SESSION_LOGIN_KEY, SESSION_USER_KEY
from web.error_pages import render_error_page
from web.extensions import csrf, limiter

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
    cookie_login = session.get(SESSION_LOGIN_KEY) or session.get(SESSION_USER_KEY)
    if errors.wants_json() and cookie_login is None:
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
    return render_error_page(
        403,
        "This form could not be accepted: its security token is missing or expired. "
        "Go back, reload the page and try again.",
    )


# --- the login rate limit -------------------------------------------------------------
#
# Refused (429) per client address, and per (address, email): one network cannot guess
# many passwords. Per email alone nothing is refused, or anyone could lock an admin out by
# failing on purpose; instead, once an email has collected LOGIN_SLOWDOWN_AFTER failures
# (from anywhere) in LOGIN_SLOWDOWN_WINDOW, each further attempt for it waits, doubling up
# to LOGIN_SLOWDOWN_MAX_SECONDS. The rightful user, from their own address, still gets in.

# A counter, not a limit: its "remaining" tells how many failures the window holds.
_FAILURE_COUNTER_SIZE = 1_000_000


def login_limit_per_address() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_PER_ADDRESS"]


def login_limit_per_address_and_email() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_PER_ADDRESS_AND_EMAIL"]


def client_address_key() -> str:
    return f"login-address:{get_remote_address()}"


def _login_email() -> str:
    return normalize_email(request.form.get("email", ""))[:254]


def login_address_and_email_key() -> str:
    return f"login-address-email:{get_remote_address()}:{_login_email()}"


def login_failed(response) -> bool:
    """Only failed attempts count: a successful sign-in answers with a redirect."""
    return response.status_code != 303


def _email_failures_item() -> RateLimitItem | None:
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    window = int(current_app.config["LOGIN_SLOWDOWN_WINDOW_SECONDS"])
    return RateLimitItemPerSecond(_FAILURE_COUNTER_SIZE, window)


def slowdown_seconds(failures: int, after: int, step: float, cap: float) -> float:
    """0 until `after` failures, then step, 2*step, 4*step... never more than `cap`."""
    if failures < after:
        return 0.0
    return min(cap, step * 2 ** min(failures - after, 16))


def slow_down_for_email(email: str) -> float:
    """Wait before checking a password for an email that has failed a lot recently."""
    item = _email_failures_item()
    if item is None or not email:
        return 0.0
    config = current_app.config
    try:
        stats = limiter.limiter.get_window_stats(item, f"login-email:{normalize_email(email)}")
    except Exception:
        log.warning("Sign-in slowdown: counter storage unreachable", exc_info=True)
        return 0.0
    failures = _FAILURE_COUNTER_SIZE - stats.remaining
    delay = slowdown_seconds(
        failures,
        int(config["LOGIN_SLOWDOWN_AFTER"]),
        float(config["LOGIN_SLOWDOWN_STEP_SECONDS"]),
        float(config["LOGIN_SLOWDOWN_MAX_SECONDS"]),
    )
    if delay:
        log.info("Sign-in for an email with %s recent failures waits %.2f s", failures, delay)
        time.sleep(delay)  # cooperative under eventlet: other requests keep being served
    return delay


def note_failed_sign_in(email: str) -> None:
    item = _email_failures_item()
    if item is None or not email:
        return
    try:
        limiter.limiter.hit(item, f"login-email:{normalize_email(email)}")
    except Exception:
        log.warning("Sign-in slowdown: counter storage unreachable", exc_info=True)


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

"""Per-token API rate limits: each bearer token has its own budget
(API_RATE_LIMIT_PER_TOKEN, e.g. "600 per minute;10000 per hour"); past it the API answers
429 `rate_limited` with `Retry-After`. Counters live with the login limits (Redis, shared by
every web node). Cookie calls from the pages are bounded by the login and page flow instead.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from flask import Flask, current_app, request
from limits import parse_many

from web import errors
from web.auth import bearer_token
from web.extensions import limiter

log = logging.getLogger(__name__)

# After the counters' store fails, requests go unlimited for this long instead of each one
# waiting on it again (a frozen Redis must not slow the API down).
STORE_DOWN_BACKOFF_SECONDS = 10.0
STATE_KEY = "api_rate_limit"


def init_api_rate_limit(app: Flask) -> None:
    app.extensions[STATE_KEY] = {"store_down_until": 0.0}
    app.before_request(_check_token_budget)


def _check_token_budget():
    config = current_app.config
    state = current_app.extensions[STATE_KEY]
    if not config.get("RATELIMIT_ENABLED", True) or not request.path.startswith("/api/"):
        return None
    if time.monotonic() < state["store_down_until"]:
        return None
    token = bearer_token()
    if token is None:
        return None
    # Keyed by a hash: a counter key in Redis must not be a usable credential.
    key = "api-token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    try:
        for item in parse_many(config["API_RATE_LIMIT_PER_TOKEN"]):
            if limiter.limiter.hit(item, key):
                continue
            reset_at, _ = limiter.limiter.get_window_stats(item, key)
            retry_after = max(1, math.ceil(reset_at - time.time()))
            response = errors.error_response(
                429,
                "rate_limited",
                f"Too many requests for this token (limit {item}). Retry in {retry_after} s.",
                {"retry_after_seconds": retry_after},
            )
            response.headers["Retry-After"] = str(retry_after)
            return response
    except Exception:  # the counters' store is down: serve rather than refuse everyone
        state["store_down_until"] = time.monotonic() + STORE_DOWN_BACKOFF_SECONDS
        log.warning(
            "API rate limit: counter storage unreachable; unlimited for %.0f s",
            STORE_DOWN_BACKOFF_SECONDS,
            exc_info=True,
        )
    return None

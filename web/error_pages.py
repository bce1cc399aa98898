"""The HTML error page every non-API error renders (403, 404, 429, 500, 503, ...).

web.create_app's error handlers, web.observability's database-down handler and the pages
(CSRF refusal, single sign-on) all render through `render_error_page`; the API never gets
here (it answers in the contract's JSON error shape, see web.errors).
"""

from __future__ import annotations

import logging

from flask import current_app, render_template

log = logging.getLogger(__name__)

ERROR_TITLES = {
    400: "That request could not be understood",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    413: "Too large",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def render_error_page(status: int, message: str):
    """The error page, or plain text when the pages are not registered or cannot render."""
    plain = message, status, {"Content-Type": "text/plain; charset=utf-8"}
    if "pages" not in current_app.blueprints:
        return plain
    title = ERROR_TITLES.get(status, "Something went wrong")
    try:
        body = render_template("pages/error.html", status=status, title=title, message=message)
    except Exception:  # a broken template or database must not hide the original error
        log.exception("Could not render the %s error page", status)
        return plain
    return body, status

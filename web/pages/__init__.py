"""The browser pages: server-rendered Jinja with a little plain JavaScript.

`init_pages(app)` registers the blueprint, the HTML error pages (403, 404, 429, ...),
the CSRF policy and the login rate limit; see docs/pages.md.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, render_template

log = logging.getLogger(__name__)

blp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

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
    """The HTML error page (web.create_app calls this for every non-API error)."""
    title = ERROR_TITLES.get(status, "Something went wrong")
    try:
        body = render_template("pages/error.html", status=status, title=title, message=message)
    except Exception:  # a broken template or database must not hide the original error
        log.exception("Could not render the %s error page", status)
        return message, status, {"Content-Type": "text/plain; charset=utf-8"}
    return body, status


def init_pages(app: Flask) -> None:
    from web.api import IdConverter
    from web.pages import live, oncall, present, settings, sso, views  # noqa: F401  (routes, socket handlers)
    from web.pages.security import init_security

    app.url_map.converters.setdefault("id", IdConverter)
    app.register_blueprint(blp)
    app.add_template_filter(present.humanize_key, "humanize")
    app.add_template_filter(present.iso_utc, "iso_utc")
    app.add_template_filter(present.utc_text, "utc_text")
    app.extensions["page_error"] = render_error_page
    init_security(app)

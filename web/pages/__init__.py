"""The browser pages: server-rendered Jinja with a little plain JavaScript.

`init_pages(app)` registers the blueprint, the HTML error pages (403, 404, 429, ...),
the CSRF policy and the login rate limit; see docs/pages.md.
"""

from __future__ import annotations

from flask import Flask


def init_pages(app: Flask) -> None:
    from web.api.base import IdConverter
    from web.pages import live, oncall, present, settings, sso, views  # noqa: F401  (routes, socket handlers)
    from web.pages.blueprint import blp
    from web.pages.security import init_security

    app.url_map.converters.setdefault("id", IdConverter)
    app.register_blueprint(blp)
    app.add_template_filter(present.humanize_key, "humanize")
    app.add_template_filter(present.iso_utc, "iso_utc")
    app.add_template_filter(present.utc_text, "utc_text")
    init_security(app)

"""/settings (admin): a page made of sections, every template under
pages/settings/sections/ included in file-name order, each with its own script talking to
the JSON API."""

from __future__ import annotations

from flask import current_app, g, render_template

from web.pages import blp
from web.pages.views import page_login

SECTIONS = "pages/settings/sections/"


def section_templates() -> list[str]:
    return sorted(
        name
        for name in current_app.jinja_env.list_templates()
        if name.startswith(SECTIONS) and name.endswith(".html")
    )


@blp.get("/settings")
@page_login("admin")
def settings():
    return render_template(
        "pages/settings.html", sections=section_templates(), account=g.user.account
    )

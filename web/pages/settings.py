"""/settings (admin): the account's settings, its users, the admin's own API tokens and
the security log. Changes go through the JSON API from static/settings.js.

Other features add a section by dropping `templates/pages/settings/sections/NN_name.html`
(HTML plus its own static JS file); they are included after these, in file-name order.
"""

from __future__ import annotations

from flask import g, render_template

from adapters.psa import default_connector as psa_connectors
from models import credentials, security_log
from models.timezones import canonical_timezones
from web.config import ROOT
from web.pages.blueprint import blp
from web.pages.views import page_login
from web.pagination import encode_cursor

SECTIONS_DIR = ROOT / "web" / "pages" / "templates" / "pages" / "settings" / "sections"
SECURITY_LOG_PAGE = 50


def settings_sections() -> list[str]:
    """Template names of the extra sections, in file-name order."""
    if not SECTIONS_DIR.is_dir():
        return []
    return [
        f"pages/settings/sections/{path.name}"
        for path in sorted(SECTIONS_DIR.glob("*.html"))
        if not path.name.startswith(("_", "."))
    ]


@blp.get("/settings")
@page_login("admin")
def settings():
    admin = g.user
    events = security_log.page(admin, SECURITY_LOG_PAGE)
    return render_template(
        "pages/settings.html",
        active="settings",
        account=admin.account,
        timezones=canonical_timezones(),
        users=credentials.users_of(admin),
        tokens=credentials.tokens_of(admin),
        events=events,
        log_cursor=encode_cursor(events[-1].id) if len(events) == SECURITY_LOG_PAGE else None,
        sections=settings_sections(),
        psa_connectors=list(psa_connectors.specs.values()),
    )

"""/settings (admin): users, the admin's tokens, the account's settings, the security log,
and the extra sections other features drop into pages/settings/sections/."""

from __future__ import annotations

from jinja2 import ChoiceLoader, DictLoader

import web.pages.settings as settings_page
from tests.factories import cookie_login


def test_admins_see_users_tokens_account_and_the_security_log(app, client, tenant):
    client.post("/api/v1/tokens", json={"name": "Nightly <export>"}, headers=tenant.auth("admin"))
    cookie_login(client, tenant.users["admin"])
    page = client.get("/settings")
    assert page.status_code == 200
    html = page.text
    for heading in ("Account", "Users", "Your API tokens", "Security log"):
        assert f">{heading}</h2>" in html
    assert "eng@alpha-msp.example" in html and "Deactivate" in html
    assert "Nightly &lt;export&gt;" in html  # escaped, never markup
    assert "Token created" in html  # the log row of that token
    assert "settings.js" in html and "<script>" not in html and "style=" not in html


def test_settings_are_for_admins_only(app, client, tenant):
    cookie_login(client, tenant.users["eng"])
    assert client.get("/settings").status_code == 403
    anonymous = app.test_client().get("/settings")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_extra_sections_are_included_in_file_name_order(app, client, tenant, tmp_path, monkeypatch):
    for name in ("20_second.html", "10_first.html", "_draft.html", "notes.md"):
        (tmp_path / name).write_text(name)
    monkeypatch.setattr(settings_page, "SECTIONS_DIR", tmp_path)
    assert settings_page.settings_sections() == [
        "pages/settings/sections/10_first.html",
        "pages/settings/sections/20_second.html",
    ]
    app.jinja_env.loader = ChoiceLoader(
        [
            DictLoader(
                {
                    "pages/settings/sections/10_first.html": "<section id=first>one</section>",
                    "pages/settings/sections/20_second.html": "<section id=second>two</section>",
                }
            ),
            app.jinja_env.loader,
        ]
    )
    cookie_login(client, tenant.users["admin"])
    html = client.get("/settings").text
    assert html.index("Security log") < html.index("id=first") < html.index("id=second")

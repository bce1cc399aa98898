"""The console's rules that a page or an API client relies on: over-long fields are
refused with their limit (never cut), the session says what the caller may do (the page
restates no rule), settings offer real time zones and ask before a role changes, and an
account without a PSA answers its PSA state without a 404."""

from __future__ import annotations

import re

import pytest

from tests.factories import cookie_login, new_handoff
from tests.web.contract import database_snapshot


@pytest.mark.parametrize(
    "path_of, body, field, limit",
    [
        (lambda s: "/sessions", {"title": "x" * 201, "snapshot": {}}, "title", 200),
        (
            lambda s: "/sessions",
            {"title": "ok", "snapshot": {}, "customer": "c" * 201},
            "customer",
            200,
        ),
        (lambda s: f"/sessions/{s}/escalate", {"reason": "r" * 2001}, "reason", 2000),
        (lambda s: f"/sessions/{s}/messages", {"body": "b" * 10_001}, "body", 10_000),
    ],
)
def test_an_over_long_field_is_422_naming_its_limit_and_nothing_is_cut(
    client, tenant, path_of, body, field, limit
):
    session = client.post(
        "/api/v1/sessions", json={"title": "ok", "snapshot": {}}, headers=tenant.auth("tech")
    ).get_json()
    before = database_snapshot()
    response = client.post(
        f"/api/v1{path_of(session['id'])}", json=body, headers=tenant.auth("tech")
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    given = len(body[field])
    expected = f"At most {limit} characters; this one has {given}."
    assert error["details"][field] == [expected]
    assert f"{field}: {expected}" in error["message"]
    assert database_snapshot() == before


def test_the_session_says_what_the_caller_may_do(client, tenant):
    handoff = new_handoff(client, tenant)
    path = f"/api/v1/sessions/{handoff['session_id']}"
    assert client.get(path, headers=tenant.auth("eng")).get_json()["may"] == {
        "claim": True,
        "resolve": False,
        "release": False,
        "reassign": False,
        "escalate": False,
        "may_escalate": False,
        "write": False,
        "read_only_reason": "This session is escalated: claim it to take over.",
        "holds_claim": False,
    }
    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
    mine = client.get(path, headers=tenant.auth("eng")).get_json()["may"]
    assert {k: mine[k] for k in ("claim", "resolve", "release", "reassign", "write")} == {
        "claim": False,
        "resolve": True,
        "release": True,
        "reassign": True,
        "write": True,
    }
    other = client.get(path, headers=tenant.auth("eng2")).get_json()["may"]
    assert (other["write"], other["release"]) == (False, False)
    assert other["read_only_reason"].startswith("Claimed by ")
    admin = client.get(path, headers=tenant.auth("admin")).get_json()["may"]
    assert (admin["release"], admin["reassign"], admin["resolve"]) == (True, True, True)


def test_settings_offer_real_zones_to_search_and_a_role_change_to_confirm(client, tenant):
    cookie_login(client, tenant.users["admin"])
    html = client.get("/settings").text
    zones = re.findall(r'<option value="([^"]+)">[^<]*</option>', html)
    assert "America/Chicago" in zones and "Europe/Amsterdam" in zones and "UTC" in zones
    for legacy in ("Factory", "US/Central", "EST5EDT", "Etc/GMT+6"):
        assert legacy not in zones
    assert '<input id="timezone" name="timezone" list="timezone-choices"' in html
    assert html.count('data-action="role-save"') >= 3  # each user's role waits for it


def test_an_account_without_a_psa_answers_not_connected(client, tenant):
    response = client.get("/api/v1/account/psa", headers=tenant.auth("admin"))
    assert response.status_code == 200
    assert response.get_json() == {"kind": None, "status": "not_connected", "callback_url": None}

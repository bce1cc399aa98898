"""The queue page as HTML: tabs and their counts, filters from the query string (bad values
fall back to defaults, never an error), paging links, everything as escaped text, the
session form's customer and priority, and what the page's script is told instead of
restating it (labels, words, what the viewer may do)."""

from __future__ import annotations

import json
import re
from html import unescape

from models import db, permissions
from models.entities import PRIORITY_LABELS, Handoff, User
from models.representations import event_payload
from tests.factories import ASSESSMENT, new_handoff
from tests.web.test_pages import app, csrf_token, page_text, signed_in  # noqa: F401

HOSTILE = "<img src=x onerror=alert(1)>"


def cards(html: str) -> list[str]:
    return re.findall(r'<li class="card" data-handoff-id="(\d+)"', html)


def escalate(client, tenant, title, priority="p3", customer=None):
    body = {"title": title, "snapshot": {}, "ai_assessment": ASSESSMENT, "priority": priority}
    if customer:
        body["customer"] = customer
    session = client.post("/api/v1/sessions", json=body, headers=tenant.auth("tech")).get_json()
    return client.post(
        f"/api/v1/sessions/{session['id']}/escalate",
        json={"reason": "R"},
        headers=tenant.auth("tech"),
    ).get_json()


def counts(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-count="(\w+)">(\d+)<', html))


def test_tabs_show_their_handoffs_and_counts(app, client, tenant):  # noqa: F811
    waiting = escalate(client, tenant, "Printer", "p4", "Globex")
    urgent = escalate(client, tenant, "Server", "p1", "Initech")
    mine = new_handoff(client, tenant)
    client.post(f"/api/v1/escalations/{mine['id']}/claim", headers=tenant.auth("eng"))
    browser = signed_in(app, "Alpha MSP", "eng")

    unclaimed = browser.get("/escalations")  # most urgent first by default
    assert cards(unclaimed.text) == [str(urgent["id"]), str(waiting["id"])]
    assert counts(unclaimed.text) == {
        "unclaimed": "2",
        "mine": "1",
        "claimed": "1",
        "resolved": "0",
    }
    assert 'aria-current="page" data-tab="unclaimed"' in unclaimed.text
    text = page_text(unclaimed)
    assert "P1 · critical" in text and "Initech" in text and "62% confident" in text

    longest_waiting = browser.get("/escalations?sort=oldest")
    assert cards(longest_waiting.text) == [str(waiting["id"]), str(urgent["id"])]
    filtered = browser.get("/escalations?customer=initech")
    assert cards(filtered.text) == [str(urgent["id"])]
    assert counts(filtered.text)["unclaimed"] == "1"

    mine_tab = browser.get("/escalations?tab=mine")
    assert cards(mine_tab.text) == [str(mine["id"])]
    assert f'href="/pilot/{mine["session_id"]}"' in mine_tab.text
    assert cards(signed_in(app, "Alpha MSP", "eng2").get("/escalations?tab=mine").text) == []


def test_bad_query_values_fall_back_to_defaults(app, client, tenant):  # noqa: F811
    handoff = escalate(client, tenant, "Printer")
    browser = signed_in(app, "Alpha MSP", "eng")
    for query in ("tab=nope", "priority=p9", "sort=sideways", "technician=abc", "after=zz:1"):
        response = browser.get(f"/escalations?{query}")
        assert response.status_code == 200, query
        assert cards(response.text) == [str(handoff["id"])], query


def test_a_long_queue_pages_with_next_and_first_links(app, client, tenant):  # noqa: F811
    made = [escalate(client, tenant, f"Ticket {n}")["id"] for n in range(52)]
    browser = signed_in(app, "Alpha MSP", "eng")
    first = browser.get("/escalations")
    assert cards(first.text) == [str(i) for i in made[:50]]
    [next_link] = re.findall(r'href="([^"]+)" rel="next"', first.text)
    second = browser.get(next_link.replace("&amp;", "&"))
    assert cards(second.text) == [str(i) for i in made[50:]]
    assert ">First page</a>" in second.text and 'rel="next"' not in second.text


def test_customer_title_and_filters_render_as_text(app, client, tenant):  # noqa: F811
    escalate(client, tenant, HOSTILE, "p2", HOSTILE)
    response = signed_in(app, "Alpha MSP", "eng").get(f"/escalations?q={HOSTILE[:5]}")
    assert HOSTILE not in response.text
    assert page_text(response).count(HOSTILE) >= 2  # the card's title and customer tag


def test_the_session_form_takes_customer_and_priority(app, tenant):  # noqa: F811
    browser = signed_in(app, "Alpha MSP", "tech")
    token = csrf_token(browser.get("/sessions").text)
    response = browser.post(
        "/sessions",
        data={"csrf_token": token, "title": "Router", "customer": "Initech", "priority": "p2"},
    )
    assert response.status_code == 303
    session_id = int(response.headers["Location"].rsplit("/", 1)[1])
    shown = browser.get(f"/api/v1/sessions/{session_id}").get_json()
    assert (shown["customer"], shown["priority"]) == ("Initech", "p2")
    bad = browser.post("/sessions", data={"csrf_token": token, "title": "Router", "priority": "p0"})
    assert bad.status_code == 422


def test_wait_thresholds_follow_the_priority_policy():
    from types import SimpleNamespace

    from web.pages.present import queue_config, wait_thresholds

    def account(**fields):
        base = {
            "renotify_after_minutes": 5,
            "renotify_max": 2,
            "escalate_to_admins_after_minutes": 15,
            "policy_by_priority": None,
        }
        return SimpleNamespace(**{**base, **fields})

    defaults = account()
    assert wait_thresholds(defaults) == (300, 900)
    # The default per-priority policy: p1 reminded after 2 and the admins after 5 ...
    assert wait_thresholds(defaults, "p1") == (120, 300)
    assert wait_thresholds(defaults, "p2") == (300, 600)
    assert wait_thresholds(defaults, "p4") == (300, 900)  # ... p4 the account-wide values
    viewer = SimpleNamespace(account=defaults, is_senior=True)
    assert queue_config(viewer)["wait_seconds"]["p1"] == [120, 300]
    tuned = account(renotify_after_minutes=2, escalate_to_admins_after_minutes=10)
    assert wait_thresholds(tuned, "p3") == (120, 600)
    # Reminders off (null): the default amber; red never before amber.
    off = account(
        policy_by_priority={"p3": {"renotify_after_minutes": None}},
        escalate_to_admins_after_minutes=1,
    )
    assert wait_thresholds(off, "p3") == (300, 300)


# --- what the script is told: labels, words, what the viewer may do --------------------------

STATUSES = ("open", "claimed", "resolved")


def config_of(html: str) -> dict:
    """The queue's config, as its script reads it (the <ol id="queue"> data-config)."""
    [raw] = re.findall(r"data-config='([^']*)'", html)
    return json.loads(unescape(raw))


def offers(html: str) -> dict[str, list[str]]:
    """Each card's visible actions by handoff id ("" for the live cards' <template>):
    "claim" (the Claim button) and/or "session" (the Open session link)."""
    found = {}
    for chunk in html.split('<li class="card" ')[1:]:
        card_id = re.match(r'data-handoff-id="(\d*)"', chunk).group(1)
        parts = {
            "claim": re.search(r'<button[^>]*data-action="claim"[^>]*>', chunk).group(0),
            "session": re.search(r'<a[^>]*data-part="session-link"[^>]*>', chunk).group(0),
        }
        found[card_id] = [name for name, tag in parts.items() if " hidden" not in tag]
    return found


def test_the_script_is_told_what_the_viewer_may_do_on_each_status(app, client, tenant):  # noqa: F811
    escalate(client, tenant, "Printer", "p2")
    config = config_of(signed_in(app, "Alpha MSP", "eng").get("/escalations").text)
    assert config["may"] == {
        "open": {"claim": True},
        "claimed": {"claim": False},
        "resolved": {"claim": False},
    }
    assert config["taken_texts"] == {
        "claimed_by": "Already claimed by {name}",
        "claimed": "No longer open",
        "resolved": "Resolved",
    }
    assert config["priority_words"] == {
        "p1": "priority 1",
        "p2": "priority 2",
        "p3": "priority 3",
        "p4": "priority 4",
    }
    assert "priority_labels" not in config  # a card's label rides in its summary
    from web.pages.present import queue_config

    admin = db.session.get(User, tenant.users["admin"])
    technician = db.session.get(User, tenant.users["tech"])
    assert queue_config(admin)["may"]["open"] == {"claim": True}
    assert queue_config(technician)["may"] == {status: {"claim": False} for status in STATUSES}


def test_a_lost_claims_words_are_the_ones_the_card_is_told(client, tenant):
    handoff = new_handoff(client, tenant)
    client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng"))
    lost = client.post(f"/api/v1/escalations/{handoff['id']}/claim", headers=tenant.auth("eng2"))
    assert lost.status_code == 409
    assert lost.get_json()["error"]["message"] == "Already claimed by Alpha MSP Eng"


def test_the_label_a_card_shows_is_the_servers(app, client, tenant, monkeypatch):  # noqa: F811
    monkeypatch.setitem(PRIORITY_LABELS, "p2", "P2 · relabelled")
    handoff = escalate(client, tenant, "Printer", "p2")
    [item] = client.get("/api/v1/escalations", headers=tenant.auth("eng")).get_json()["items"]
    assert item["priority_label"] == "P2 · relabelled"  # the list the page catches up with
    live = event_payload(db.session.get(Handoff, handoff["id"]))
    assert live["priority_label"] == "P2 · relabelled"  # what handoff.created carries
    page = signed_in(app, "Alpha MSP", "eng").get("/escalations").text
    assert 'data-field="priority_label">P2 · relabelled</span>' in page


def test_the_claim_button_shows_exactly_where_the_rule_allows(app, client, tenant, monkeypatch):  # noqa: F811
    waiting = escalate(client, tenant, "Printer")
    held = new_handoff(client, tenant)
    client.post(f"/api/v1/escalations/{held['id']}/claim", headers=tenant.auth("eng"))
    browser = signed_in(app, "Alpha MSP", "eng")

    unclaimed = browser.get("/escalations").text
    assert offers(unclaimed) == {str(waiting["id"]): ["claim"], "": ["claim"]}
    mine = browser.get("/escalations?tab=mine").text
    assert offers(mine) == {str(held["id"]): ["session"], "": ["claim"]}

    # The page restates no rule: with the rule changed, the open card offers no Claim.
    monkeypatch.setattr(permissions, "may_claim", lambda user: False)
    refused = browser.get("/escalations").text
    assert offers(refused) == {str(waiting["id"]): ["session"], "": ["claim"]}
    assert config_of(refused)["may"]["open"] == {"claim": False}
    assert f'href="/pilot/{waiting["session_id"]}"' in refused

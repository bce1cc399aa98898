"""The senior's session page rules over HTTP: only the claimer writes in an escalated
session, Resolve stores an outcome, writebacks reach the session's watchers live, and the
page renders the read-only state and the brief."""

from __future__ import annotations

import re

import pytest

from models import db
from models.entities import Handoff, Message, PsaWriteback
from models.events import WRITEBACK_CREATED
from tests.factories import Tenant, new_handoff, new_session
from tests.web.test_pages import page_text, signed_in, watching

API = "/api/v1"


def post(client, tenant: Tenant, who: str, path: str, **kwargs):
    return client.post(f"{API}{path}", headers=tenant.auth(who), **kwargs)


def counts() -> tuple[int, int]:
    return (
        db.session.query(Message).count(),
        db.session.query(PsaWriteback).count(),
    )


def test_a_senior_without_the_claim_cannot_write_in_an_escalated_session(client, tenant):
    handoff = new_handoff(client, tenant)
    url = f"/sessions/{handoff['session_id']}"
    before = counts()
    for who in ("eng", "admin"):
        refused = post(client, tenant, who, f"{url}/messages", json={"body": "hello"})
        assert refused.status_code == 409
        error = refused.get_json()["error"]
        assert error["code"] == "claim_required"
        assert error["message"] == "This session is escalated: claim it to take over."
        assert error["details"] == {
            "handoff_id": handoff["id"],
            "status": "open",
            "claimed_by": None,
        }
        noted = post(client, tenant, who, f"{url}/psa-writeback", json={"note": "n"})
        assert noted.status_code == 409
    assert counts() == before
    # The technician's own chat keeps working while the seniors decide.
    assert (
        post(client, tenant, "tech", f"{url}/messages", json={"body": "still here"}).status_code
        == 201
    )

    post(client, tenant, "eng", f"/escalations/{handoff['id']}/claim")
    assert post(client, tenant, "eng", f"{url}/messages", json={"body": "mine"}).status_code == 201
    other = post(client, tenant, "eng2", f"{url}/messages", json={"body": "me too"})
    assert other.status_code == 409
    error = other.get_json()["error"]
    assert error["message"] == "Claimed by Alpha MSP Eng: only they can write here."
    assert error["details"]["claimed_by"] == {"id": tenant.users["eng"], "name": "Alpha MSP Eng"}
    assert (
        post(client, tenant, "tech", f"{url}/messages", json={"body": "thanks"}).status_code == 201
    )

    post(client, tenant, "eng", f"/escalations/{handoff['id']}/resolve")
    # Once resolved nobody holds it: any senior of the account may write again.
    assert (
        post(client, tenant, "eng2", f"{url}/messages", json={"body": "after"}).status_code == 201
    )


def test_only_the_claimers_action_counts_and_a_refused_one_changes_nothing(client, tenant):
    handoff = new_handoff(client, tenant)
    url = f"/sessions/{handoff['session_id']}"
    post(client, tenant, "eng", f"/escalations/{handoff['id']}/claim")
    post(client, tenant, "eng2", f"{url}/psa-writeback", json={"note": "not mine"})
    stored = db.session.get(Handoff, handoff["id"])
    assert stored.first_action_at is None
    post(client, tenant, "eng", f"{url}/psa-writeback", json={"note": "mine"})
    db.session.refresh(stored)
    assert stored.first_action_kind == "psa_writeback"


def test_resolve_stores_the_outcome_and_shows_it(app, client, tenant):
    handoff = new_handoff(client, tenant)
    base = f"/escalations/{handoff['id']}"
    post(client, tenant, "eng", f"{base}/claim")
    resolved = post(
        client, tenant, "eng", f"{base}/resolve", json={"outcome": "  Rebuilt the profile  "}
    )
    assert resolved.status_code == 200
    assert resolved.get_json()["outcome"] == "Rebuilt the profile"
    again = post(client, tenant, "eng", f"{base}/resolve", json={"outcome": "something else"})
    assert again.get_json()["outcome"] == "Rebuilt the profile"
    shown = client.get(f"{API}{base}", headers=tenant.auth("tech")).get_json()
    assert shown["outcome"] == "Rebuilt the profile"
    page = signed_in(app, "Alpha MSP", "tech").get(f"/pilot/{handoff['session_id']}")
    assert re.search(r'data-field="outcome">Rebuilt the profile<', page.text)


@pytest.mark.parametrize(
    "body, field",
    [({"outcome": 5}, "outcome"), ({"outcome": "x" * 10_001}, "outcome")],
)
def test_a_bad_outcome_is_refused_and_changes_nothing(client, tenant, body, field):
    handoff = new_handoff(client, tenant)
    base = f"/escalations/{handoff['id']}"
    post(client, tenant, "eng", f"{base}/claim")
    refused = post(client, tenant, "eng", f"{base}/resolve", json=body)
    assert refused.status_code == 422
    assert field in refused.get_json()["error"]["details"]
    not_json = post(client, tenant, "eng", f"{base}/resolve", data="[1]")
    assert not_json.status_code == 400
    assert db.session.get(Handoff, handoff["id"]).status == "claimed"


def test_resolve_without_a_body_still_works(client, tenant):
    handoff = new_handoff(client, tenant)
    base = f"/escalations/{handoff['id']}"
    post(client, tenant, "eng", f"{base}/claim")
    resolved = post(client, tenant, "eng", f"{base}/resolve")
    assert resolved.status_code == 200
    assert resolved.get_json()["outcome"] is None


def test_a_writeback_reaches_the_pages_watching_its_session(
    app, client, tenant, other_tenant, live_in_process
):
    session = new_session(client, tenant)
    technician, _ = watching(app, "Alpha MSP", "tech", session["id"])
    outsider, _ = watching(app, "Beta MSP", "eng", session["id"])
    written = post(
        client, tenant, "eng", f"/sessions/{session['id']}/psa-writeback", json={"note": "Logged"}
    )
    assert written.status_code == 201
    events = [e["args"][0] for e in technician.get_received() if e["name"] == WRITEBACK_CREATED]
    assert events == [written.get_json()]
    assert [e for e in outsider.get_received() if e["name"] == WRITEBACK_CREATED] == []


def test_a_senior_who_has_not_claimed_sees_it_read_only_with_claim_to_take_over(
    app, client, tenant
):
    handoff = new_handoff(client, tenant, reason="Spooler keeps crashing")
    page = signed_in(app, "Alpha MSP", "eng").get(f"/pilot/{handoff['session_id']}")
    html = page.text
    assert re.search(r'<form id="message-form" class="stack" hidden>', html)
    assert 'id="psa-form"' not in html  # no PSA connected: no writeback form at all
    assert re.search(r'id="read-only-note" class="read-only-note">', html)  # shown
    assert re.search(r'<button type="button" id="take-over-button" class="button primary">', html)
    assert re.search(r'<button type="button" id="claim-button" class="button primary">Claim', html)
    text = page_text(page)
    assert "Claim to take over" in text and "Spooler keeps crashing" in text
    # The brief (reason first) comes before the chat in the page.
    assert html.index('id="handoff-brief"') < html.index('id="chat"') < html.index('id="snapshot"')

    post(client, tenant, "eng", f"/escalations/{handoff['id']}/claim")
    claimer = signed_in(app, "Alpha MSP", "eng").get(f"/pilot/{handoff['session_id']}").text
    assert re.search(r'<form id="message-form" class="stack">', claimer)
    assert re.search(r'id="read-only-note" class="read-only-note"\s+hidden>', claimer)
    assert re.search(r'id="resolve-button" class="button" aria-expanded', claimer)  # shown
    other = signed_in(app, "Alpha MSP", "eng2").get(f"/pilot/{handoff['session_id']}").text
    assert re.search(r'<form id="message-form" class="stack" hidden>', other)
    assert "Claimed by Alpha MSP Eng: only they can write here." in other
    assert re.search(r'id="claim-button" class="button primary" hidden>', other)

"""The escalation email as its reader sees it: subject, both parts, links, a stable Message-ID."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from workers.email_message import EscalationNotice, ai_gist, compose, message_id, notice_for

BASE_URL = "https://desk.example.com"
MAIL_FROM = "Escalation Mode <escalations@desk.example.com>"
SENT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def notice(**overrides) -> EscalationNotice:
    values = {
        "handoff_id": 17,
        "session_id": 42,
        "title": "VPN drops every hour",
        "reason": "Stuck after the VPN reset",
        "escalated_by": "Terry Technician",
        "created_at": datetime(2026, 3, 4, 5, 0, 0),
        "notes": "Tried a new profile",
        "ai_gist": "Likely a stale VPN profile",
        "priority": "p1",
        "customer": "Initech",
    }
    return EscalationNotice(**{**values, **overrides})


def build(n: EscalationNotice | None = None, **kwargs):
    args = {
        "recipient_name": "Erin Engineer",
        "recipient_email": "erin@msp.example",
        "mail_from": MAIL_FROM,
        "base_url": BASE_URL,
        "message_id": message_id(5, 17, MAIL_FROM),
        "date": SENT,
        **kwargs,
    }
    message = compose(n or notice(), **args)
    # What a receiver parses, not the object we built.
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def parts(message) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return plain, html


def test_subject_addresses_and_headers():
    message = build()
    assert message["Subject"] == "[P1 · Initech] VPN drops every hour"
    assert message["To"].addresses[0].addr_spec == "erin@msp.example"
    assert message["To"].addresses[0].display_name == "Erin Engineer"
    assert message["From"].addresses[0].addr_spec == "escalations@desk.example.com"
    assert message["Message-ID"] == "<escalation-17.delivery-5@desk.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize("part", [0, 1], ids=["plain", "html"])
def test_both_parts_carry_reason_gist_escalator_and_links(part):
    body = parts(build())[part]
    for expected in (
        "Stuck after the VPN reset",
        "Tried a new profile",
        "Likely a stale VPN profile",
        "Terry Technician",
        f"{BASE_URL}/escalations",
        f"{BASE_URL}/pilot/42",
    ):
        assert expected in body


def test_html_part_escapes_what_users_typed():
    hostile = notice(
        title="<script>alert(1)</script>", reason='"><img src=x onerror=alert(2)>', notes="a & b"
    )
    _, html = parts(build(hostile))
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "a &amp; b" in html


def test_a_title_with_line_breaks_cannot_inject_headers():
    message = build(notice(title="Printer\r\nBcc: everyone@example.com\nstill down"))
    assert message["Bcc"] is None
    assert message["Subject"] == "[P1 · Initech] Printer Bcc: everyone@example.com still down"


def test_long_titles_are_cut_in_the_subject_but_whole_in_the_body():
    title = "Outlook " * 60
    message = build(notice(title=title))
    assert len(message["Subject"]) <= len("[P1 · Initech] ") + 150
    assert message["Subject"].endswith("…")


def test_non_ascii_survives_the_round_trip():
    message = build(notice(title="Drucker im Büro – offline", escalated_by="Zoë Øster"))
    assert message["Subject"] == "[P1 · Initech] Drucker im Büro – offline"
    plain, html = parts(message)
    assert "Zoë Øster" in plain and "Zoë Øster" in html


def test_message_id_is_stable_per_delivery_and_distinct_across_deliveries():
    assert message_id(5, 17, MAIL_FROM) == message_id(5, 17, MAIL_FROM)
    assert message_id(5, 17, MAIL_FROM) != message_id(6, 17, MAIL_FROM)
    assert message_id(5, 17, "not an address").endswith("@escalation-mode.invalid>")


def test_without_notes_or_assessment_the_body_says_so():
    plain, _ = parts(build(notice(notes=None, ai_gist=None)))
    assert "Notes:" not in plain
    assert "AI assessment: none attached" in plain


@pytest.mark.parametrize(
    ("assessment", "expected"),
    [
        ({"summary": "Stale VPN profile", "confidence": 0.6}, "Stale VPN profile"),
        ({"confidence": 0.6, "diagnosis": "Bad NIC driver"}, "Bad NIC driver"),
        # The pages' and the API's rule (models.summaries.ai_summary_of): the first text.
        ({"confidence": 0.6, "long": "x" * 400, "hint": "Check DNS"}, "x" * 299 + "…"),
        ({"summary": "  multi\nline\tsummary "}, "multi line summary"),
        ({"confidence": 0.9}, None),
        ({}, None),
        (None, None),
        ("Just a sentence", None),  # an assessment is a JSON object
    ],
)
def test_ai_gist_prefers_the_summary_then_the_first_text(assessment, expected):
    assert ai_gist(assessment) == expected


def test_ai_gist_cuts_a_long_summary():
    gist = ai_gist({"summary": "word " * 200})
    assert gist is not None and len(gist) <= 300 and gist.endswith("…")


def test_notice_for_reads_a_handoff_and_its_package():
    class Person:
        name = "Terry Technician"

    class HandoffLike:
        id, session_id, title, reason = 3, 9, "Title", "Reason"
        escalated_by = Person()
        created_at = datetime(2026, 1, 1)
        escalation_package = {"notes": "  ", "ai_assessment": {"summary": "Gist"}}

    read = notice_for(HandoffLike())
    assert (read.handoff_id, read.session_id, read.escalated_by) == (3, 9, "Terry Technician")
    assert read.notes is None and read.ai_gist == "Gist"


@pytest.mark.parametrize(
    "reason, says",
    [
        ("business_hours", "came in during business hours while you were not connected"),
        ("on_call", "you are on call and it came in outside business hours"),
        ("nobody_on_call", "outside business hours and nobody is on call"),
        ("admin_step", "you are an admin and nobody has claimed it in time"),
        ("reassigned", "it was handed to you"),
        ("fallback", "live notifications could not be confirmed"),
        (None, "you were not connected when the escalation was created"),
    ],
)
def test_the_footer_says_why_this_email_came(reason, says):
    plain, html = parts(build(notice(delivery_reason=reason)))
    assert says in plain and says in html


def test_a_reassignment_email_names_who_handed_it_on_and_why():
    from workers.email_message import retitle_for_event

    handed = notice(
        event="handoff.reassigned",
        delivery_reason="reassigned",
        handed_over_by="Erin Engineer",
        handover_reason="Sam knows Exchange",
    )
    message = compose(
        handed,
        recipient_name="Sam Senior",
        recipient_email="sam@msp.example",
        mail_from=MAIL_FROM,
        base_url=BASE_URL,
        message_id=message_id(9, 17, MAIL_FROM),
        replies_to="<escalation-17.to-3@desk.example.com>",
        date=SENT,
    )
    retitle_for_event(message, "handoff.reassigned", handed)
    received = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert received["Subject"] == "[P1 · Initech] Assigned to you: VPN drops every hour"
    assert received["In-Reply-To"] == "<escalation-17.to-3@desk.example.com>"
    plain, _ = parts(received)
    assert 'Erin Engineer handed "VPN drops every hour" to you.' in plain
    assert "Why: Sam knows Exchange" in plain
    assert "It is yours now." in plain

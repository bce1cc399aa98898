"""The escalation email's wire form (`render`) reads exactly as the standard library's
`compose` builds it: the same headers and the same two parts, whatever users typed."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.workers.test_email_message import notice
from workers.email_message import (
    CLAIMED,
    CREATED,
    EscalationNotice,
    compose,
    message_id,
    render,
    retitle_for_event,
)

BASE_URL = "https://desk.example.com"
MAIL_FROM = "Escalation Mode <escalations@desk.example.com>"
SENT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
HEADERS = (
    "Subject",
    "From",
    "To",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Escalation-Handoff-Id",
    "X-Escalation-Event",
    "MIME-Version",
)


def fields(**overrides) -> dict:
    return {
        "recipient_name": "Erin Engineer",
        "recipient_email": "erin@msp.example",
        "mail_from": MAIL_FROM,
        "base_url": BASE_URL,
        "message_id": message_id(5, 17, MAIL_FROM),
        "replies_to": "<escalation-17.to-3@desk.example.com>",
        "date": SENT,
        **overrides,
    }


def received(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def both(n: EscalationNotice, event: str | None = None, **overrides):
    """(wire, reference): each as a receiver parses it."""
    wire = render(n, event=event, **fields(**overrides))
    assert wire is not None
    reference = compose(n, **fields(**overrides))
    if event:
        retitle_for_event(reference, event, n)
    return received(wire.data), received(reference.as_bytes()), wire.data


def content(message, subtype: str) -> str:
    return message.get_body(preferencelist=(subtype,)).get_content().replace("\r\n", "\n")


def assert_same(wire, reference) -> None:
    for name in HEADERS:
        assert wire[name] == reference[name], name
    assert wire["To"].addresses == reference["To"].addresses
    assert wire.get_content_type() == reference.get_content_type() == "multipart/alternative"
    for subtype in ("plain", "html"):
        assert content(wire, subtype) == content(reference, subtype), subtype


def assert_well_formed(data: bytes) -> None:
    data.decode("ascii")  # 7-bit clean: no server needs 8BITMIME or SMTPUTF8
    lines = data.split(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(map(len, lines)) <= 998


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"title": "Drucker im Büro – offline", "escalated_by": "Zoë Øster"},
        {"title": "Printer\r\nBcc: everyone@example.com\nstill down"},
        {"title": "Outlook " * 60, "notes": "line one\nline two\r\n. a dot line"},
        {"notes": None, "ai_gist": None, "steps_tried": ("Rebooted", "Cleared the cache")},
        {"reason": "x" * 2000},  # one body line longer than SMTP's 998
    ],
    ids=["ascii", "non-ascii", "injection", "long", "steps", "long-line"],
)
def test_the_wire_form_reads_as_the_reference(overrides):
    wire, reference, data = both(notice(**overrides))
    assert_same(wire, reference)
    assert_well_formed(data)
    assert wire["Bcc"] is None


def test_a_title_that_looks_encoded_reads_as_typed():
    """Written as it is, a decoder would turn it into something else (the standard
    library's message does: "looks encoded but is not")."""
    title = "=?utf-8?q?looks_encoded?= but is not"
    wire = render(notice(title=title, priority=None, customer=None), **fields())
    assert wire is not None and received(wire.data)["Subject"] == title


@pytest.mark.parametrize(
    ("event", "extra", "subject"),
    [
        ("handoff.created", {}, "[P1 · Initech] VPN drops every hour"),
        (
            "handoff.reminder",
            {"now": datetime(2026, 3, 4, 5, 12, 0)},
            "[P1 · Initech] Reminder, still unclaimed after 12 min: VPN drops every hour",
        ),
        (
            "handoff.reassigned",
            {"handed_over_by": "Erin Engineer", "handover_reason": "Sam knows Exchange"},
            "[P1 · Initech] Assigned to you: VPN drops every hour",
        ),
    ],
)
def test_each_event_keeps_its_subject_and_filter_header(event, extra, subject):
    n = notice(event=None if event == "handoff.created" else event, **extra)
    wire, reference, _ = both(n, event=event)
    assert_same(wire, reference)
    assert (wire["Subject"], wire["X-Escalation-Event"]) == (subject, event)


def test_the_claimed_follow_up_reads_as_the_reference():
    n = notice(claimed_by="Sam Senior", claimed_at=datetime(2026, 3, 4, 5, 30))
    wire = render(n, event="handoff.claimed", kind=CLAIMED, **fields())
    reference = compose(n, kind=CLAIMED, **fields())
    assert wire is not None
    assert_same(received(wire.data), received(reference.as_bytes()))
    assert (
        received(wire.data)["Subject"]
        == "[P1 · Initech] Claimed by Sam Senior: VPN drops every hour"
    )


@pytest.mark.parametrize(
    "name",
    [
        'Erin "the" Engineer',
        "Erin (on call), Engineer",
        "Zoë Øster",
        "",
        "a\\b",
        # More than one encoded-word: decoders differ on the space between them.
        "00000000000000 ࠀࠀࠀ𐀀𐀀𐀀𐀀 " * 3,
        "Zoë Øster " * 12,
    ],
)
def test_recipient_names_keep_their_display_name(name):
    wire, reference, data = both(notice(), recipient_name=name)
    assert_same(wire, reference)
    assert wire["To"].addresses[0].addr_spec == "erin@msp.example"
    assert_well_formed(data)


@pytest.mark.parametrize(
    "overrides",
    [{"recipient_email": "zoë@msp.example"}, {"mail_from": "Desk <désk@msp.example>"}],
    ids=["recipient", "sender"],
)
def test_an_address_beyond_plain_ascii_is_left_to_the_standard_library(overrides):
    assert render(notice(), **fields(**overrides)) is None


def test_the_first_email_of_a_thread_has_no_reply_headers():
    first = "<escalation-17.to-3@desk.example.com>"
    wire, reference, _ = both(notice(), message_id=first, replies_to=first)
    assert_same(wire, reference)
    assert wire["In-Reply-To"] is None and wire["References"] is None


def test_the_kind_default_is_the_new_escalation():
    wire = render(notice(), **fields())
    assert wire is not None and wire.message_id == message_id(5, 17, MAIL_FROM)
    assert render(notice(), kind=CREATED, **fields()).data.startswith(b"Subject: ")


text = st.text(
    st.characters(blacklist_categories=("Cs",)),  # what a browser can send: no surrogates
    min_size=1,
    max_size=300,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=text, reason=text, notes=text, name=text, customer=text)
def test_whatever_users_type_reads_as_the_reference(title, reason, notes, name, customer):
    n = notice(title=title, reason=reason, notes=notes, customer=customer)
    wire, reference, data = both(n, recipient_name=name)
    assert_same(wire, reference)
    assert_well_formed(data)

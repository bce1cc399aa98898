"""The AI summary extraction and the bounds of the handoff summary."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

from models.summaries import (
    MAX_SUMMARY_BYTES,
    ai_confidence_of,
    ai_summary_of,
    handoff_summary,
    steps_tried_of,
)


def test_ai_summary_prefers_summary_then_any_text_and_is_bounded():
    assert ai_summary_of({"confidence": 0.4, "summary": "  Stale   VPN\nprofile "}) == (
        "Stale VPN profile"
    )
    assert ai_summary_of({"score": 3, "likely_cause": "DNS"}) == "DNS"
    assert ai_summary_of({"notes": "first text"}) == "first text"
    assert ai_summary_of({}) is None
    assert ai_summary_of("not an object") is None
    long = ai_summary_of({"summary": "x" * 5000})
    assert len(long) == 500 and long.endswith("…")


def test_confidence_is_a_fraction_and_rejects_nonsense():
    assert ai_confidence_of({"confidence": 0.62}) == 0.62
    assert ai_confidence_of({"confidence": 71}) == 0.71
    assert ai_confidence_of({"confidence": True}) is None
    assert ai_confidence_of({"confidence": "high"}) is None
    assert ai_confidence_of({"confidence": float("nan")}) is None
    assert ai_confidence_of({"confidence": 400}) is None


def test_steps_are_the_last_three_clipped():
    steps = steps_tried_of({"steps_tried": ["a", " ", "b", "c", "d" * 500, 7]})
    assert steps[:2] == ["b", "c"] and len(steps) == 3 and len(steps[2]) == 160


def _person(name: str):
    return SimpleNamespace(id=1, name=name)


def test_a_summary_of_the_largest_inputs_fits_4_kb_as_escaped_json():
    emoji = "\U0001f525"  # 12 bytes as escaped JSON
    handoff = SimpleNamespace(
        id=2**40,
        session_id=2**40,
        status="claimed",
        title=emoji * 200,
        reason=emoji * 2000,
        escalated_by=_person(emoji * 200),
        claimed_by=_person(emoji * 200),
        created_at=datetime(2026, 12, 1),
        claimed_at=datetime(2026, 12, 1),
        resolved_at=None,
        reminders_sent=2,
        escalated_to_admins_at=datetime(2026, 12, 1),
        outcome=emoji * 10_000,
        escalation_package={
            "ai_assessment": {"summary": emoji * 10_000, "confidence": 0.5},
            "snapshot": {"steps_tried": [emoji * 1000] * 50},
        },
        session=SimpleNamespace(customer=emoji * 200, priority="p1", psa_ticket_id="T" * 999),
    )
    summary = handoff_summary(handoff)
    encoded = json.dumps(summary, default=lambda value: value.isoformat() + "Z")
    assert len(encoded) <= MAX_SUMMARY_BYTES
    assert summary["priority"] == "p1" and summary["ai_confidence"] == 0.5
    assert summary["title"] and summary["ai_summary"] and summary["customer"]
    assert len(summary["psa_ticket_id"]) == 64


def test_the_psa_ticket_shows_only_when_the_session_has_one():
    handoff = SimpleNamespace(
        id=1, session_id=1, status="open", title="T", reason="R", escalated_by=_person("A"),
        claimed_by=None, created_at=datetime(2026, 12, 1), claimed_at=None, resolved_at=None,
        reminders_sent=0, escalated_to_admins_at=None, outcome=None,
        escalation_package={}, session=SimpleNamespace(customer=None, priority="p3"),
    )  # fmt: skip
    assert handoff_summary(handoff)["psa_ticket_id"] is None
    handoff.session.psa_ticket_id = 48213
    assert handoff_summary(handoff)["psa_ticket_id"] == "48213"

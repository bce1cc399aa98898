"""The handoff summary: what a queue card and a live event carry instead of the full
handoff (no escalation package), bounded so a list item or an event stays small.

`ai_summary_of` is the one place an AI assessment is boiled down to a line of text; the
pages, the summary and the escalation email use it.
"""

from __future__ import annotations

import json
from typing import Any

from models.entities import PRIORITY_LABELS, Handoff

AI_SUMMARY_MAX_CHARS = 500
MAX_SUMMARY_BYTES = 4096
STEPS_IN_SUMMARY = 3
STEP_MAX_CHARS = 160
REASON_MAX_CHARS = 600
NAME_MAX_CHARS = 200
PSA_TICKET_MAX_CHARS = 64
OUTCOME_MAX_CHARS = 500
# Keys an AI assessment usually keeps its conclusion under, most telling first.
AI_SUMMARY_KEYS = ("summary", "gist", "assessment", "diagnosis", "likely_cause", "conclusion")
CONFIDENCE_KEYS = ("confidence", "confidence_score", "probability")
STEPS_KEYS = ("steps_tried", "steps", "attempted_steps", "tried")
# Datetimes are serialized by the edge ('2025-03-01T14:05:09.123456Z', 27 characters);
# while measuring, each counts as this many.
DATETIME_ALLOWANCE = 32
# What gives way first when a summary is too large (most text-heavy, least decisive first).
SHRINK_ORDER = ("steps_tried", "outcome", "reason", "ai_summary", "customer", "title")


def clip(text: Any, limit: int) -> str | None:
    """Whitespace folded, at most `limit` characters (an ellipsis marks a cut); None for
    anything that is not non-blank text."""
    if not isinstance(text, str):
        return None
    flat = " ".join(text.split())
    if not flat:
        return None
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def ai_summary_of(assessment: Any, limit: int = AI_SUMMARY_MAX_CHARS) -> str | None:
    """The assessment's summary, else its first non-empty text field, else None."""
    if not isinstance(assessment, dict):
        return None
    for key in AI_SUMMARY_KEYS:
        if text := clip(assessment.get(key), limit):
            return text
    for value in assessment.values():
        if text := clip(value, limit):
            return text
    return None


def ai_confidence_of(assessment: Any) -> float | None:
    """The assessment's confidence as a fraction 0–1 (a percentage 1–100 is scaled)."""
    if not isinstance(assessment, dict):
        return None
    for key in CONFIDENCE_KEYS:
        value = assessment.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value != value or value in (float("inf"), float("-inf")):  # NaN or infinite
            continue
        if 1 < value <= 100:
            value = value / 100
        if 0 <= value <= 1:
            return round(float(value), 3)
    return None


def steps_tried_of(snapshot: Any, count: int = STEPS_IN_SUMMARY) -> list[str]:
    """The last `count` steps the technician tried, oldest first, each clipped."""
    if not isinstance(snapshot, dict):
        return []
    for key in STEPS_KEYS:
        steps = snapshot.get(key)
        if isinstance(steps, list):
            texts = [text for step in steps if (text := clip(step, STEP_MAX_CHARS))]
            return texts[-count:]
    return []


def _person(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "name": clip(user.name, NAME_MAX_CHARS) or ""}


def _size(summary: dict[str, Any]) -> int:
    """Bytes of the summary as JSON with every non-ASCII character escaped (the most any
    encoder of ours can make of it)."""
    return len(json.dumps(summary, default=lambda _: "x" * DATETIME_ALLOWANCE))


def _fit(summary: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Shorten the long text fields, least decisive first, until the summary fits."""
    while _size(summary) > max_bytes:
        for key in SHRINK_ORDER:
            value = summary.get(key)
            if key == "steps_tried" and value:
                summary[key] = value[:-1]
                break
            if isinstance(value, str) and len(value) > 16:
                summary[key] = clip(value, len(value) // 2) or ""
                break
        else:
            for person in ("escalated_by", "claimed_by"):
                if summary.get(person) and len(summary[person]["name"]) > 16:
                    name = summary[person]["name"]
                    summary[person]["name"] = clip(name, len(name) // 2) or ""
                    break
            else:
                break  # nothing left to shorten: ids, dates and enums are small
    return summary


def handoff_summary(handoff: Handoff, max_bytes: int = MAX_SUMMARY_BYTES) -> dict[str, Any]:
    """The handoff summary of the contract plus what a card decides on (AI confidence, the
    last steps tried, the PSA ticket when the session has one). Datetimes stay datetimes."""
    package = handoff.escalation_package or {}
    session = handoff.session
    summary = {
        "id": handoff.id,
        "session_id": handoff.session_id,
        "status": handoff.status,
        "title": clip(handoff.title, NAME_MAX_CHARS) or "",
        "reason": clip(handoff.reason, REASON_MAX_CHARS) or "",
        "escalated_by": _person(handoff.escalated_by),
        "created_at": handoff.created_at,
        "claimed_by": _person(handoff.claimed_by),
        "claimed_at": handoff.claimed_at,
        "resolved_at": handoff.resolved_at,
        "ai_summary": ai_summary_of(package.get("ai_assessment")),
        "ai_confidence": ai_confidence_of(package.get("ai_assessment")),
        "steps_tried": steps_tried_of(package.get("snapshot")),
        "customer": clip(session.customer, NAME_MAX_CHARS) if session else None,
        "priority": session.priority if session else None,
        "priority_label": PRIORITY_LABELS.get(session.priority) if session else None,
        # Only sessions that carry a PSA ticket id have one to show.
        "psa_ticket_id": clip(
            str(getattr(session, "psa_ticket_id", None) or ""), PSA_TICKET_MAX_CHARS
        ),
        # What happened while nobody claimed it ("reminded twice · owner told"), and how it
        # ended (the Resolved tab).
        "reminders_sent": handoff.reminders_sent or 0,
        "escalated_to_admins_at": handoff.escalated_to_admins_at,
        "outcome": clip(handoff.outcome, OUTCOME_MAX_CHARS),
    }
    return _fit(summary, max_bytes)

"""Turning API-shaped objects into what the pages show (no Flask request, no database).

The page JavaScript mirrors `assessment_gist` and `waiting_text` for cards that arrive
live; keep the two in step (web/pages/static/common.js).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

# Keys an AI assessment usually keeps its one-line conclusion under, most telling first.
GIST_KEYS = ("summary", "gist", "assessment", "diagnosis", "likely_cause", "conclusion")
GIST_MAX_CHARS = 240


def _clip(text: str, limit: int = GIST_MAX_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def assessment_gist(assessment: Any) -> str:
    """The assessment's summary, else its first non-empty text field, else ''."""
    if not isinstance(assessment, dict):
        return ""
    for key in GIST_KEYS:
        value = assessment.get(key)
        if isinstance(value, str) and value.strip():
            return _clip(value)
    for value in assessment.values():
        if isinstance(value, str) and value.strip():
            return _clip(value)
    return ""


def parse_utc(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 timestamp from the API ("...Z") or a naive UTC datetime → aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def waiting_text(since: datetime | None, now: datetime | None = None) -> str:
    """'45 s', '3 min 05 s', '2 h 07 min', '3 d 4 h': how long a handoff has waited."""
    if since is None:
        return ""
    now = now or datetime.now(UTC)
    seconds = max(int((now - since).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def handoff_card(handoff: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What a queue card shows, from a handoff in the API's shape."""
    package = handoff.get("escalation_package") or {}
    escalated_by = handoff.get("escalated_by") or {}
    claimed_by = handoff.get("claimed_by") or {}
    return {
        "id": handoff["id"],
        "session_id": handoff["session_id"],
        "status": handoff.get("status", "open"),
        "title": handoff.get("title") or "",
        "technician": escalated_by.get("name") or "",
        "reason": handoff.get("reason") or "",
        "gist": assessment_gist(package.get("ai_assessment")),
        "created_at": handoff.get("created_at") or "",
        "waiting": waiting_text(parse_utc(handoff.get("created_at")), now),
        "claimed_by": claimed_by.get("name") or "",
    }


BLANK_CARD = {
    "id": "",
    "session_id": "",
    "status": "open",
    "title": "",
    "technician": "",
    "reason": "",
    "gist": "",
    "created_at": "",
    "waiting": "",
    "claimed_by": "",
}


def humanize_key(key: Any) -> str:
    """'recent_messages' → 'Recent messages'; keys stay text, never markup."""
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else "(blank)"


# --- the analytics chart ----------------------------------------------------------------

MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def month_label(month: str) -> str:
    """'2025-03' → 'Mar 2025'."""
    year, number = month.split("-")
    return f"{MONTH_NAMES[int(number) - 1]} {year}"


def format_minutes(value: float | None) -> str:
    """Minutes to one decimal (two under a minute, so seconds do not read as '0'); '—' for
    no figure."""
    if value is None:
        return "—"
    text = f"{value:.2f}" if 0 < abs(value) < 1 else f"{value:.1f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_duration(minutes: float | None) -> str:
    """A time in minutes as people read it: under a minute in seconds ('42 s'), else
    minutes to one decimal ('12.5 min'); '—' for no figure."""
    if minutes is None:
        return "—"
    if abs(minutes) < 1:
        return f"{round(minutes * 60):d} s"
    return f"{format_minutes(minutes)} min"


def format_seconds(seconds: float | None) -> str:
    return format_duration(None if seconds is None else seconds / 60.0)


def format_count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def nice_ticks(bottom: float, top: float, count: int = 4) -> list[float]:
    """Round tick values covering [bottom, top] (0 always among them)."""
    span = (top - bottom) or 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(bottom / step) * step
    ticks = [round(first, 6)]
    while ticks[-1] < top - step * 1e-9:  # up to the first tick at or above the top
        ticks.append(round(ticks[-1] + step, 6))
    return ticks


def bar_chart(
    points: list[tuple[str, float | None]],
    width: int = 640,
    height: int = 300,
    margin_top: int = 28,
    margin_bottom: int = 64,
    margin_x: int = 16,
    margin_left: int = 64,
) -> dict[str, Any]:
    """Geometry for an SVG bar chart of (month, value) oldest first; None draws no bar.

    Bars grow up from the zero line for positive values and down for negative ones
    (first actions slower than the manual baseline). The y axis has round ticks and a
    title (minutes); the x axis is titled "Month"."""
    values = [value for _, value in points if value is not None]
    ticks = nice_ticks(min([*values, 0.0]), max([*values, 0.0]))
    top, bottom = max([*values, 0.0, ticks[-1]]), min([*values, 0.0, ticks[0]])
    span = (top - bottom) or 1.0
    plot_height = height - margin_top - margin_bottom
    zero_y = margin_top + plot_height * (top / span)
    slot = (width - margin_left - margin_x) / max(len(points), 1)
    bar_width = slot * 0.62
    bars = []
    for index, (month, value) in enumerate(points):
        x = margin_left + slot * index + (slot - bar_width) / 2
        bar = {
            "month": month,
            "label": month_label(month),
            "short_label": MONTH_NAMES[int(month[5:7]) - 1],
            "x": round(x, 1),
            "center": round(x + bar_width / 2, 1),
            "width": round(bar_width, 1),
            "value": value,
            "text": format_minutes(value),
        }
        if value is None:
            bar.update(y=round(zero_y, 1), height=0, text_y=round(zero_y - 6, 1))
        else:
            size = plot_height * abs(value) / span
            y = zero_y - size if value >= 0 else zero_y
            text_y = y - 6 if value >= 0 else y + size + 14
            bar.update(y=round(y, 1), height=round(size, 1), text_y=round(text_y, 1))
        bars.append(bar)
    y_ticks = [
        {"value": tick, "y": round(margin_top + plot_height * (top - tick) / span, 1)}
        for tick in ticks
        if bottom <= tick <= top
    ]
    return {
        "width": width,
        "height": height,
        "zero_y": round(zero_y, 1),
        "label_y": height - margin_bottom + 20,
        "year_y": height - margin_bottom + 38,
        "x_title_y": height - 6,
        "margin_x": margin_x,
        "margin_left": margin_left,
        "plot_left": margin_left,
        "plot_right": width - margin_x,
        "plot_top": margin_top,
        "plot_bottom": margin_top + plot_height,
        "y_ticks": [{**tick, "text": format_minutes(tick["value"])} for tick in y_ticks],
        "y_title_x": 16,
        "y_title_y": round(margin_top + plot_height / 2, 1),
        "x_title_x": round((margin_left + width - margin_x) / 2, 1),
        "bars": bars,
    }


def iso_utc(value: str | datetime | None) -> str:
    """'2025-03-01T14:05:09.123456Z' (what the API sends), for <time datetime=...>."""
    moment = parse_utc(value)
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def utc_text(value: str | datetime | None) -> str:
    """'2025-03-01 14:05 UTC': the server's fallback; the page JS shows local time instead."""
    moment = parse_utc(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""

"""Turning API-shaped objects into what the pages show (no Flask request, no database).

Cards come from handoff summaries (models.summaries), which already carry the AI summary
and the priority's label. A card is one Jinja macro (pages/_macros.html handoff_card): the
queue page renders its first cards with it and a blank one into a <template> that its
script clones for cards arriving live, filling in the summary's fields. What the script
would otherwise restate comes from `queue_config`: the words for the statuses and what the
viewer may do on a handoff in each status (models.permissions.card_actions). The script
mirrors only `waiting_text` (web/pages/static/common.js), which ticks every second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from models import clock
from models.entities import PRIORITIES, PRIORITY_LABELS, User
from models.escalations import ALREADY_CLAIMED_BY
from models.handoff_steps import Policy
from models.permissions import card_actions
from models.queue import MAX_SEARCH_CHARS, QueueFilter
from models.summaries import ai_summary_of

GIST_MAX_CHARS = 240


def assessment_gist(assessment: Any) -> str:
    """The assessment's summary line, clipped for a page ('' when it has none)."""
    return ai_summary_of(assessment, GIST_MAX_CHARS) or ""


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
    now = now or clock.now()
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


def confidence_text(confidence: float | None) -> str:
    return f"{round(confidence * 100)}% confident" if confidence is not None else ""


# A handoff's status in words: a settled card's line ("Claimed by …", "Resolved by …").
STATUS_LABELS = {"open": "Open", "claimed": "Claimed", "resolved": "Resolved"}
# What a card on the live Unclaimed tab says once it stopped being open under the viewer:
# who claimed it (the words of a lost claim's 409), else the status it reached.
TAKEN_TEXTS = {
    "claimed_by": ALREADY_CLAIMED_BY,
    "claimed": "No longer open",
    "resolved": STATUS_LABELS["resolved"],
}
NO_ACTIONS = {"claim": False}
# Each priority as an arrival's announcement and notification say it: "priority 1".
PRIORITY_WORDS = {priority: f"priority {priority[1:]}" for priority in PRIORITIES}


def handoff_card(
    summary: dict[str, Any],
    actions: Mapping[str, Mapping[str, bool]],
    now: datetime | None = None,
) -> dict[str, Any]:
    """What a queue card shows, from a handoff summary in the API's shape; `actions` is the
    viewer's permissions.card_actions, of which the card offers its status's."""
    escalated_by = summary.get("escalated_by") or {}
    claimed_by = summary.get("claimed_by") or {}
    priority = summary.get("priority") or "p3"
    status = summary.get("status") or "open"
    return {
        "id": summary["id"],
        "session_id": summary["session_id"],
        "status": status,
        "status_label": STATUS_LABELS.get(status, ""),
        "may": dict(actions.get(status, NO_ACTIONS)),
        "title": summary.get("title") or "",
        "technician": escalated_by.get("name") or "",
        "reason": summary.get("reason") or "",
        "gist": summary.get("ai_summary") or "",
        "confidence": confidence_text(summary.get("ai_confidence")),
        "steps": summary.get("steps_tried") or [],
        "customer": summary.get("customer") or "",
        "priority": priority,
        "priority_label": summary.get("priority_label") or "",
        "psa_ticket": summary.get("psa_ticket_id") or "",
        "created_at": summary.get("created_at") or "",
        "waiting": waiting_text(parse_utc(summary.get("created_at")), now),
        "claimed_by": claimed_by.get("name") or "",
        "claimed_at": summary.get("claimed_at") or "",
        "resolved_at": summary.get("resolved_at") or "",
    }


# The <template> card the queue's script clones for a live arrival: every part present (the
# script shows the Claim button or the session link by `queue_config`'s "may").
BLANK_CARD = {
    "id": "",
    "session_id": "",
    "status": "open",
    "status_label": "",
    "may": {"claim": True},
    "title": "",
    "technician": "",
    "reason": "",
    "gist": "",
    "confidence": "",
    "steps": [],
    "customer": "",
    "priority": "p3",
    "priority_label": "",
    "psa_ticket": "",
    "created_at": "",
    "waiting": "",
    "claimed_by": "",
    "claimed_at": "",
    "resolved_at": "",
}


# --- the queue's tabs, filters and links -------------------------------------------------

QUEUE_PATH = "/escalations"
# tab → (label, status, only the viewer's claims)
QUEUE_TABS = {
    "unclaimed": ("Unclaimed", "open", False),
    "mine": ("Mine", "claimed", True),
    "claimed": ("All claimed", "claimed", False),
    "resolved": ("Resolved", "resolved", False),
}
QUEUE_SORTS = {
    "priority": "Most urgent (priority, then longest waiting)",
    "oldest": "Longest waiting",
    "newest": "Newest first",
}
# Until the account has thresholds of its own: amber at the first reminder, red when the
# admins would be told (the defaults of renotify_after_minutes and
# escalate_to_admins_after_minutes).
DEFAULT_AMBER_MINUTES = 5
DEFAULT_RED_MINUTES = 15


def wait_thresholds(account: Any, priority: str | None = None) -> tuple[int, int]:
    """Seconds after which a waiting card of `priority` turns amber (its first reminder),
    then red (when the admins are told), by the priority's policy."""
    policy = Policy.of(account, priority)
    amber = policy.renotify_after_minutes or DEFAULT_AMBER_MINUTES
    red = policy.escalate_to_admins_after_minutes or DEFAULT_RED_MINUTES
    return amber * 60, max(red, amber) * 60


def queue_config(viewer: User) -> dict[str, Any]:
    """What the queue's script needs and must not restate: what the viewer may do on a
    handoff in each status (the card's Claim button), the words a card says when it stops
    being open, each priority as an announcement says it, and the wait colours of each
    priority (seconds to amber and to red). A card's priority label rides in its summary
    (`priority_label`)."""
    return {
        "may": card_actions(viewer),
        "taken_texts": TAKEN_TEXTS,
        "priority_words": PRIORITY_WORDS,
        "wait_seconds": {p: list(wait_thresholds(viewer.account, p)) for p in PRIORITY_LABELS},
    }


def _text_arg(args: Mapping[str, str], name: str, limit: int) -> str:
    value = (args.get(name) or "").strip()
    return value if len(value) <= limit else ""


def queue_view(args: Mapping[str, str], viewer_id: int) -> dict[str, Any]:
    """The tab, filters, sort and page the query string asks for; unknown values fall back
    to the defaults (a page link is never an error)."""
    tab = args.get("tab") if args.get("tab") in QUEUE_TABS else "unclaimed"
    _, status, mine = QUEUE_TABS[tab]
    # Most urgent first (priority, then the longest waiting); history newest first.
    default_sort = "newest" if tab == "resolved" else "priority"
    sort = args.get("sort") if args.get("sort") in QUEUE_SORTS else default_sort
    priority = args.get("priority") if args.get("priority") in PRIORITIES else ""
    technician = args.get("technician") or ""
    technician = technician if technician.isdigit() and len(technician) <= 18 else ""
    customer = _text_arg(args, "customer", 200)
    q = _text_arg(args, "q", MAX_SEARCH_CHARS)
    after = _text_arg(args, "after", 40) or None
    return {
        "tab": tab,
        "sort": sort,
        "default_sort": default_sort,
        "after": after,
        "params": {"priority": priority, "customer": customer, "technician": technician, "q": q},
        "filter": QueueFilter(
            status=status,
            claimed_by=viewer_id if mine else None,
            escalated_by=int(technician) if technician else None,
            priority=priority or None,
            customer=customer or None,
            q=q or None,
        ),
    }


def queue_link(view: dict[str, Any], **changes: Any) -> str:
    """/escalations with the view's tab, filters and sort, changed by `changes`; empty
    values and defaults are left out."""
    values = {"tab": view["tab"], **view["params"], "sort": view["sort"], **changes}
    if values.get("sort") == view["default_sort"] and "tab" not in changes:
        values.pop("sort")
    if values.get("tab") == "unclaimed":
        values.pop("tab")
    query = urlencode({key: value for key, value in values.items() if value})
    return f"{QUEUE_PATH}?{query}" if query else QUEUE_PATH


def queue_tabs(view: dict[str, Any], counts: dict[str, int]) -> list[dict[str, Any]]:
    """The tabs as links (filters kept, paging and sort reset) with their counts."""
    return [
        {
            "key": key,
            "label": label,
            "count": counts.get(key, 0),
            "href": queue_link(view, tab=key, sort=None, after=None),
            "current": key == view["tab"],
        }
        for key, (label, _, _) in QUEUE_TABS.items()
    ]


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


@dataclass(frozen=True)
class _Scale:
    """The chart's vertical scale: values `bottom`..`top` over `height` pixels below `top_y`."""

    top: float
    bottom: float
    top_y: float
    height: float

    @property
    def span(self) -> float:
        return (self.top - self.bottom) or 1.0

    @property
    def zero_y(self) -> float:
        return self.top_y + self.height * (self.top / self.span)

    def y(self, value: float) -> float:
        return self.top_y + self.height * (self.top - value) / self.span

    def length(self, value: float) -> float:
        return self.height * abs(value) / self.span

    def tick_marks(self, ticks: list[float]) -> list[dict[str, Any]]:
        """The ticks within the scale, with their height and text."""
        return [
            {"value": tick, "y": round(self.y(tick), 1), "text": format_minutes(tick)}
            for tick in ticks
            if self.bottom <= tick <= self.top
        ]


def _bar(month: str, value: float | None, x: float, width: float, scale: _Scale) -> dict:
    """One month's bar: up from the zero line for a positive value, down for a negative one,
    its figure above (or below) it; no value draws no bar."""
    bar = {
        "month": month,
        "label": month_label(month),
        "short_label": MONTH_NAMES[int(month[5:7]) - 1],
        "x": round(x, 1),
        "center": round(x + width / 2, 1),
        "width": round(width, 1),
        "value": value,
        "text": format_minutes(value),
    }
    zero_y = scale.zero_y
    if value is None:
        bar.update(y=round(zero_y, 1), height=0, text_y=round(zero_y - 6, 1))
    else:
        size = scale.length(value)
        y = zero_y - size if value >= 0 else zero_y
        text_y = y - 6 if value >= 0 else y + size + 14
        bar.update(y=round(y, 1), height=round(size, 1), text_y=round(text_y, 1))
    return bar


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
    plot_height = height - margin_top - margin_bottom
    scale = _Scale(
        top=max([*values, 0.0, ticks[-1]]),
        bottom=min([*values, 0.0, ticks[0]]),
        top_y=margin_top,
        height=plot_height,
    )
    slot = (width - margin_left - margin_x) / max(len(points), 1)
    bar_width = slot * 0.62
    bars = [
        _bar(month, value, margin_left + slot * index + (slot - bar_width) / 2, bar_width, scale)
        for index, (month, value) in enumerate(points)
    ]
    return {
        "width": width,
        "height": height,
        "zero_y": round(scale.zero_y, 1),
        "label_y": height - margin_bottom + 20,
        "year_y": height - margin_bottom + 38,
        "x_title_y": height - 6,
        "margin_x": margin_x,
        "margin_left": margin_left,
        "plot_left": margin_left,
        "plot_right": width - margin_x,
        "plot_top": margin_top,
        "plot_bottom": margin_top + plot_height,
        "y_ticks": scale.tick_marks(ticks),
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

"""The escalation email: what a senior who was offline reads. Pure functions, no I/O."""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import html
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.entities import PRIORITY_LABELS
from models.summaries import ai_summary_of, clip, steps_tried_of

# The events whose email says how long the handoff has waited unclaimed.
WAITING_EVENTS = ("handoff.reminder", "handoff.unclaimed")
CLAIMED_SUBJECT_PREFIX = "Claimed by "
MAX_TITLE_IN_SUBJECT = 150
MAX_GIST = 300
FALLBACK_DOMAIN = "escalation-mode.invalid"

BUTTON_STYLE = (
    "display:inline-block;background:#1f5fbf;color:#ffffff;padding:10px 18px;"
    "border-radius:6px;text-decoration:none;font-weight:bold"
)


@dataclass(frozen=True)
class EscalationNotice:
    """What the email says about one handoff."""

    handoff_id: int
    session_id: int
    title: str
    reason: str
    escalated_by: str
    created_at: datetime
    notes: str | None = None
    ai_gist: str | None = None
    timezone: str = "UTC"  # the recipient's (else the account's): every time is shown in it
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    priority: str | None = None  # p1…p4
    customer: str | None = None
    steps_tried: tuple[str, ...] = ()
    # Set for the emails after the first: what happened and when the email was built.
    event: str | None = None
    # Why this email went: the delivery's reason (models.notification_rule.REASONS).
    delivery_reason: str | None = None
    now: datetime | None = None
    handed_over_by: str | None = None  # a reassignment: who handed it on, and why
    handover_reason: str | None = None


def one_line(text: str, limit: int) -> str:
    """Collapse whitespace (no line breaks can reach a header) and cut to `limit` characters."""
    return clip(text, limit) or ""


def ai_gist(assessment: Any, limit: int = MAX_GIST) -> str | None:
    """The assessment's gist, as the pages and the API summary read it, cut to `limit`."""
    return ai_summary_of(assessment, limit)


def notice_for(handoff: Any, timezone: str = "UTC", **more: Any) -> EscalationNotice:
    """Read a Handoff (duck-typed: anything with its attributes) into a notice, with times
    in `timezone` (the recipient's, else the account's); `more` sets the other fields
    (event, delivery_reason, now, handed_over_by, handover_reason)."""
    package = handoff.escalation_package or {}
    notes = package.get("notes")
    claimer = getattr(handoff, "claimed_by", None)
    session = getattr(handoff, "session", None)
    return EscalationNotice(
        handoff_id=handoff.id,
        session_id=handoff.session_id,
        title=handoff.title,
        reason=handoff.reason,
        escalated_by=handoff.escalated_by.name,
        created_at=handoff.created_at,
        notes=notes if isinstance(notes, str) and notes.strip() else None,
        ai_gist=ai_gist(package.get("ai_assessment")),
        timezone=timezone or "UTC",
        claimed_by=claimer.name if claimer is not None else None,
        claimed_at=getattr(handoff, "claimed_at", None),
        priority=getattr(session, "priority", None),
        customer=getattr(session, "customer", None),
        steps_tried=tuple(steps_tried_of(package.get("snapshot"))),
        **more,
    )


def _domain(mail_from: str) -> str:
    _, at, domain = parseaddr(mail_from)[1].rpartition("@")
    domain = domain.strip().strip("[]") if at else ""
    return domain or FALLBACK_DOMAIN


def message_id(delivery_id: int, handoff_id: int, mail_from: str) -> str:
    """The same for every attempt at one delivery, so a receiver can drop a resend (a worker
    that died after the server accepted the message but before it was marked sent)."""
    return f"<escalation-{handoff_id}.delivery-{delivery_id}@{_domain(mail_from)}>"


def thread_id(handoff_id: int, recipient_id: int, mail_from: str) -> str:
    """The Message-ID of a recipient's first email about a handoff (the new-escalation
    email), stable across attempts; every later email to them about it replies to it
    (In-Reply-To and References), so a mail client shows one thread per escalation."""
    return f"<escalation-{handoff_id}.to-{recipient_id}@{_domain(mail_from)}>"


def tag(notice: EscalationNotice) -> str:
    """`[P1 · Initech]`: the priority and the customer, so the inbox says how urgent."""
    parts = [notice.priority.upper()] if notice.priority else []
    if notice.customer and (customer := one_line(notice.customer, 60)):
        parts.append(customer)
    return f"[{' · '.join(parts)}] " if parts else ""


def subject(notice: EscalationNotice) -> str:
    return tag(notice) + one_line(notice.title, MAX_TITLE_IN_SUBJECT)


def links(notice: EscalationNotice, base_url: str) -> dict[str, str]:
    """The session page opens this escalation, with its Claim button; the queue is second."""
    base = base_url.rstrip("/")
    return {"queue": f"{base}/escalations", "session": f"{base}/pilot/{notice.session_id}"}


def waited(notice: EscalationNotice) -> str | None:
    """How long it has waited, in words ("12 min", "1 h 5 min"), when the notice has a now."""
    if notice.now is None:
        return None
    created = (
        notice.created_at.replace(tzinfo=None) if notice.created_at.tzinfo else notice.created_at
    )
    now = notice.now.astimezone(UTC).replace(tzinfo=None) if notice.now.tzinfo else notice.now
    minutes = max(int((now - created).total_seconds() // 60), 0)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _details(notice: EscalationNotice) -> list[tuple[str, str]]:
    rows = []
    if notice.priority:
        rows.append(("Priority", PRIORITY_LABELS.get(notice.priority, notice.priority.upper())))
    if notice.customer:
        rows.append(("Customer", notice.customer))
    if notice.handed_over_by:
        rows.append(("Handed to you by", notice.handed_over_by))
        rows.append(("Why", notice.handover_reason or "no reason given"))
    rows.append(("Reason", notice.reason))
    if notice.notes:
        rows.append(("Notes", notice.notes))
    if notice.steps_tried:
        rows.append(("Steps tried", "\n".join(f"- {step}" for step in notice.steps_tried)))
    rows.append(("AI assessment", notice.ai_gist or "none attached"))
    rows.append(("Escalated by", notice.escalated_by))
    rows.append(("Escalated at", when(notice.created_at, notice.timezone)))
    if notice.event in WAITING_EVENTS and (how_long := waited(notice)):
        rows.append(("Waiting for", f"{how_long}, unclaimed"))
    return rows


# Why this email reached you, per delivery reason (the notification rule's); the event
# decides when an older delivery has none.
FOOTERS = {
    "business_hours": "You get this email because it came in during business hours while "
    "you were not connected.",
    "on_call": "You get this email because you are on call and it came in outside business hours.",
    "nobody_on_call": "You get this email because it came in outside business hours and "
    "nobody is on call, so every admin is told.",
    "admin_step": "You get this email because you are an admin and nobody has claimed it in time.",
    "reassigned": "You get this email because it was handed to you while you were not connected.",
    "claimed_follow_up": "You get this email because you were emailed about this escalation.",
    "fallback": "You get this email because live notifications could not be confirmed, so "
    "every senior is emailed.",
}
EVENT_FOOTERS = {
    None: "You get this email because you were not connected when the escalation was created.",
    "handoff.reminder": "You get this email because it is still unclaimed and you were not "
    "connected.",
    "handoff.unclaimed": FOOTERS["admin_step"],
    "handoff.reassigned": FOOTERS["reassigned"],
}


def footer(notice: EscalationNotice) -> str:
    """Why the recipient got this email, then what to do about it."""
    why = FOOTERS.get(notice.delivery_reason or "") or EVENT_FOOTERS.get(
        notice.event, EVENT_FOOTERS[None]
    )
    if notice.event == "handoff.reassigned":
        return why + " It is yours now."
    return why + " The first senior to claim it takes it."


def _opening(notice: EscalationNotice) -> str:
    title = one_line(notice.title, 500)
    if notice.event == "handoff.reassigned":
        return f'{notice.handed_over_by or "A senior"} handed "{title}" to you.'
    how_long = waited(notice) if notice.event in WAITING_EVENTS else None
    if how_long:
        return f'"{title}" has waited {how_long} and nobody has claimed it yet.'
    return f'{notice.escalated_by} escalated "{title}" and it is waiting for a senior.'


def when(moment: datetime, timezone: str = "UTC") -> str:
    """A stored (naive UTC) time in the account's zone: '2026-12-01 16:04 CST (America/Chicago)'."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    local = aware.astimezone(zone)
    text = local.strftime("%Y-%m-%d %H:%M %Z")
    return text if timezone == "UTC" else f"{text} ({timezone})"


def text_body(notice: EscalationNotice, recipient_name: str, base_url: str) -> str:
    urls = links(notice, base_url)
    lines = [f"Hi {recipient_name},", "", _opening(notice), ""]
    for label, value in _details(notice):
        if "\n" in value:
            lines += [f"{label}:", *value.split("\n")]
        else:
            lines.append(f"{label}: {value}")
    action = (
        "Open it" if notice.event == "handoff.reassigned" else "Open this escalation and claim it"
    )
    lines += [
        "",
        f"{action}: {urls['session']}",
        f"The queue: {urls['queue']}",
        "",
        footer(notice),
    ]
    return "\n".join(lines) + "\n"


def html_body(notice: EscalationNotice, recipient_name: str, base_url: str) -> str:
    esc = html.escape
    urls = links(notice, base_url)
    rows = "\n".join(
        f'<tr><th align="left" valign="top" style="padding:2px 12px 2px 0">{esc(label)}</th>'
        f'<td style="white-space:pre-wrap">{esc(value)}</td></tr>'
        for label, value in _details(notice)
    )
    button = "Open it" if notice.event == "handoff.reassigned" else "Open and claim"
    return f"""<!doctype html>
<html><body style="font-family:sans-serif;line-height:1.4">
<p>Hi {esc(recipient_name)},</p>
<p>{esc(_opening(notice))}</p>
<table>
{rows}
</table>
<p><a href="{esc(urls["session"])}" style="{BUTTON_STYLE}">{button}</a></p>
<p>Or see everything waiting <a href="{esc(urls["queue"])}">on the queue</a>.</p>
<p style="color:#666;font-size:smaller">{esc(footer(notice))}</p>
</body></html>
"""


def claimed_subject(notice: EscalationNotice) -> str:
    who = one_line(notice.claimed_by or "a senior", 100)
    title = one_line(notice.title, MAX_TITLE_IN_SUBJECT)
    return f"{tag(notice)}{CLAIMED_SUBJECT_PREFIX}{who}: {title}"


def _claimed_line(notice: EscalationNotice) -> str:
    who = notice.claimed_by or "A senior"
    at = f" at {when(notice.claimed_at, notice.timezone)}" if notice.claimed_at else ""
    return f'{who} claimed "{one_line(notice.title, 500)}"{at}.'


def claimed_text_body(notice: EscalationNotice, recipient_name: str, base_url: str) -> str:
    """The short follow-up to those emailed about the escalation: nothing left to do."""
    lines = [
        f"Hi {recipient_name},",
        "",
        _claimed_line(notice) + " Nothing is waiting for you on this one.",
        "",
        f"The session: {links(notice, base_url)['session']}",
    ]
    return "\n".join(lines) + "\n"


def claimed_html_body(notice: EscalationNotice, recipient_name: str, base_url: str) -> str:
    esc = html.escape
    url = links(notice, base_url)["session"]
    return f"""<!doctype html>
<html><body style="font-family:sans-serif;line-height:1.4">
<p>Hi {esc(recipient_name)},</p>
<p>{esc(_claimed_line(notice))} Nothing is waiting for you on this one.</p>
<p><a href="{esc(url)}">Open the session</a></p>
</body></html>
"""


CREATED, CLAIMED, SHIFT = "created", "claimed", "shift"
_KINDS = {
    CREATED: (subject, text_body, html_body),
    CLAIMED: (claimed_subject, claimed_text_body, claimed_html_body),
}


def compose(
    notice: EscalationNotice,
    *,
    recipient_name: str,
    recipient_email: str,
    mail_from: str,
    base_url: str,
    message_id: str,
    date: datetime,
    kind: str = CREATED,
    replies_to: str | None = None,
) -> EmailMessage:
    """The multipart/alternative message (plain text first, then HTML): the escalation
    (`created`) or the short "claimed by X" follow-up (`claimed`). `replies_to`, the
    Message-ID of the recipient's first email about the handoff, threads it under that."""
    subject_of, text_of, html_of = _KINDS[kind]
    message = EmailMessage()
    message["Subject"] = subject_of(notice)
    message["From"] = mail_from
    message["To"] = Address(display_name=one_line(recipient_name, 200), addr_spec=recipient_email)
    message["Date"] = format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))
    message["Message-ID"] = message_id
    if replies_to and replies_to != message_id:
        message["In-Reply-To"] = replies_to
        message["References"] = replies_to
    # Tells vacation responders and the like not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Escalation-Handoff-Id"] = str(notice.handoff_id)
    # Which event it tells of, for mail filters (a reminder, the admin step...).
    message["X-Escalation-Event"] = notice.event or (
        "handoff.claimed" if kind == CLAIMED else "handoff.created"
    )
    message.set_content(text_of(notice, recipient_name, base_url))
    message.add_alternative(html_of(notice, recipient_name, base_url), subtype="html")
    return message


# Subjects of the emails after the first one: reminders, the admin step, a reassignment.
EVENT_SUBJECT_PREFIXES = {
    "handoff.reminder": "Reminder, still unclaimed",
    "handoff.unclaimed": "Nobody has claimed",
    "handoff.reassigned": "Assigned to you",
}


def event_subject(event: str, notice: EscalationNotice) -> str | None:
    """The subject of a reminder, admin-step or reassignment email (with how long it has
    waited); None for the others, which keep their kind's subject. The priority and
    customer lead every subject."""
    prefix = EVENT_SUBJECT_PREFIXES.get(event)
    if prefix is None:
        return None
    how_long = waited(notice) if event in WAITING_EVENTS else None
    if how_long:
        prefix += f" after {how_long}"
    return f"{tag(notice)}{prefix}: {one_line(notice.title, MAX_TITLE_IN_SUBJECT)}"


def retitle_for_event(message: EmailMessage, event: str, notice: EscalationNotice) -> None:
    """Give a reminder, admin-step or reassignment email its own subject (and a header a
    mail filter can use); the new-handoff email keeps `subject(notice)`."""
    retitled = event_subject(event, notice)
    if retitled is None:
        return
    message.replace_header("Subject", retitled)
    message.replace_header("X-Escalation-Event", event)


# --------------------------------------------------------------------------- wire form
#
# The escalation emails go out by the hundred a second, and building each with the
# standard library's EmailMessage (a header object parsed and folded per header, a
# generator walking the parts) was about half of what an email cost the mailer. `render`
# writes the same message straight to its wire form; `compose` stays the reference it is
# tested against, and the path for what the template does not cover (an address that
# is not plain ASCII).


class RenderedEmail:
    """A message in its wire form (CRLF line ends), ready for SMTP. Reading a header or a
    part parses it back, as a receiver would (tests and logs; sending never does)."""

    __slots__ = ("data", "message_id", "_parsed")

    def __init__(self, data: bytes, message_id: str) -> None:
        self.data = data
        self.message_id = message_id
        self._parsed: EmailMessage | None = None

    def as_bytes(self) -> bytes:
        return self.data

    @property
    def parsed(self) -> EmailMessage:
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        return self._parsed

    def __getitem__(self, name: str) -> Any:
        return self.parsed[name]

    def get_body(self, preferencelist: tuple[str, ...] = ("related", "html", "plain")) -> Any:
        return self.parsed.get_body(preferencelist)


# A plain address (dot-atom local part, ASCII domain): written as it is.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                            r"@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")  # fmt: skip
# Text a header can carry as it is: printable ASCII that no decoder takes for an
# encoded-word.
_PLAIN_TEXT = re.compile(r"[\x20-\x7e]*")
_PHRASE_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
# A body sent as it is (7bit): printable ASCII, tabs and line breaks, lines within RFC
# 5322's 998 characters; any other goes quoted-printable (lines of 76 at most).
_SEVEN_BIT = re.compile(r"[\t\n\x20-\x7e]*")
MAX_LINE = 998
FOLD_AT = 78
# UTF-8 bytes per encoded-word: 45 bytes are 60 base64 characters, 72 with the markers.
_WORD_BYTES = 45


def _plain(text: str) -> bool:
    return _PLAIN_TEXT.fullmatch(text) is not None and "=?" not in text


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 `B` encoded-words of UTF-8, cut between characters, each under 76 chars."""
    words, chunk, size = [], [], 0
    for char in text:
        length = len(char.encode("utf-8"))
        if chunk and size + length > _WORD_BYTES:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += length
    if chunk:
        words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def _fold(name: str, words: list[str]) -> str:
    """`Name: w1 w2...`, folded before a word that would take a line past FOLD_AT."""
    lines = [f"{name}:"]
    for word in words:
        if len(lines[-1]) + 1 + len(word) > FOLD_AT and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += " " + word
    return "\r\n".join(lines) + "\r\n"


def _unstructured(name: str, text: str) -> str:
    return _fold(name, text.split(" ") if _plain(text) else _encoded_words(text))


def _mailbox(name: str, display_name: str, addr_spec: str) -> str:
    if not display_name:
        return f"{name}: {addr_spec}\r\n"
    if not _plain(display_name):
        words = _encoded_words(display_name)
        if len(words) == 1:
            return _fold(name, [*words, f"<{addr_spec}>"])
        # Decoders differ on the space between two encoded-words of one display name
        # (RFC 2047 drops it, Python's parser keeps it): a long one is folded as the
        # standard library folds it.
        policy = email.policy.SMTP
        _, header = policy.header_store_parse(
            name, Address(display_name=display_name, addr_spec=addr_spec)
        )
        return policy.fold_binary(name, header).decode("ascii")
    if _PHRASE_SPECIALS.search(display_name):
        display_name = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name}: {display_name} <{addr_spec}>\r\n"


@lru_cache(maxsize=16)
def _from_line(mail_from: str) -> str | None:
    """The From header as the standard library writes it (once per setting), or None when
    its address is not a plain one."""
    if _PLAIN_ADDRESS.fullmatch(parseaddr(mail_from)[1]) is None:
        return None
    policy = email.policy.SMTP
    _, header = policy.header_store_parse("From", mail_from)
    return policy.fold_binary("From", header).decode("ascii")


def _part(subtype: str, text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: '
    if _SEVEN_BIT.fullmatch(text) and max(map(len, lines)) <= MAX_LINE:
        return head + "7bit\r\n\r\n" + "\r\n".join(lines)
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    return head + "quoted-printable\r\n\r\n" + encoded.replace("\n", "\r\n")


def render(
    notice: EscalationNotice,
    *,
    recipient_name: str,
    recipient_email: str,
    mail_from: str,
    base_url: str,
    message_id: str,
    date: datetime,
    kind: str = CREATED,
    replies_to: str | None = None,
    event: str | None = None,
) -> RenderedEmail | None:
    """What `compose` (and `retitle_for_event` for `event`) builds, written straight to
    the wire: the same headers and the same two parts. None when an address is not a
    plain ASCII one; `compose` handles those."""
    from_line = _from_line(mail_from)
    if from_line is None or _PLAIN_ADDRESS.fullmatch(recipient_email) is None:
        return None
    if not all(_plain(value) for value in (message_id, replies_to or "")):
        return None
    subject_of, text_of, html_of = _KINDS[kind]
    retitled = event_subject(event, notice) if event else None
    filter_event = (event if retitled else None) or notice.event or (
        "handoff.claimed" if kind == CLAIMED else "handoff.created"
    )  # fmt: skip
    text = _part("plain", text_of(notice, recipient_name, base_url))
    markup = _part("html", html_of(notice, recipient_name, base_url))
    boundary = f"=_{secrets.token_hex(12)}"
    while boundary in text or boundary in markup:  # practically never
        boundary = f"=_{secrets.token_hex(12)}"
    headers = [
        _unstructured("Subject", retitled or subject_of(notice)),
        from_line,
        _mailbox("To", one_line(recipient_name, 200), recipient_email),
        f"Date: {format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))}\r\n",
        f"Message-ID: {message_id}\r\n",
    ]
    if replies_to and replies_to != message_id:
        headers += [f"In-Reply-To: {replies_to}\r\n", f"References: {replies_to}\r\n"]
    headers += [
        f"Auto-Submitted: auto-generated\r\nX-Escalation-Handoff-Id: {notice.handoff_id}\r\n",
        _unstructured("X-Escalation-Event", filter_event),
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n',
    ]
    wire = "".join(headers) + (
        f"\r\n--{boundary}\r\n{text}\r\n--{boundary}\r\n{markup}\r\n--{boundary}--\r\n"
    )
    return RenderedEmail(wire.encode("ascii"), message_id)


# --------------------------------------------------------------------------- shift notices


@dataclass(frozen=True)
class ShiftNotice:
    """A senior's shift on call begins: which rotation, and until when (shown in their zone)."""

    rotation: str
    start: datetime
    end: datetime
    timezone: str = "UTC"  # the senior's own, else the account's


def _local(moment: datetime, timezone: str) -> datetime:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)


def shift_subject(notice: ShiftNotice) -> str:
    """`You're on call for Servers until Mon 09:00` (the end in the senior's zone)."""
    until = _local(notice.end, notice.timezone).strftime("%a %H:%M")
    return f"You're on call for {one_line(notice.rotation, MAX_TITLE_IN_SUBJECT)} until {until}"


def shift_text_body(notice: ShiftNotice, recipient_name: str, base_url: str) -> str:
    lines = [
        f"Hi {recipient_name},",
        "",
        f"Your shift on call for {one_line(notice.rotation, 200)} has begun.",
        f"From: {when(notice.start, notice.timezone)}",
        f"Until: {when(notice.end, notice.timezone)}",
        "",
        "Escalations outside business hours are emailed to you while you are on call,",
        "whatever your quiet hours say.",
        f"The schedule: {base_url.rstrip('/')}/oncall",
    ]
    return "\n".join(lines) + "\n"


def shift_message_id(delivery_id: int, mail_from: str) -> str:
    return message_id(delivery_id, 0, mail_from).replace("<escalation-0.", "<shift.", 1)


def compose_shift_notice(
    notice: ShiftNotice,
    *,
    recipient_name: str,
    recipient_email: str,
    mail_from: str,
    base_url: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The plain-text shift notice."""
    message = EmailMessage()
    message["Subject"] = shift_subject(notice)
    message["From"] = mail_from
    message["To"] = Address(display_name=one_line(recipient_name, 200), addr_spec=recipient_email)
    message["Date"] = format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Escalation-Event"] = "shift.start"
    message.set_content(shift_text_body(notice, recipient_name, base_url))
    return message

"""Who hears which event, on which channel, and whether their preferences hold: one table.

Every notification the service sends is an entry of `RULES`, one per event: the Socket.IO
rooms it goes to, who is emailed (`Email.audience`), why (`Email.reason`, or the schedule's
answer), whether the seniors' own preferences (`notify_email`, quiet hours) and presence
hold, how its deliveries are keyed (one per recipient, whatever how often it is
dispatched), and while what it is still worth sending. The fan-out reads the rooms and the
audience, the deliveries read the keys, the mailer reads `stale_reason` right before each
send; none of them asks which event it is.

Who is emailed, decided when each email is dispatched (`choose`, pure):

- a new handoff or a reminder (`BY_SCHEDULE`): inside business hours, every offline senior
  by their preferences (`business_hours`); outside, the on-call seniors who are offline,
  whatever their preferences (`on_call`); outside with nobody on call, every active admin,
  online or not, whatever their preferences (`nobody_on_call`);
- the admin step (`ADMINS`): every active admin, online or not, whatever their preferences;
- a reassignment (`HOLDER`): its target when offline, by their preferences unless they are
  on call outside business hours;
- a "claimed by" follow-up (`EMAILED_BEFORE`): each senior emailed about the handoff, under
  the rule of their first email (preferences hold if they held for it);
- a shift notice (`SHIFT_SENIOR`): its senior, always.

Preferences hold an email, they do not drop it: quiet hours make a `held` delivery, due
when they end; `never` makes none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.email_rules import EmailPlan, EmailPreference, plan_emails
from models.events import (
    HANDOFF_CLAIMED,
    HANDOFF_CREATED,
    HANDOFF_REASSIGNED,
    HANDOFF_RELEASED,
    HANDOFF_REMINDER,
    HANDOFF_RESOLVED,
    HANDOFF_UNCLAIMED,
    MESSAGE_CREATED,
    SHIFT_START,
    WRITEBACK_CREATED,
)

# Why an email went (`Delivery.reason`, shown in /deliveries and on the timeline).
BUSINESS_HOURS = "business_hours"
ON_CALL = "on_call"
NOBODY_ON_CALL = "nobody_on_call"
ADMIN_STEP = "admin_step"
REASSIGNED = "reassigned"
CLAIMED_FOLLOW_UP = "claimed_follow_up"
SHIFT_STARTS = "shift_start"
FALLBACK = "fallback"
REASONS = (
    BUSINESS_HOURS,
    ON_CALL,
    NOBODY_ON_CALL,
    ADMIN_STEP,
    REASSIGNED,
    CLAIMED_FOLLOW_UP,
    SHIFT_STARTS,
    FALLBACK,
)
# A first email sent under these reasons went by the senior's preferences; so does the
# "claimed by" follow-up that comes after it.
BY_PREFERENCE_REASONS = (BUSINESS_HOURS, REASSIGNED, FALLBACK)

# Rooms (models.rooms names them): the account's seniors, the escalating technician, the
# senior now holding the handoff, the pages showing the session.
SENIORS, TECHNICIAN, HOLDER_ROOM, SESSION = "seniors", "technician", "holder", "session"

# Who is emailed.
BY_SCHEDULE = "by_schedule"
ADMINS = "admins"
HOLDER = "holder"
EMAILED_BEFORE = "emailed_before"
SHIFT_SENIOR = "shift_senior"

# While what a notification is still news (checked before each send).
WHILE_OPEN = "open"
WHILE_HOLDER = "held_by_recipient"

NOT_SENT_CLAIMED = "Not sent: claimed"


@dataclass(frozen=True)
class Email:
    audience: str
    # The delivery's unique key: {handoff}, {event} (the outbox event's id), {step} (the
    # unclaimed step it announced), {label} (a shift segment's) and {user} filled in.
    key: str
    reason: str | None = None  # None: the schedule says (business_hours / on_call / ...)
    # Whether preferences and presence hold; None: the schedule says.
    by_preferences: bool | None = True
    # While what an email held by quiet hours is still worth sending when they end.
    held_while: str | None = None
    # Which message it is (workers/email_message.py): about the handoff, the "claimed by"
    # follow-up, or a shift notice.
    message: str = "created"


@dataclass(frozen=True)
class Rule:
    event: str
    rooms: tuple[str, ...]
    email: Email | None = None
    only_while: str | None = None  # while what the event (and its emails) is news
    # When the live event could not be delivered at all, its email goes to everyone the
    # rule would choose were they all offline (reason `fallback`).
    falls_back: bool = False


RULES: dict[str, Rule] = {
    rule.event: rule
    for rule in (
        Rule(
            HANDOFF_CREATED,
            (SENIORS,),
            Email(
                BY_SCHEDULE, "email:{handoff}:{user}", by_preferences=None, held_while=WHILE_OPEN
            ),
            falls_back=True,
        ),
        Rule(
            HANDOFF_REMINDER,
            (SENIORS,),
            Email(
                BY_SCHEDULE,
                "email:{handoff}:{step}:{user}",
                by_preferences=None,
                held_while=WHILE_OPEN,
            ),
            only_while=WHILE_OPEN,
        ),
        Rule(
            HANDOFF_UNCLAIMED,
            (SENIORS,),
            Email(ADMINS, "email:{handoff}:{step}:{user}", ADMIN_STEP, by_preferences=False),
            only_while=WHILE_OPEN,
        ),
        Rule(HANDOFF_RELEASED, (SENIORS, TECHNICIAN)),
        Rule(
            HANDOFF_REASSIGNED,
            (SENIORS, TECHNICIAN, HOLDER_ROOM),
            Email(
                HOLDER,
                "email:{handoff}:reassigned-{event}:{user}",
                REASSIGNED,
                held_while=WHILE_HOLDER,
            ),
            only_while=WHILE_HOLDER,
        ),
        Rule(
            HANDOFF_CLAIMED,
            (SENIORS, TECHNICIAN),
            Email(
                EMAILED_BEFORE,
                "email-claimed:{handoff}:{user}",
                CLAIMED_FOLLOW_UP,
                message="claimed",
            ),
        ),
        Rule(HANDOFF_RESOLVED, (SENIORS, TECHNICIAN)),
        # Live only, to the pages showing the session; a page that was away re-reads the
        # session when it reconnects, so there is nothing to email.
        Rule(MESSAGE_CREATED, (SESSION,)),
        Rule(WRITEBACK_CREATED, (SESSION,)),
        Rule(
            SHIFT_START,
            (),
            Email(
                SHIFT_SENIOR,
                "shift:{label}:{user}",
                SHIFT_STARTS,
                by_preferences=False,
                message="shift",
            ),
        ),
    )
}


def rule_for(event: str) -> Rule:
    try:
        return RULES[event]
    except KeyError:
        raise ValueError(f"Not a notified event: {event!r}") from None


def emailed_events() -> tuple[str, ...]:
    return tuple(event for event, rule in RULES.items() if rule.email is not None)


def delivery_key(
    event: str,
    user_id: int,
    handoff_id: int | None = None,
    event_id: int | None = None,
    step: str | None = None,
    label: str | None = None,
) -> str:
    email = rule_for(event).email
    assert email is not None, event
    return email.key.format(
        handoff=handoff_id, event=event_id, step=step, label=label, user=user_id
    )


def message_kind(event: str) -> str:
    """Which message an email of `event` is (workers/email_message.py's kinds)."""
    email = rule_for(event).email
    return email.message if email is not None else "created"


def keyed_by_step(event: str) -> bool:
    """Whether the event's emails are one per unclaimed step (a reminder, the admin step)."""
    email = rule_for(event).email
    return email is not None and "{step}" in email.key


def _stale(condition: str | None, status: str, holder_id: int | None, recipient_id: int | None):
    if condition == WHILE_OPEN and status != "open":
        return f"Not sent: the escalation was {status} before this step went out."
    if condition == WHILE_HOLDER and recipient_id is not None:
        if status != "claimed" or holder_id != recipient_id:
            return "Not sent: the escalation moved on before this notice went out."
    return None


def stale_reason(
    event: str,
    status: str,
    holder_id: int | None,
    recipient_id: int | None = None,
    held: bool = False,
) -> str | None:
    """Why a notification of `event` about a handoff now in `status` (held by `holder_id`)
    should not go out any more, checked right before each send; None: send it. `held`: an
    email quiet hours held, going out now that they ended."""
    rule = rule_for(event)
    if held and rule.email is not None and rule.email.held_while is not None:
        if rule.email.held_while == WHILE_OPEN and status != "open":
            return NOT_SENT_CLAIMED
        if stale := _stale(rule.email.held_while, status, holder_id, recipient_id):
            return stale
    return _stale(rule.only_while, status, holder_id, recipient_id)


# --------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class Moment:
    """The schedule at one instant, resolved once per dispatch (or beat tick) and shared by
    every recipient: inside business hours or not, and who is on call."""

    at: datetime  # aware UTC
    business_hours: bool = True
    on_call: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Audience:
    """The candidates of one email: the account's active seniors' preferences (with their
    role), who of them is online, and for the emails aimed at someone (a reassignment's
    target, those emailed before with the reason of their first email, a shift's senior)
    those targets."""

    seniors: list[EmailPreference]
    online: set[int]
    targets: dict[int, str | None] | None = None


@dataclass
class Chosen:
    """Who is emailed now (user id → reason) and who is held until when (user id → UTC
    moment, and its reason)."""

    now: dict[int, str]
    held: dict[int, tuple[datetime, str]]

    @classmethod
    def of(cls, plan: EmailPlan, reason: str) -> Chosen:
        return cls(
            {user_id: reason for user_id in plan.now},
            {user_id: (until, reason) for user_id, until in plan.held_until.items()},
        )

    def add(self, other: Chosen) -> None:
        self.now.update(other.now)
        self.held.update(other.held)


def _always(user_ids, reason: str) -> Chosen:
    return Chosen({user_id: reason for user_id in user_ids}, {})


def _by_schedule(audience: Audience, moment: Moment, fallback: bool) -> Chosen:
    seniors = audience.seniors
    if moment.business_hours:
        plan = plan_emails(seniors, audience.online, moment.at)
        return Chosen.of(plan, FALLBACK if fallback else BUSINESS_HOURS)
    on_call = [p.user_id for p in seniors if p.user_id in moment.on_call]
    if on_call:
        offline = [user_id for user_id in on_call if user_id not in audience.online]
        return _always(offline, FALLBACK if fallback else ON_CALL)
    admins = [p.user_id for p in seniors if p.role == "admin"]
    return _always(admins, FALLBACK if fallback else NOBODY_ON_CALL)


def _holder(audience: Audience, moment: Moment, reason: str) -> Chosen:
    chosen = Chosen({}, {})
    targets = audience.targets or {}
    for preference in audience.seniors:
        if preference.user_id not in targets:
            continue
        if not moment.business_hours and preference.user_id in moment.on_call:
            if preference.user_id not in audience.online:
                chosen.now[preference.user_id] = reason
            continue
        chosen.add(Chosen.of(plan_emails([preference], audience.online, moment.at), reason))
    return chosen


def _emailed_before(audience: Audience, moment: Moment, reason: str) -> Chosen:
    chosen = Chosen({}, {})
    targets = audience.targets or {}
    for preference in audience.seniors:
        if preference.user_id not in targets:
            continue
        first = targets[preference.user_id]
        if first in BY_PREFERENCE_REASONS:
            online = set() if first == FALLBACK else audience.online
            chosen.add(Chosen.of(plan_emails([preference], online, moment.at), reason))
        else:
            chosen.now[preference.user_id] = reason
    return chosen


def choose(event: str, audience: Audience, moment: Moment, fallback: bool = False) -> Chosen:
    """Who is emailed about `event` at `moment`, and why (pure). `fallback`: the live
    event could not be delivered, so everyone counts as offline."""
    email = rule_for(event).email
    if email is None:
        return Chosen({}, {})
    if fallback:
        audience = Audience(audience.seniors, set(), audience.targets)
    if email.audience == BY_SCHEDULE:
        return _by_schedule(audience, moment, fallback)
    reason = FALLBACK if fallback else email.reason or BUSINESS_HOURS
    if email.audience == ADMINS:
        return _always([p.user_id for p in audience.seniors if p.role == "admin"], reason)
    if email.audience == HOLDER:
        return _holder(audience, moment, reason)
    if email.audience == EMAILED_BEFORE:
        return _emailed_before(audience, moment, reason)
    active = {p.user_id for p in audience.seniors}
    return _always([t for t in audience.targets or {} if t in active], reason)

"""A few months of demo history, so a fresh local install has a queue and analytics to show.

Written once per account (a second call finds the history and does nothing): resolved
escalations spread over the last months with claims and first actions by the seniors, a
couple still open in the queue, then the months rolled up. Rows are written directly with
past timestamps and no outbox events: nobody is notified about the past.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from models.db import db, transaction, utcnow
from models.entities import SENIOR_ROLES, Account, FlowSession, Handoff, Message, User
from models.handoff_steps import Policy
from models.rollup import current_month, recent_months, roll_up

HISTORY_MONTHS = 4
PER_MONTH = 6
#: The open escalations: their priority and how many minutes they have waited (p1:
#: reminded after 2 and at the admins after 5; p2 after 5 and 10 by default).
OPEN_NOW_WAITING = (("p1", 1), ("p2", 3))
OPEN_NOW = len(OPEN_NOW_WAITING)
DEMO_TITLES = (
    ("VPN drops every hour", "Rekeying fails after an hour", "Contoso Dental"),
    ("Outlook asks for a password in a loop", "Modern auth loop after the move", "Fabrikam Law"),
    ("Printer offline on floor 2", "Spooler keeps crashing", "Northwind Traders"),
    ("Disk full on FS01", "Shadow copies fill the volume", "Contoso Dental"),
    ("Teams calls drop", "Packet loss on the office Wi-Fi", "Tailspin Toys"),
    ("New laptop will not join the domain", "Trust relationship failed", "Fabrikam Law"),
)
OUTCOMES = (
    "Fixed: the client's rekey lifetime now matches the gateway.",
    "Cleared the WAM token cache; signed in fine.",
    "Reinstalled the driver from the vendor package.",
    "Moved the shadow copies to their own volume.",
    None,
)


@dataclass(frozen=True)
class DemoHistory:
    handoffs: int
    months: tuple[str, ...]


def _has_history(account: Account) -> bool:
    return (
        db.session.scalar(select(Handoff.id).where(Handoff.account_id == account.id).limit(1))
        is not None
    )


def _people(account: Account) -> tuple[User, list[User]]:
    users = list(db.session.scalars(select(User).where(User.account_id == account.id)))
    technician = next((u for u in users if u.role == "technician"), users[0])
    engineers = [u for u in users if u.role == "engineer"] or [
        u for u in users if u.role in SENIOR_ROLES
    ]
    return technician, engineers


def _acted(
    account: Account,
    session: FlowSession,
    handoff: Handoff,
    senior: User,
    minutes_to_act: float,
    pick: int,
    outcome: str | None,
) -> None:
    """Claimed, acted on (credited to the senior) and resolved, with the senior's message."""
    created_at = handoff.created_at
    acted_at = created_at + timedelta(minutes=minutes_to_act)
    handoff.claimed_by_id = senior.id
    handoff.claimed_at = created_at + timedelta(minutes=minutes_to_act * 0.4)
    handoff.first_action_at = acted_at
    handoff.first_action_kind = "chat" if pick % 3 else "psa_writeback"
    handoff.first_action_by_id = senior.id
    handoff.time_to_first_action_seconds = minutes_to_act * 60
    handoff.resolved_at = acted_at + timedelta(minutes=25)
    handoff.outcome = outcome
    db.session.add(
        Message(
            account_id=account.id,
            session_id=session.id,
            author=senior,
            body="On it: looking at this now.",
            created_at=acted_at,
        )
    )


def _add(
    account: Account,
    technician: User,
    senior: User | None,
    created_at: datetime,
    minutes_to_act: float | None,
    pick: int,
    outcome: str | None,
    priority: str = "p3",
) -> Handoff:
    title, reason, customer = DEMO_TITLES[pick % len(DEMO_TITLES)]
    session = FlowSession(
        account_id=account.id,
        technician=technician,
        title=title,
        customer=customer,
        priority=priority,
        snapshot={"customer": customer, "steps_tried": ["Rebooted", "Checked the event log"]},
        ai_assessment={"summary": reason, "confidence": 0.6},
        status="resolved" if senior else "escalated",
        created_at=created_at - timedelta(minutes=20),
    )
    db.session.add(session)
    db.session.flush()  # the session's id, for its handoff and message
    handoff = Handoff(
        account_id=account.id,
        session_id=session.id,
        escalated_by_id=technician.id,
        status="resolved" if senior else "open",
        title=title,
        reason=reason,
        escalation_package={"reason": reason, "notes": None, "recent_messages": []},
        created_at=created_at,
    )
    if senior is not None and minutes_to_act is not None:
        _acted(account, session, handoff, senior, minutes_to_act, pick, outcome)
    else:
        # Open: it runs the account's unclaimed policy for its priority from now on.
        handoff.reminders_sent = 0
        handoff.next_step_at = Policy.of(account, priority).next_step_at(created_at, 0, False)
    db.session.add(handoff)
    return handoff


def seed_history(account: Account, now: datetime | None = None, seed: int = 7) -> DemoHistory:
    """Write the demo history for `account` once, then roll up its months."""
    now = now or utcnow()
    months = recent_months(current_month(account, now), HISTORY_MONTHS)
    if _has_history(account):
        return DemoHistory(0, ())
    technician, engineers = _people(account)
    rng = random.Random(seed)
    written = 0
    with transaction():
        for back in range(HISTORY_MONTHS):
            for index in range(PER_MONTH if back else PER_MONTH // 2):
                # Spread over the month, always in the past.
                created_at = now - timedelta(
                    days=30 * back + 2 + index * 4, hours=rng.randint(0, 8)
                )
                senior = engineers[(back + index) % len(engineers)]
                minutes = round(rng.uniform(3, 28), 1)
                outcome = OUTCOMES[(back + index) % len(OUTCOMES)]
                _add(account, technician, senior, created_at, minutes, back + index, outcome)
                written += 1
        # Open now, with the first step of the policy a minute or two away, so an owner
        # trying the product watches a reminder and then the admin step happen.
        for index, (priority, waited) in enumerate(OPEN_NOW_WAITING):
            created_at = now - timedelta(minutes=waited)
            _add(account, technician, None, created_at, None, index, None, priority)
            written += 1
    # The rows span a little more than the months shown: roll up every month they touch.
    roll_up(list(months) + [months[-1].shifted(-1)], account_id=account.id, now=now)
    return DemoHistory(written, tuple(str(m) for m in months))


__all__ = ["DemoHistory", "seed_history"]

"""Unclaimed handoffs: reminders to the seniors, then escalation to the account's admins.

The account's policy, per priority (`policy_by_priority`: p1 and p2 faster by default; a
field a priority leaves out is the account-wide value): after `renotify_after_minutes` open
and unclaimed, and again every
`renotify_after_minutes` up to `renotify_max` times, a reminder (`handoff.reminder`); after
`escalate_to_admins_after_minutes`, the admin step (`handoff.unclaimed`). The clock runs
from `created_at`, through releases too. A null setting turns its step off.

Each handoff stores when its next step is due (`next_step_at`, null when none is left or it
is claimed). A beat-driven task asks for the due ones with one indexed range scan and takes
their steps a batch of handoffs per transaction; for each handoff it:

- advances the handoff with a conditional UPDATE (`WHERE status = 'open' AND
  reminders_sent = <seen> ...`, one statement for the batch, RETURNING the handoffs it
  advanced): a claim that committed first leaves its handoff out, and a duplicate tick or a
  second beat loses the same way;
- inserts the `handoff_steps` row, unique per (handoff, step), as a second guard;
- writes the timeline row and announces the outbox event.

So a step happens once, or not at all when a claim won; a worker killed before the commit
leaves it due for the next tick, one killed after it leaves the outbox event to the relay.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, case, cast, column, func, select, text, update, values
from sqlalchemy.exc import IntegrityError

from models import outbox, timeline
from models.db import db, transaction, utcnow
from models.entities import POLICY_DEFAULTS, Account, FlowSession, Handoff, HandoffStep
from models.errors import ValidationFailed

log = logging.getLogger(__name__)

DEFAULT_RENOTIFY_AFTER_MINUTES = POLICY_DEFAULTS["renotify_after_minutes"]
DEFAULT_RENOTIFY_MAX = POLICY_DEFAULTS["renotify_max"]
DEFAULT_ESCALATE_TO_ADMINS_AFTER_MINUTES = POLICY_DEFAULTS["escalate_to_admins_after_minutes"]
RENOTIFY_AFTER_RANGE = (1, 240)
RENOTIFY_MAX_RANGE = (0, 10)
ESCALATE_TO_ADMINS_RANGE = (1, 1440)
# Handoffs taken per scan; a larger backlog is finished by the next ticks.
SCAN_LIMIT = 1000
# Handoffs per transaction while taking steps.
STEPS_PER_BATCH = 100
ADMINS_STEP = "admins"

# How long a policy "minute" lasts. Tests of the whole stack shorten it (POLICY_MINUTE_SECONDS)
# so a reminder comes after seconds; in production it is a minute: the setting's default,
# defined here once (web.config and the app factory read it).
POLICY_MINUTE_SECONDS = 60.0
_minute = timedelta(seconds=POLICY_MINUTE_SECONDS)


def set_policy_minute(seconds: float) -> None:
    global _minute
    _minute = timedelta(seconds=seconds)


POLICY_FIELDS = ("renotify_after_minutes", "renotify_max", "escalate_to_admins_after_minutes")
#: The per-priority policy an account has until an admin sets its own: urgency sets the
#: pace. A priority without an entry (p3, p4), or a field left out, uses the account-wide
#: value.
DEFAULT_POLICY_BY_PRIORITY: dict[str, dict[str, int | None]] = {
    "p1": {"renotify_after_minutes": 2, "escalate_to_admins_after_minutes": 5},
    "p2": {"renotify_after_minutes": 5, "escalate_to_admins_after_minutes": 10},
}
_PRIORITIES = ("p1", "p2", "p3", "p4")


def reminder_step(number: int) -> str:
    return f"reminder-{number}"


@dataclass(frozen=True)
class Policy:
    renotify_after_minutes: int | None = DEFAULT_RENOTIFY_AFTER_MINUTES
    renotify_max: int = DEFAULT_RENOTIFY_MAX
    escalate_to_admins_after_minutes: int | None = DEFAULT_ESCALATE_TO_ADMINS_AFTER_MINUTES

    @classmethod
    def of(cls, account: Account, priority: str | None = None) -> Policy:
        """The account's policy for a handoff of `priority`: the priority's own entry of
        `policy_by_priority`, each field it leaves out taken from the account-wide one."""
        fields = {
            "renotify_after_minutes": account.renotify_after_minutes,
            "renotify_max": (
                account.renotify_max if account.renotify_max is not None else DEFAULT_RENOTIFY_MAX
            ),
            "escalate_to_admins_after_minutes": account.escalate_to_admins_after_minutes,
        }
        if priority is not None:
            fields.update(policy_by_priority(account).get(priority, {}))
        return cls(**fields)

    def reminder_due_at(self, created_at: datetime, number: int) -> datetime | None:
        if not self.renotify_after_minutes or number > self.renotify_max:
            return None
        return created_at + number * self.renotify_after_minutes * _minute

    def admins_due_at(self, created_at: datetime) -> datetime | None:
        if not self.escalate_to_admins_after_minutes:
            return None
        return created_at + self.escalate_to_admins_after_minutes * _minute

    def next_step_at(
        self, created_at: datetime, reminders_sent: int, admins_told: bool
    ) -> datetime | None:
        """When the earliest step not yet taken is due; None when none is left."""
        candidates = [self.reminder_due_at(created_at, reminders_sent + 1)]
        if not admins_told:
            candidates.append(self.admins_due_at(created_at))
        return min((at for at in candidates if at is not None), default=None)

    def reminders_due(self, created_at: datetime, now: datetime) -> int:
        """How many reminders are due by `now` (capped at renotify_max)."""
        if not self.renotify_after_minutes or now < created_at:
            return 0
        elapsed = (now - created_at) / (self.renotify_after_minutes * _minute)
        return min(self.renotify_max, math.floor(elapsed))


_RULES = {
    "renotify_after_minutes": (RENOTIFY_AFTER_RANGE, True),
    "renotify_max": (RENOTIFY_MAX_RANGE, False),
    "escalate_to_admins_after_minutes": (ESCALATE_TO_ADMINS_RANGE, True),
}


def _field_problems(changes: dict, prefix: str = "") -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for name, ((low, high), nullable) in _RULES.items():
        if name not in changes:
            continue
        value = changes[name]
        if value is None and nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            off = " or null to turn it off" if nullable else ""
            problems[prefix + name] = [f"Must be a whole number from {low} to {high}{off}."]
    return problems


def validate_policy(changes: dict) -> dict:
    """The policy fields of an account update, checked (field → messages on error)."""
    problems = _field_problems(changes)
    if problems:
        raise ValidationFailed("Some fields are invalid.", problems)
    return {name: changes[name] for name in _RULES if name in changes}


def validate_policy_by_priority(value: object) -> dict[str, dict[str, int | None]] | None:
    """`policy_by_priority` as PATCH /account gives it: null (back to the defaults) or an
    object of priorities (p1–p4), each an object of the account-wide policy fields, checked
    like them. Problems are keyed `policy_by_priority.<priority>[.<field>]`."""
    key = "policy_by_priority"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(
            "Some fields are invalid.", {key: ["Must be an object keyed by priority, or null."]}
        )
    problems: dict[str, list[str]] = {}
    for priority, entry in value.items():
        where = f"{key}.{priority}"
        if priority not in _PRIORITIES:
            problems[where] = ["Unknown priority: must be p1, p2, p3 or p4."]
        elif not isinstance(entry, dict):
            problems[where] = ["Must be an object of policy fields."]
        else:
            unknown = sorted(set(entry) - set(_RULES))
            if unknown:
                problems[where] = [f"Unknown field(s): {', '.join(map(str, unknown))}."]
            problems.update(_field_problems(entry, where + "."))
    if problems:
        raise ValidationFailed("Some fields are invalid.", problems)
    return {
        priority: {name: entry[name] for name in _RULES if name in entry}
        for priority, entry in sorted(value.items())
    }


def policy_by_priority(account: Account) -> dict[str, dict[str, int | None]]:
    """The account's per-priority entries (its own, else the defaults)."""
    stored = account.policy_by_priority
    return DEFAULT_POLICY_BY_PRIORITY if stored is None else stored


def effective_policies(account: Account) -> dict[str, Policy]:
    """What each priority runs, every field resolved."""
    return {priority: Policy.of(account, priority) for priority in _PRIORITIES}


def reschedule_open_handoffs(account: Account) -> int:
    """After a policy change: recompute when each open handoff's next step is due (in the
    caller's transaction). Steps already taken stay taken."""
    policies = effective_policies(account)
    rows = db.session.execute(
        select(
            Handoff.id,
            Handoff.created_at,
            Handoff.reminders_sent,
            Handoff.escalated_to_admins_at,
            FlowSession.priority,
        )
        .join(FlowSession, FlowSession.id == Handoff.session_id)
        .where(Handoff.account_id == account.id, Handoff.status == "open")
    ).all()
    for row in rows:
        policy = policies.get(row.priority) or Policy.of(account)
        db.session.execute(
            update(Handoff)
            .where(Handoff.id == row.id, Handoff.status == "open")
            .values(
                next_step_at=policy.next_step_at(
                    row.created_at, row.reminders_sent, row.escalated_to_admins_at is not None
                )
            )
            .execution_options(synchronize_session=False)
        )
    return len(rows)


def due_handoff_ids(now: datetime, limit: int = SCAN_LIMIT) -> list[int]:
    """Open handoffs whose next step is due: one range scan of the partial index
    ix_handoffs_open_next_step (the literal `status = 'open'` lets SQLite use it)."""
    return list(
        db.session.scalars(
            select(Handoff.id)
            .where(text("handoffs.status = 'open'"), Handoff.next_step_at <= now)
            .order_by(Handoff.next_step_at)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class StepsTaken:
    reminders: int
    admin_steps: int
    skipped: int


def run_due_steps(
    now: datetime | None = None, limit: int = SCAN_LIMIT, batch_size: int = STEPS_PER_BATCH
) -> StepsTaken:
    """One tick: take every due step, a batch of handoffs per transaction (short, for
    SQLite's single writer; one UPDATE and one commit per batch). Each batch's outbox
    events go out with its commit (models.outbox.on_commit)."""
    now = now or utcnow()
    due = due_handoff_ids(now, limit)
    taken: list[list[str]] = []
    for start in range(0, len(due), batch_size):
        chunk = due[start : start + batch_size]
        try:
            with transaction():
                taken += _take_batch(_load(chunk), now)
        except IntegrityError:
            # A step row already existed (counters edited by hand?): retry one by one, so
            # only the offending handoff is left out.
            log.warning("A batch of steps met an existing step; taking them one by one")
            taken += [take_due_steps(handoff_id, now) for handoff_id in chunk]
    return StepsTaken(
        reminders=sum(t.count("reminder") for t in taken),
        admin_steps=sum(t.count("admins") for t in taken),
        skipped=sum(not t for t in taken),
    )


def _load(handoff_ids: list[int]) -> list[tuple[Handoff, Policy]]:
    """The handoffs and their accounts' policies: two queries for the whole batch."""
    found = db.session.execute(
        select(Handoff, FlowSession.priority)
        .join(FlowSession, FlowSession.id == Handoff.session_id)
        .where(Handoff.id.in_(handoff_ids))
    ).all()
    account_ids = {handoff.account_id for handoff, _ in found}
    policies = {
        account.id: effective_policies(account)
        for account in db.session.scalars(select(Account).where(Account.id.in_(account_ids)))
    }
    return [(handoff, policies[handoff.account_id][priority]) for handoff, priority in found]


def take_due_steps(handoff_id: int, now: datetime) -> list[str]:
    """Take one handoff's due steps in a transaction of its own."""
    try:
        with transaction():
            taken = _take_batch(_load([handoff_id]), now)
    except IntegrityError:
        outbox.forget_announced()
        log.warning("Handoff %s: a step was already taken; nothing done", handoff_id)
        return []
    return taken[0] if taken else []


@dataclass(frozen=True)
class StepPlan:
    """What one handoff's steps would do, from the state it was read in."""

    handoff: Handoff
    policy: Policy
    seen_reminders: int
    admins_told: bool
    reminder: int | None  # the reminder to send now (reminders due together are one)
    admins: bool
    next_step_at: datetime | None


def _plan(handoff: Handoff, policy: Policy, now: datetime) -> StepPlan:
    seen = handoff.reminders_sent
    admins_told = handoff.escalated_to_admins_at is not None
    due = policy.reminders_due(handoff.created_at, now)
    reminder = due if due > seen else None
    admins_due = policy.admins_due_at(handoff.created_at)
    admins = not admins_told and admins_due is not None and admins_due <= now
    sent_after = reminder if reminder is not None else seen
    next_at = policy.next_step_at(handoff.created_at, sent_after, admins_told or admins)
    return StepPlan(handoff, policy, seen, admins_told, reminder, admins, next_at)


def _take_batch(loaded: list[tuple[Handoff, Policy]], now: datetime) -> list[list[str]]:
    """Take the due steps of a batch of handoffs (in the caller's transaction).

    One conditional UPDATE advances every handoff still in the state it was read in (open,
    same reminder count, same admin flag) and returns those it advanced: a claim or another
    tick that committed first leaves its handoff out. Only those get their step, timeline
    and outbox rows. Returns what each handoff got ("reminder" and/or "admins")."""
    plans = [_plan(handoff, policy, now) for handoff, policy in loaded if handoff.status == "open"]
    if not plans:
        return [[] for _ in loaded]
    advanced = _advance(plans, now)
    return [_record(plan, now) if plan.handoff.id in advanced else [] for plan in plans]


def _advance(plans: list[StepPlan], now: datetime) -> set[int]:
    rows = (
        values(
            column("id", Integer),
            column("seen", Integer),
            column("told", Integer),
            column("sent_after", Integer),
            column("next_at", DateTime),
            column("admins_at", DateTime),
            name="planned",
        )
        .data(
            [
                (
                    p.handoff.id,
                    p.seen_reminders,
                    int(p.admins_told),
                    p.reminder if p.reminder is not None else p.seen_reminders,
                    p.next_step_at,
                    now if p.admins else None,
                )
                for p in plans
            ]
        )
        .cte("planned")
    )
    table = Handoff.__table__
    next_at, admins_at = rows.c.next_at, rows.c.admins_at
    if db.session.get_bind().dialect.name == "postgresql":
        # PostgreSQL types a VALUES column of NULLs as text; SQLite stores timestamps as text.
        next_at, admins_at = cast(next_at, DateTime), cast(admins_at, DateTime)
    statement = (
        update(table)
        .where(
            table.c.id == rows.c.id,
            text("handoffs.status = 'open'"),
            table.c.reminders_sent == rows.c.seen,
            case((table.c.escalated_to_admins_at.is_(None), 0), else_=1) == rows.c.told,
        )
        .values(
            reminders_sent=rows.c.sent_after,
            next_step_at=next_at,
            escalated_to_admins_at=func.coalesce(admins_at, table.c.escalated_to_admins_at),
        )
        .returning(table.c.id)
    )
    return set(db.session.execute(statement).scalars())


def _record(plan: StepPlan, now: datetime) -> list[str]:
    handoff, policy, taken = plan.handoff, plan.policy, []
    if plan.reminder is not None:
        due_at = policy.reminder_due_at(handoff.created_at, plan.reminder)
        _step(handoff, reminder_step(plan.reminder), due_at, outbox.HANDOFF_REMINDER)
        timeline.record(handoff, timeline.REMINDED, at=now, number=plan.reminder)
        taken.append("reminder")
    if plan.admins:
        _step(
            handoff, ADMINS_STEP, policy.admins_due_at(handoff.created_at), outbox.HANDOFF_UNCLAIMED
        )
        timeline.record(handoff, timeline.ESCALATED_TO_ADMINS, at=now)
        taken.append("admins")
    return taken


def _step(handoff: Handoff, step: str, due_at: datetime | None, event: str) -> None:
    announced = outbox.announce(handoff, event)
    db.session.add(
        HandoffStep(
            account_id=handoff.account_id,
            handoff_id=handoff.id,
            step=step,
            due_at=due_at or utcnow(),
            outbox_event=announced,
        )
    )


def step_of_event(outbox_event_id: int) -> str | None:
    """The step (`reminder-<n>`, `admins`) an outbox event announced, if it was a step."""
    return db.session.scalar(
        select(HandoffStep.step).where(HandoffStep.outbox_event_id == outbox_event_id)
    )

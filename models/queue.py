"""The seniors' queue: handoffs filtered, sorted and keyset-paged, and the tabs' counts.

A page position is plain text the edge wraps into an opaque cursor: the last item's
creation time (microseconds since 1970, UTC) and id (sort `oldest` or `newest`), or its
priority, creation time and id (`p2:1765100000000000:123`, sort `priority`). Every sort
goes by creation time and ends on the id, so a position is exact and a page never repeats
or skips an item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import contains_eager

from models.db import db
from models.entities import HANDOFF_STATUSES, PRIORITIES, FlowSession, Handoff, User
from models.errors import ValidationFailed

SORTS = ("oldest", "priority", "newest")
STATUS_FILTERS = (*HANDOFF_STATUSES, "all")
MAX_SEARCH_CHARS = 200
_POSITION = {
    "oldest": re.compile(r"(\d{1,17}):(\d{1,18})"),
    "newest": re.compile(r"(\d{1,17}):(\d{1,18})"),
    "priority": re.compile(r"(p[1-4]):(\d{1,17}):(\d{1,18})"),
}
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows. `claimed_by` and `escalated_by` are user ids; `customer`
    matches whole (any case); `q` is a piece of the title (any case)."""

    status: str = "open"
    claimed_by: int | None = None
    escalated_by: int | None = None
    priority: str | None = None
    customer: str | None = None
    q: str | None = None

    def check(self) -> None:
        problems: dict[str, list[str]] = {}
        if self.status not in STATUS_FILTERS:
            problems["status"] = ["Must be open, claimed, resolved or all."]
        if self.priority is not None and self.priority not in PRIORITIES:
            problems["priority"] = ["Must be p1, p2, p3 or p4."]
        if self.q is not None and len(self.q) > MAX_SEARCH_CHARS:
            problems["q"] = [f"At most {MAX_SEARCH_CHARS} characters."]
        if problems:
            raise ValidationFailed("Some fields are invalid.", problems)


def _filtered(user: User, wanted: QueueFilter, *columns) -> Select:
    query = (
        select(*columns)
        .select_from(Handoff)
        .join(FlowSession, FlowSession.id == Handoff.session_id)
        .where(Handoff.account_id == user.account_id)
    )
    if wanted.claimed_by is not None:
        query = query.where(Handoff.claimed_by_id == wanted.claimed_by)
    if wanted.escalated_by is not None:
        query = query.where(Handoff.escalated_by_id == wanted.escalated_by)
    if wanted.priority is not None:
        query = query.where(FlowSession.priority == wanted.priority)
    if wanted.customer:
        query = query.where(func.lower(FlowSession.customer) == wanted.customer.strip().lower())
    if wanted.q and wanted.q.strip():
        query = query.where(Handoff.title.icontains(wanted.q.strip(), autoescape=True))
    return query


def _micros(moment: datetime) -> int:
    return round((moment - _EPOCH).total_seconds() * 1_000_000)


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def parse_position(sort: str, position: str | None) -> tuple | None:
    if position is None:
        return None
    match = _POSITION[sort].fullmatch(position)
    if match is None:
        raise ValidationFailed(
            "Some fields are invalid.", {"cursor": ["Not a cursor for this sort."]}
        )
    try:
        if sort == "priority":
            return match.group(1), _moment(int(match.group(2))), int(match.group(3))
        return _moment(int(match.group(1))), int(match.group(2))
    except OverflowError:
        raise ValidationFailed(
            "Some fields are invalid.", {"cursor": ["Not a cursor for this sort."]}
        ) from None


def _position_of(sort: str, handoff: Handoff) -> str:
    at = f"{_micros(handoff.created_at)}:{handoff.id}"
    return f"{handoff.session.priority}:{at}" if sort == "priority" else at


def _after(created_at: datetime, handoff_id: int, newest: bool = False):
    """Past (created_at, id) in the sort's direction: the keyset condition."""
    if newest:
        return or_(
            Handoff.created_at < created_at,
            and_(Handoff.created_at == created_at, Handoff.id < handoff_id),
        )
    return or_(
        Handoff.created_at > created_at,
        and_(Handoff.created_at == created_at, Handoff.id > handoff_id),
    )


def _ordered(query: Select, sort: str, after: tuple | None) -> Select:
    """By creation time (the id breaks ties), never by id alone: ids need not follow
    creation (imported or seeded rows). `priority` is the most urgent first, then the
    longest waiting."""
    if sort == "priority":
        if after is not None:
            priority, created_at, after_id = after
            query = query.where(
                or_(
                    FlowSession.priority > priority,
                    and_(FlowSession.priority == priority, _after(created_at, after_id)),
                )
            )
        return query.order_by(FlowSession.priority, Handoff.created_at, Handoff.id)
    if sort == "newest":
        if after is not None:
            query = query.where(_after(*after, newest=True))
        return query.order_by(Handoff.created_at.desc(), Handoff.id.desc())
    if after is not None:
        query = query.where(_after(*after))
    return query.order_by(Handoff.created_at, Handoff.id)


def find_handoffs(
    user: User,
    wanted: QueueFilter,
    sort: str = "oldest",
    limit: int = 50,
    position: str | None = None,
) -> tuple[list[Handoff], str | None]:
    """One page of the account's handoffs and the position after it (None on the last)."""
    wanted.check()
    if sort not in SORTS:
        raise ValidationFailed(
            "Some fields are invalid.", {"sort": ["Must be oldest, priority or newest."]}
        )
    query = _filtered(user, wanted, Handoff).options(contains_eager(Handoff.session))
    if wanted.status != "all":
        query = query.where(Handoff.status == wanted.status)
    query = _ordered(query, sort, parse_position(sort, position))
    rows = list(db.session.scalars(query.limit(limit + 1)).unique())
    next_position = _position_of(sort, rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_position


def tab_counts(user: User, wanted: QueueFilter) -> dict[str, int]:
    """How many handoffs each queue tab holds under the same filters (one query):
    unclaimed (open), mine (claimed by the user), claimed (by anyone), resolved."""
    mine = case((and_(Handoff.status == "claimed", Handoff.claimed_by_id == user.id), 1), else_=0)
    everyone = replace(wanted, claimed_by=None)
    query = _filtered(user, everyone, Handoff.status, func.count(), func.sum(mine))
    counts = {"unclaimed": 0, "mine": 0, "claimed": 0, "resolved": 0}
    for status, count, mine_count in db.session.execute(query.group_by(Handoff.status)):
        if status == "open":
            counts["unclaimed"] = count
        elif status in counts:
            counts[status] = count
        counts["mine"] += mine_count or 0
    return counts


def known_customers(user: User, limit: int = 200) -> list[str]:
    """The customers the account's sessions name, for the filter's suggestions."""
    return list(
        db.session.scalars(
            select(FlowSession.customer)
            .where(FlowSession.account_id == user.account_id, FlowSession.customer.is_not(None))
            .group_by(FlowSession.customer)
            .order_by(FlowSession.customer)
            .limit(limit)
        )
    )


def account_people(user: User) -> list[User]:
    """The account's users by name (anyone who opens a session may escalate it)."""
    return list(
        db.session.scalars(
            select(User).where(User.account_id == user.account_id).order_by(User.name, User.id)
        )
    )

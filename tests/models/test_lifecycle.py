"""The handoff lifecycle in the domain: repeats are harmless and announce nothing twice."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import db, escalations, outbox
from models.entities import Handoff, OutboxEvent, User
from models.errors import Conflict, Forbidden
from models.sessions import create_session
from tests.factories import make_tenant


@pytest.fixture
def people(app) -> dict[str, User]:
    tenant = make_tenant("Alpha MSP")
    return {who: db.session.get(User, user_id) for who, user_id in tenant.users.items()}


def fresh_handoff(people, key: str | None = None) -> Handoff:
    session = create_session(people["tech"], "VPN drops", {"step": 1}, None)
    handoff, created = escalations.escalate(people["tech"], session.id, "Stuck", None, key)
    assert created
    return handoff


def events_of(handoff_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(OutboxEvent.event)
            .where(OutboxEvent.handoff_id == handoff_id)
            .order_by(OutboxEvent.id)
        )
    )


def test_claiming_again_and_resolving_again_announce_nothing_new(people):
    handoff = fresh_handoff(people)
    first = escalations.claim(people["eng"], handoff.id)
    again = escalations.claim(people["eng"], handoff.id)
    assert first.id == again.id and again.claimed_by_id == people["eng"].id
    escalations.resolve(people["eng"], handoff.id)
    assert escalations.resolve(people["admin"], handoff.id).status == "resolved"
    assert events_of(handoff.id) == [
        outbox.HANDOFF_CREATED,
        outbox.HANDOFF_CLAIMED,
        outbox.HANDOFF_RESOLVED,
    ]


def test_a_resolved_handoff_cannot_be_claimed_by_anyone(people):
    handoff = fresh_handoff(people)
    escalations.claim(people["eng"], handoff.id)
    escalations.resolve(people["eng"], handoff.id)
    for who in ("eng", "eng2", "admin"):
        with pytest.raises(Conflict) as refused:
            escalations.claim(people[who], handoff.id)
        assert refused.value.code == "already_resolved"
        assert refused.value.details["claimed_by"] == {
            "id": people["eng"].id,
            "name": "Alpha MSP Eng",
        }
    stored = db.session.get(Handoff, handoff.id)
    assert (stored.status, stored.claimed_by_id) == ("resolved", people["eng"].id)
    assert events_of(handoff.id).count(outbox.HANDOFF_CLAIMED) == 1


def test_an_open_handoff_is_claimed_before_it_is_resolved(people):
    handoff = fresh_handoff(people)
    with pytest.raises(Conflict) as refused:
        escalations.resolve(people["admin"], handoff.id)
    assert refused.value.code == "not_claimed"
    with pytest.raises(Forbidden):
        escalations.resolve(people["tech"], handoff.id)
    assert db.session.get(Handoff, handoff.id).status == "open"


def test_an_idempotency_key_belongs_to_one_session(people):
    handoff = fresh_handoff(people, key="retry-1")
    replay, created = escalations.escalate(
        people["tech"], handoff.session_id, "Stuck", None, "retry-1"
    )
    assert (replay.id, created) == (handoff.id, False)
    other = create_session(people["tech"], "Printer", {}, None)
    with pytest.raises(Conflict) as refused:
        escalations.escalate(people["tech"], other.id, "Stuck", None, "retry-1")
    assert refused.value.code == "idempotency_key_reused"
    assert db.session.scalar(select(Handoff).where(Handoff.session_id == other.id)) is None


def test_the_domain_refuses_a_technician_claim_whoever_calls_it(app, tenant):
    """The role check is the domain's, not only the route's: a direct call is refused too."""
    technician = db.session.get(User, tenant.users["tech"])
    session = create_session(technician, "Printer offline", {"device": "PRN-1"}, None)
    handoff, _ = escalations.escalate(technician, session.id, "Stuck")
    with pytest.raises(Forbidden):
        escalations.claim(technician, handoff.id)
    db.session.expire_all()
    assert db.session.get(Handoff, handoff.id).status == "open"

"""The rules the pages ask (models/permissions.py) say exactly what the operations allow:
for every role and every state of a handoff, an action is offered if and only if doing it
changes the handoff."""

from __future__ import annotations

import pytest

from models import db, escalations, handover, permissions
from models.accounts import create_account, create_user
from models.entities import FlowSession, Handoff, User
from models.errors import DomainError
from models.sessions import create_session, latest_handoff

STATES = ("open", "claimed", "resolved")


@pytest.fixture
def people(app) -> dict[str, User]:
    account, owner, _ = create_account("Permissions MSP", "Ada Admin", "ada@perm.example")
    people = {"admin": owner}
    for who, role in (("tech", "technician"), ("tech2", "technician")):
        people[who], _ = create_user(account, who, f"{who}@perm.example", role)
    for who in ("eng", "eng2"):
        people[who], _ = create_user(account, who, f"{who}@perm.example", "engineer")
    return people


def handoff_in(state: str, people: dict[str, User]) -> tuple[FlowSession, Handoff]:
    """A session of `tech` escalated by them, then claimed (and resolved) by `eng`."""
    session = create_session(people["tech"], "VPN drops", {"step": 1}, None)
    handoff, _ = escalations.escalate(people["tech"], session.id, "Stuck")
    if state in ("claimed", "resolved"):
        escalations.claim(people["eng"], handoff.id)
    if state == "resolved":
        escalations.resolve(people["eng"], handoff.id)
    db.session.refresh(handoff)
    return session, handoff


def succeeds(operation, *args) -> bool:
    try:
        operation(*args)
    except DomainError:
        return False
    return True


@pytest.mark.parametrize("state", STATES)
def test_claim_is_offered_exactly_when_claiming_takes_the_handoff(people, state):
    for who, user in people.items():
        _, handoff = handoff_in(state, people)
        offered = permissions.can_claim(user, handoff)
        taken = succeeds(escalations.claim, user, handoff.id)
        db.session.refresh(handoff)
        took_it = taken and state == "open" and handoff.claimed_by_id == user.id
        assert offered == took_it, (who, state)


@pytest.mark.parametrize("state", STATES)
def test_the_queue_cards_table_says_what_the_claim_rule_says(people, state):
    """card_actions is what the queue page is told once for every card, live ones included:
    for each user and status it gives can_claim's answer on a handoff in that status."""
    for who, user in people.items():
        _, handoff = handoff_in(state, people)
        table = permissions.card_actions(user)
        assert set(table) == set(STATES)
        assert table[state] == {"claim": permissions.can_claim(user, handoff)}, (who, state)
        assert table[state]["claim"] == (state == "open" and who in ("admin", "eng", "eng2"))


@pytest.mark.parametrize("state", STATES)
def test_resolve_is_offered_exactly_when_resolving_closes_the_handoff(people, state):
    for who, user in people.items():
        _, handoff = handoff_in(state, people)
        offered = permissions.can_resolve(user, handoff)
        closed = succeeds(escalations.resolve, user, handoff.id) and state == "claimed"
        assert offered == closed, (who, state)


@pytest.mark.parametrize("state", STATES)
def test_only_the_holder_or_an_admin_may_hand_a_claimed_handoff_on(people, state):
    for who, user in people.items():
        _, handoff = handoff_in(state, people)
        allowed = state == "claimed" and permissions.holds_claim_or_admin(user, handoff)
        released = succeeds(handover.release, user, handoff.id, "Off shift")
        assert allowed == released, (who, state)
        assert (who in ("eng", "admin") and state == "claimed") == released


@pytest.mark.parametrize("state", STATES)
def test_escalate_is_offered_exactly_when_escalating_creates_a_handoff(people, state):
    for who, user in people.items():
        session, _ = handoff_in(state, people)
        offered = permissions.can_escalate(user, session, latest_handoff(session))
        created = succeeds(escalations.escalate, user, session.id, "Again")
        assert offered == created, (who, state)
        assert offered == (who in ("tech", "admin") and state == "resolved")

"""The names of the events that reach seniors and technicians, defined once."""

from __future__ import annotations

from enum import StrEnum


class HandoffEvent(StrEnum):
    CREATED = "handoff.created"
    CLAIMED = "handoff.claimed"
    RESOLVED = "handoff.resolved"
    REMINDER = "handoff.reminder"
    UNCLAIMED = "handoff.unclaimed"
    RELEASED = "handoff.released"
    REASSIGNED = "handoff.reassigned"


HANDOFF_CREATED = HandoffEvent.CREATED
HANDOFF_CLAIMED = HandoffEvent.CLAIMED
HANDOFF_RESOLVED = HandoffEvent.RESOLVED
HANDOFF_REMINDER = HandoffEvent.REMINDER
HANDOFF_UNCLAIMED = HandoffEvent.UNCLAIMED
HANDOFF_RELEASED = HandoffEvent.RELEASED
HANDOFF_REASSIGNED = HandoffEvent.REASSIGNED
HANDOFF_EVENTS = tuple(HandoffEvent)
# The unclaimed steps: worth sending only while the handoff is still open.
STEP_EVENTS = (HANDOFF_REMINDER, HANDOFF_UNCLAIMED)


class SessionEvent(StrEnum):
    """About a session rather than its handoff: what the pages showing it add live."""

    MESSAGE_CREATED = "message.created"
    WRITEBACK_CREATED = "writeback.created"


MESSAGE_CREATED = SessionEvent.MESSAGE_CREATED
WRITEBACK_CREATED = SessionEvent.WRITEBACK_CREATED
SESSION_EVENTS = tuple(SessionEvent)
LIVE_EVENTS = frozenset((*HANDOFF_EVENTS, *SESSION_EVENTS))

# Not about a handoff: a senior's shift on call begins (an email, models.shift_notices).
SHIFT_START = "shift.start"

# Not a Socket.IO event: a note to post to the session's PSA ticket (models.psa.outbound),
# carried by the same outbox so it is committed with the writeback.
PSA_WRITEBACK = "psa.writeback"


def is_live(event_name: str) -> bool:
    """Whether the event goes to Socket.IO rooms (a handoff or a session event) or only to
    a worker."""
    return event_name in LIVE_EVENTS


def is_session_event(event_name: str) -> bool:
    """Whether the event is about a session (its chat, its writebacks), not a handoff."""
    return event_name in SESSION_EVENTS

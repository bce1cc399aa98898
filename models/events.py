"""The names of the handoff events that reach seniors and technicians, defined once."""

from __future__ import annotations

from enum import StrEnum


class HandoffEvent(StrEnum):
    CREATED = "handoff.created"
    CLAIMED = "handoff.claimed"
    RESOLVED = "handoff.resolved"


HANDOFF_CREATED = HandoffEvent.CREATED
HANDOFF_CLAIMED = HandoffEvent.CLAIMED
HANDOFF_RESOLVED = HandoffEvent.RESOLVED

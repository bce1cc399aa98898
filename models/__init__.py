"""The domain: SQLAlchemy models and the operations that change them.

Plain Python: no Flask request, no Celery. The web and worker edges call in
here; nothing in here calls them.
"""

import models.sso  # noqa: F401  (its tables)
from models.db import db, transaction
from models.entities import (
    Account,
    ApiToken,
    Delivery,
    FlowSession,
    Handoff,
    HandoffEvent,
    HandoffStep,
    LoginSession,
    Message,
    MonthlyRollup,
    OutboxEvent,
    PsaWriteback,
    SecurityEvent,
    User,
)
from models.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed

__all__ = [
    "Account",
    "ApiToken",
    "Conflict",
    "Delivery",
    "DomainError",
    "FlowSession",
    "Forbidden",
    "Handoff",
    "HandoffEvent",
    "HandoffStep",
    "LoginSession",
    "Message",
    "MonthlyRollup",
    "NotFound",
    "OutboxEvent",
    "PsaWriteback",
    "SecurityEvent",
    "User",
    "ValidationFailed",
    "db",
    "transaction",
]

"""Keep the worker's and beat's INFO output about people's work, not the clock.

Beat sends the relay, the sweep and the rollup every few seconds; at INFO every tick would
log "Sending due task", "received" and "succeeded" lines that bury everything else. This
filter drops those INFO-and-below records for the routine tasks only; their warnings and
errors, and every line about dispatches and emails, stay. DEBUG shows them all again.
"""

from __future__ import annotations

import logging
from typing import Any

from workers import names

ROUTINE_TASKS = (
    names.RELAY_OUTBOX,
    names.SWEEP_DELIVERIES,
    names.ROLLUP_METRICS,
    names.RUN_HANDOFF_STEPS,
    names.SHIFT_NOTICES,
    names.PSA_POLL,
)
# Beat logs the schedule entry's name ("Sending due task relay-outbox (...)").
ROUTINE_ENTRIES = (
    "relay-outbox",
    "sweep-deliveries",
    "rollup-metrics",
    "handoff-steps",
    "psa-poll",
)
# Loggers whose INFO lines only report a routine tick ("Rolled up 2 account-months ...").
ROUTINE_LOGGERS = ("models.rollup",)


class RoutineTaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        if record.name in ROUTINE_LOGGERS:
            return False
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not ours to drop
            return True
        return not any(name in text for name in (*ROUTINE_TASKS, *ROUTINE_ENTRIES))


_FILTER = RoutineTaskFilter()


def quiet_handlers(logger: logging.Logger | None = None, **_: Any) -> None:
    """Add the filter to the handlers Celery just set up (signal receiver)."""
    for handler in (logger or logging.getLogger()).handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def install() -> None:
    from celery.signals import after_setup_logger, after_setup_task_logger

    after_setup_logger.connect(quiet_handlers, weak=False)
    after_setup_task_logger.connect(quiet_handlers, weak=False)

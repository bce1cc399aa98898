"""The test-only clock (models/clock.py): followed by every process the app factory builds
(web, worker, mailer, beat) when TEST_CLOCK_FILE is set, and refused at start anywhere but
in tests and local development, so production always runs on the system clock."""

from __future__ import annotations

import logging
from typing import Any

from models import clock

log = logging.getLogger(__name__)

NON_PRODUCTION = ("test", "local")


class ClockFileRefused(SystemExit):
    """Raised at start-up; as a SystemExit it ends the process with its one-line message."""


def init_test_clock(config: dict[str, Any]) -> None:
    path = config.get("TEST_CLOCK_FILE")
    if not path:
        clock.use_test_clock(None)
        return
    if not (config.get("TESTING") or config.get("APP_ENV") in NON_PRODUCTION):
        raise ClockFileRefused(
            "Refusing to start: TEST_CLOCK_FILE is a test-only setting; unset it, or set "
            "APP_ENV=test (tests) or APP_ENV=local (local development)."
        )
    clock.use_test_clock(path)
    log.warning("Following the test clock in %s (now %s)", path, clock.now().isoformat())

"""The service's clock, and the test-only clock every process can be told to follow.

Every "now" of the domain comes from `now()` (models.db.utcnow is its naive form). In
production it is the system clock. Tests that drive the real processes (web, worker,
mailer, beat) set the time for all of them at once with a clock file
(`TEST_CLOCK_FILE`): one line, an RFC 3339 instant, from which time runs on at the normal
rate since the file was written (`... frozen` stops it there). Each process reads the file
when it changes. In-process tests use time-machine instead.

The clock file is refused outside tests and local development: `use_test_clock` is only
called by the app factory after that check (web.test_clock).
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

_lock = threading.Lock()
_file: Path | None = None
_seen: tuple[int, datetime, bool] | None = None  # (mtime_ns, instant, frozen)


def now() -> datetime:
    """Aware UTC now: the system clock, or the test clock when one is in use."""
    if _file is None:
        return datetime.now(UTC)
    return _from_file(_file)


def use_test_clock(path: str | os.PathLike[str] | None) -> None:
    """Follow the clock file at `path` from now on (None: the system clock again)."""
    global _file, _seen
    with _lock:
        _file, _seen = (Path(path) if path else None), None


def set_test_clock(path: str | os.PathLike[str], at: datetime, frozen: bool = False) -> None:
    """Write the clock file: every process following it reads `at` (aware) from now on."""
    text = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    target = Path(path)
    temporary = target.with_suffix(target.suffix + ".tmp")
    temporary.write_text(text + (" frozen" if frozen else "") + "\n")
    os.replace(temporary, target)  # readers see the old line or the new one, never half


def _parse(text: str) -> tuple[datetime, bool]:
    words = text.split()
    instant = datetime.fromisoformat(words[0].replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"The test clock needs an offset: {words[0]!r}")
    return instant.astimezone(UTC), "frozen" in words[1:]


def _from_file(path: Path) -> datetime:
    global _seen
    try:
        stat = path.stat()
    except FileNotFoundError:
        return datetime.now(UTC)  # not set yet: the real time
    with _lock:
        if _seen is None or _seen[0] != stat.st_mtime_ns:
            instant, frozen = _parse(path.read_text())
            _seen = (stat.st_mtime_ns, instant, frozen)
        _, instant, frozen = _seen
    if frozen:
        return instant
    written = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
    return instant + max(datetime.now(UTC) - written, timedelta(0))

"""The signing key must be the operator's own: long, and not a value anyone can read here.

With a known key anyone can sign a cookie that names any user, so the web process refuses
to start (one line on stderr, exit status 1) when `SECRET_KEY` is unset, shorter than
MIN_LENGTH characters, or found in the repository's own files (examples, old defaults,
test values). `make run` generates a random key once per checkout (var/secret_key).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MIN_LENGTH = 32
# Text files that could carry a key someone pasted; large and vendored trees are skipped.
_SCANNED_SUFFIXES = {
    ".py", ".md", ".txt", ".toml", ".cfg", ".ini", ".sh", ".env", ".example", ".json",
    ".yml", ".yaml", ".html", ".js", ".css", ".mako", ".lua",
}  # fmt: skip
_SKIPPED_DIRS = {".git", ".venv", "node_modules", "var", "__pycache__", "test-artifacts"}
_MAX_FILE_BYTES = 2 * 1024 * 1024


class InsecureSecretKey(SystemExit):
    """Raised at start-up; as a SystemExit it ends the process with its one-line message."""


def _repository_files(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            name for name in dirnames if name not in _SKIPPED_DIRS and not name.startswith(".")
        ]
        for filename in filenames:
            path = Path(directory, filename)
            if path.suffix in _SCANNED_SUFFIXES or filename in {"Procfile", "Makefile", ".env"}:
                yield path


def found_in_repository(key: str, root: Path) -> Path | None:
    """The first repository file that contains `key`, if any."""
    needle = key.encode()
    for path in _repository_files(root):
        try:
            if path.stat().st_size <= _MAX_FILE_BYTES and needle in path.read_bytes():
                return path
        except OSError:
            continue
    return None


def problem_with(key: object, root: Path) -> str | None:
    """Why `key` may not sign cookies, or None when it may."""
    if not isinstance(key, str | bytes) or not key:
        return "SECRET_KEY is not set"
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    if len(text) < MIN_LENGTH:
        return f"SECRET_KEY is shorter than {MIN_LENGTH} characters"
    where = found_in_repository(text, root)
    if where is not None:
        return f"SECRET_KEY is a value found in the repository ({where.relative_to(root)})"
    return None


def require_secret_key(key: object, root: Path) -> None:
    problem = problem_with(key, root)
    if problem is not None:
        raise InsecureSecretKey(
            f"Refusing to start: {problem}; set it to a long random value, e.g. "
            '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.'
        )

"""In CI a test that skips because PostgreSQL, Redis, nginx, Chromium or promtool is missing
counts as a failure; elsewhere it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEEDS_POSTGRES = "tests/models/test_tenant_isolation.py"


def _run(ci: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"TEST_POSTGRES_URL", "CI"}}
    env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-x", NEEDS_POSTGRES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("ci", "code", "says"),
    [("true", 1, "CI=true: skipped for want of postgres"), ("", 0, "skipped")],
)
def test_a_skip_for_a_missing_server_fails_only_in_ci(ci, code, says):
    result = _run(ci)
    assert result.returncode == code, result.stdout[-2000:]
    assert says in result.stdout

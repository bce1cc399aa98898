"""Beat's intervals, the policy's minute and the identity providers' timeout each have one
default (workers.settings.BEAT_SCHEDULE, models.handoff_steps.POLICY_MINUTE_SECONDS,
models.sso.connection.DEFAULT_TIMEOUT_SECONDS); what the configuration, beat and the
docs say is written out here by hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from models.sso.connection import SsoSettings
from web.config import ROOT, from_env
from workers.settings import beat_schedule

DOCS = Path(ROOT)


def _config(**env: str) -> dict:
    return from_env({"SECRET_KEY": "x" * 32, **env})


def test_an_unset_environment_keeps_beats_own_intervals():
    schedule = beat_schedule(_config())
    assert schedule["handoff-steps"]["schedule"] == timedelta(seconds=15)
    assert schedule["shift-notices"]["schedule"] == timedelta(seconds=60)


def test_a_test_environment_shortens_them():
    config = _config(HANDOFF_STEPS_INTERVAL_SECONDS="1", SHIFT_NOTICES_INTERVAL_SECONDS="2")
    schedule = beat_schedule(config)
    assert schedule["handoff-steps"]["schedule"] == timedelta(seconds=1)
    assert schedule["shift-notices"]["schedule"] == timedelta(seconds=2)


def test_the_policy_minute_and_the_sso_timeout():
    config = _config()
    assert config["POLICY_MINUTE_SECONDS"] == 60.0
    assert config["SSO_TIMEOUT_SECONDS"] == 10.0
    without = SsoSettings.from_config({"BASE_URL": "http://localhost"})
    assert without.timeout == 10.0
    assert _config(POLICY_MINUTE_SECONDS="2")["POLICY_MINUTE_SECONDS"] == 2.0


def test_the_docs_say_the_same():
    unclaimed = (DOCS / "docs" / "unclaimed.md").read_text()
    assert "`POLICY_MINUTE_SECONDS` (test only, default 60)" in unclaimed
    assert "`HANDOFF_STEPS_INTERVAL_SECONDS` (default 15)" in unclaimed
    readme = (DOCS / "README.md").read_text()
    assert (
        "| `SSO_TIMEOUT_SECONDS` | timeout of every call to an identity provider (default 10) |"
        in readme
    )

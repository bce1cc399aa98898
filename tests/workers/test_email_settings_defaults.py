"""Each email setting's default is defined once (models.deliveries.EMAIL_DEFAULTS for the
retries, web.config for the rest); the mailer, the domain's retry policy and the settings
table of docs/email.md all say the same values, written out here by hand."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from models.deliveries import DEFAULT_RETRY, RetryPolicy
from web.config import ROOT, from_env
from workers.mail import EmailSettings

EMAIL_DOC = Path(ROOT) / "docs" / "email.md"


def _defaults() -> dict:
    return from_env({"SECRET_KEY": "x" * 32})


def test_an_unset_environment_gets_the_documented_defaults():
    settings = EmailSettings.from_config(_defaults())
    assert (settings.host, settings.port, settings.timeout) == ("", 25, 10.0)
    assert settings.retry == RetryPolicy(15.0, 600.0, timedelta(hours=24))
    assert settings.lease == timedelta(seconds=120)
    assert settings.sweep_grace == timedelta(seconds=60)
    assert settings.mail_from == "Escalation Mode <escalations@localhost>"


def test_the_domains_own_retry_policy_is_the_same():
    assert RetryPolicy() == DEFAULT_RETRY == RetryPolicy(15.0, 600.0, timedelta(hours=24))


def test_a_value_in_the_environment_wins():
    config = from_env(
        {
            "SECRET_KEY": "x" * 32,
            "EMAIL_FIRST_RETRY_SECONDS": "1",
            "EMAIL_RETRY_WINDOW_SECONDS": "60",
        }
    )
    retry = EmailSettings.from_config(config).retry
    assert (retry.first_retry_seconds, retry.window) == (1.0, timedelta(seconds=60))
    assert retry.max_backoff_seconds == 600.0


def _documented() -> dict[str, str]:
    """`| `NAME` | `value` | meaning |` rows of the settings table in docs/email.md."""
    section = EMAIL_DOC.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", section, flags=re.MULTILINE))


def test_the_settings_table_in_the_docs_says_the_defaults():
    documented = _documented()
    assert documented == {
        "SMTP_STARTTLS": "false",
        "SMTP_TIMEOUT": "10",
        "MAIL_FROM": "Escalation Mode <escalations@localhost>",
        "BASE_URL": "http://127.0.0.1:5000",
        "EMAIL_FIRST_RETRY_SECONDS": "15",
        "EMAIL_MAX_BACKOFF_SECONDS": "600",
        "EMAIL_RETRY_WINDOW_SECONDS": "86400",
        "DELIVERY_LEASE_SECONDS": "120",
        "DELIVERY_SWEEP_GRACE_SECONDS": "60",
    }
    config = _defaults()
    for name, value in documented.items():
        if re.fullmatch(r"\d+", value):
            assert config[name] == float(value), name
        elif value in ("true", "false"):
            assert config[name] is (value == "true"), name
        else:
            assert config[name] == value, name

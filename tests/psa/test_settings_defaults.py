"""Each PSA setting's default is defined once (models.psa.settings.DEFAULTS)."""

from __future__ import annotations

from datetime import timedelta

from models.psa.settings import PsaSettings
from web.config import from_env


def _settings(config: dict) -> PsaSettings:
    return PsaSettings.from_config({"BASE_URL": "http://localhost", **config}, connector=None)


def test_an_unset_environment_gets_the_documented_defaults():
    config = from_env({"SECRET_KEY": "x" * 32})
    settings = _settings(config)
    assert settings.timeout == 10.0
    assert settings.retry.first_retry_seconds == 5.0
    assert settings.retry.max_backoff_seconds == 300.0
    assert settings.retry.window == timedelta(hours=24)


def test_a_config_without_the_keys_reads_the_same_defaults():
    settings = _settings({})
    assert (settings.timeout, settings.retry.window) == (10.0, timedelta(hours=24))


def test_a_value_in_the_environment_wins():
    config = from_env(
        {"SECRET_KEY": "x" * 32, "PSA_TIMEOUT_SECONDS": "3", "PSA_RETRY_WINDOW_SECONDS": "60"}
    )
    settings = _settings(config)
    assert (settings.timeout, settings.retry.window) == (3.0, timedelta(seconds=60))

"""How the PSA code is configured (built from the app config by the edges)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from models.deliveries import RetryPolicy
from models.psa.base import Connectors, ConnectorSpec
from models.psa.vault import Vault

#: The one definition of each PSA setting's default; web.config reads these for the
#: environment variables of the same names.
DEFAULTS = {
    "PSA_TIMEOUT_SECONDS": 10.0,
    "PSA_FIRST_RETRY_SECONDS": 5.0,
    "PSA_MAX_BACKOFF_SECONDS": 300.0,
    "PSA_RETRY_WINDOW_SECONDS": 86400.0,
}


def _number(config: Any, key: str) -> float:
    return float(config.get(key) or DEFAULTS[key])


@dataclass(frozen=True)
class PsaSettings:
    encryption_keys: str
    base_url: str
    connector: Connectors  # the edge passes the PSA kinds and their HTTP clients (adapters.psa)
    timeout: float = DEFAULTS["PSA_TIMEOUT_SECONDS"]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    options: dict[str, str] = field(default_factory=dict)  # the connectors' server settings

    @classmethod
    def from_config(cls, config: Any, connector: Connectors, **overrides: Any) -> PsaSettings:
        return cls(
            encryption_keys=config.get("PSA_ENCRYPTION_KEYS") or "",
            base_url=config["BASE_URL"],
            connector=connector,
            timeout=_number(config, "PSA_TIMEOUT_SECONDS"),
            retry=RetryPolicy(
                first_retry_seconds=_number(config, "PSA_FIRST_RETRY_SECONDS"),
                max_backoff_seconds=_number(config, "PSA_MAX_BACKOFF_SECONDS"),
                window=timedelta(seconds=_number(config, "PSA_RETRY_WINDOW_SECONDS")),
            ),
            options={
                key: str(config.get(key) or default)
                for key, default in (connector.options() if connector else {}).items()
            },
            **overrides,
        )

    def spec(self, kind: str) -> ConnectorSpec:
        return self.connector.spec(kind)

    def vault(self) -> Vault:
        return Vault.from_setting(self.encryption_keys)

    @property
    def lease(self) -> timedelta:
        """One attempt: a notes lookup (a few pages) and a post, each bounded by the timeout."""
        return timedelta(seconds=max(60.0, 8 * self.timeout))

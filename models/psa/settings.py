"""How the PSA code is configured (built from the app config by the edges)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from models.deliveries import RetryPolicy
from models.psa.base import PsaConnector, PsaCredentials
from models.psa.vault import Vault

ConnectorFactory = Callable[[str, PsaCredentials, float], PsaConnector]


@dataclass(frozen=True)
class PsaSettings:
    encryption_keys: str
    base_url: str
    connector: ConnectorFactory  # the edge passes the HTTP clients (adapters.psa)
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_config(cls, config: Any, connector: ConnectorFactory, **overrides: Any) -> PsaSettings:
        return cls(
            encryption_keys=config.get("PSA_ENCRYPTION_KEYS") or "",
            base_url=config["BASE_URL"],
            connector=connector,
            timeout=float(config.get("PSA_TIMEOUT_SECONDS") or 10),
            retry=RetryPolicy(
                first_retry_seconds=float(config.get("PSA_FIRST_RETRY_SECONDS") or 5),
                max_backoff_seconds=float(config.get("PSA_MAX_BACKOFF_SECONDS") or 300),
                window=timedelta(seconds=float(config.get("PSA_RETRY_WINDOW_SECONDS") or 86400)),
            ),
            **overrides,
        )

    def vault(self) -> Vault:
        return Vault.from_setting(self.encryption_keys)

    @property
    def lease(self) -> timedelta:
        """One attempt: a notes lookup (a few pages) and a post, each bounded by the timeout."""
        return timedelta(seconds=max(60.0, 8 * self.timeout))

"""The PSA connectors' HTTP clients, behind `models.psa.base.PsaConnector`."""

from __future__ import annotations

from adapters.psa.connectwise import ConnectWiseConnector
from models.psa.base import PsaConnector, PsaCredentials


def default_connector(kind: str, credentials: PsaCredentials, timeout: float) -> PsaConnector:
    """The connector of a PSA kind (the edges pass it to `PsaSettings.from_config`)."""
    if kind == ConnectWiseConnector.kind:
        return ConnectWiseConnector(credentials, timeout=timeout)
    raise ValueError(f"Unknown PSA kind {kind!r}")

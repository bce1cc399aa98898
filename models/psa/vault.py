"""Secrets at rest: the PSA keys and the callback secret, encrypted with Fernet keys from
the environment (PSA_ENCRYPTION_KEYS, comma-separated). MultiFernet encrypts with the first
key and decrypts with any, so keys rotate: put the new key first, run
`flask --app wsgi psa-rotate-keys`, then drop the old key."""

from __future__ import annotations

import json
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from models.errors import DomainError


class VaultUnavailable(DomainError):
    status = 503
    code = "psa_encryption_not_configured"


class Vault:
    def __init__(self, keys: Iterable[str]) -> None:
        keys = [key.strip() for key in keys if key and key.strip()]
        if not keys:
            raise VaultUnavailable(
                "PSA connections need PSA_ENCRYPTION_KEYS (one or more Fernet keys) set on "
                "the server."
            )
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except (ValueError, TypeError) as exc:
            raise VaultUnavailable(
                "PSA_ENCRYPTION_KEYS holds a value that is not a Fernet key."
            ) from exc

    @classmethod
    def from_setting(cls, setting: str | None) -> Vault:
        return cls((setting or "").split(","))

    def seal(self, secrets: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        try:
            return json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise VaultUnavailable(
                "The PSA secrets cannot be decrypted with PSA_ENCRYPTION_KEYS (a key was "
                "dropped before rotating?)."
            ) from exc

    def rotate(self, sealed: str) -> str:
        return self._fernet.rotate(sealed.encode()).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()

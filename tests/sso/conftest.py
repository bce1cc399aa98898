"""Fixtures for the single sign-on tests: real OpenID providers (tests/sso/provider.py)
and an app whose Microsoft and Google discovery base points at one of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from flask import Flask

from tests.sso.provider import Provider, ProviderServer, _issuer_is_the_mount  # noqa: F401

TENANT = "4f1c2b7a-0d3e-4a5b-9c8d-7e6f5a4b3c2d"
OTHER_TENANT = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
MICROSOFT_MOUNT = f"/{TENANT}/v2.0"
OTHER_MICROSOFT_MOUNT = f"/{OTHER_TENANT}/v2.0"


@pytest.fixture(scope="session")
def big_idp() -> Iterator[ProviderServer]:
    """Stands in for Google (at its root) and Microsoft (an authority per tenant)."""
    with ProviderServer(mounts=(MICROSOFT_MOUNT, OTHER_MICROSOFT_MOUNT)).running() as server:
        yield server


@pytest.fixture(scope="session")
def alpha_idp() -> Iterator[Provider]:
    with ProviderServer().running() as server:
        yield server.provider()


@pytest.fixture(scope="session")
def beta_idp() -> Iterator[Provider]:
    with ProviderServer().running() as server:
        yield server.provider()


def sso_config(big_idp: ProviderServer, **overrides) -> dict:
    return {
        "SSO_DOMAIN_VERIFICATION": "none",
        "PSA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SSO_TEST_DISCOVERY_BASE": big_idp.base,
        "BASE_URL": "http://app.test",
        **overrides,
    }


@pytest.fixture
def app(app_with, big_idp) -> Iterator[Flask]:
    with app_with(**sso_config(big_idp)) as app:
        yield app

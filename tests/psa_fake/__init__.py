"""A local stand-in for ConnectWise Manage's REST API (the subset in docs/psa.md)."""

from tests.psa_fake.server import FakeConnectWise

__all__ = ["FakeConnectWise"]

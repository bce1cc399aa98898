"""Per-account single sign-on over OpenID Connect (tables in models.sso.entities; the
connection in models.sso.connection; signing in in models.sso.signin)."""

from models.sso.entities import SsoConnection, SsoDomain, SsoIdentity, SsoSignIn

__all__ = ["SsoConnection", "SsoDomain", "SsoIdentity", "SsoSignIn"]

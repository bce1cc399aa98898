"""The OpenID Connect code flow against an account's provider, with Authlib's Flask client:
discovery, PKCE (S256), state and nonce, and the ID token's signature, issuer, audience,
expiry and nonce checked. What the token then says is decided in models.sso.signin."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from authlib.oauth2.rfc6749.errors import OAuth2Error
from joserfc.errors import JoseError

from models.sso.connection import ProviderConfig, SsoSettings

log = logging.getLogger(__name__)

SCOPE = "openid email profile"
METADATA_TTL_SECONDS = 300

_metadata: dict[str, tuple[float, dict[str, Any]]] = {}
_metadata_lock = threading.Lock()


class ProviderFailed(Exception):
    """The provider could not be reached, refused, or answered something unusable.
    `reason` is one of models.sso.signin.REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


def _client(config: ProviderConfig, timeout: float) -> FlaskOAuth2App:
    client = FlaskOAuth2App(
        FlaskIntegration("sso"),
        name="sso",
        client_id=config.client_id,
        client_secret=config.client_secret,
        server_metadata_url=config.discovery_url,
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "default_timeout": timeout,
        },
    )
    with _metadata_lock:
        cached = _metadata.get(config.discovery_url)
    if cached is not None and time.monotonic() - cached[0] < METADATA_TTL_SECONDS:
        client.server_metadata.update(cached[1])
    return client


def _remember(config: ProviderConfig, client: FlaskOAuth2App) -> None:
    with _metadata_lock:
        _metadata[config.discovery_url] = (time.monotonic(), dict(client.server_metadata))


def _discover(config: ProviderConfig, client: FlaskOAuth2App) -> None:
    metadata = client.load_server_metadata()
    issuer = metadata.get("issuer")
    if issuer not in config.issuers:
        with _metadata_lock:
            _metadata.pop(config.discovery_url, None)
        raise ProviderFailed(
            "wrong_tenant",
            f"the provider's discovery document names the issuer {str(issuer)[:200]!r}, "
            f"not {config.issuers[0]!r}",
        )
    _remember(config, client)


def _guarded(call, *args, **kwargs):
    """Every way a provider can fail becomes ProviderFailed, never an error page of ours."""
    try:
        return call(*args, **kwargs)
    except ProviderFailed:
        raise
    except requests.RequestException as exc:
        raise ProviderFailed("provider_error", f"it could not be reached: {exc}") from exc
    except (OAuthError, OAuth2Error) as exc:
        error = getattr(exc, "error", None) or "error"
        description = getattr(exc, "description", None) or ""
        raise ProviderFailed("provider_error", f"{error}: {description}".strip(": ")) from exc
    except JoseError as exc:
        if getattr(exc, "claim", None) == "iss":
            raise ProviderFailed("wrong_tenant", "the ID token names another issuer") from exc
        raise ProviderFailed("invalid_token", f"the ID token was refused: {exc}") from exc
    except Exception as exc:  # a malformed document or answer
        log.warning("Single sign-on: unusable answer from the provider", exc_info=True)
        raise ProviderFailed("provider_error", f"unusable answer ({type(exc).__name__})") from exc


def authorization_request(
    config: ProviderConfig, redirect_uri: str, timeout: float
) -> AuthorizationRequest:
    """Where to send the browser: the provider's authorization endpoint with a fresh
    state, nonce and PKCE challenge (S256)."""

    def build() -> AuthorizationRequest:
        client = _client(config, timeout)
        _discover(config, client)
        created = client.create_authorization_url(redirect_uri)
        return AuthorizationRequest(
            created["url"], created["state"], created["nonce"], created["code_verifier"]
        )

    return _guarded(build)


def verified_claims(
    config: ProviderConfig,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    nonce: str,
    timeout: float,
) -> dict[str, Any]:
    """Exchange the code (with the PKCE verifier) and return the ID token's claims once its
    signature, issuer, audience, expiry and nonce are checked."""

    def exchange() -> dict[str, Any]:
        client = _client(config, timeout)
        _discover(config, client)
        token = client.fetch_access_token(
            redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
        )
        claims = client.parse_id_token(
            token,
            nonce=nonce,
            claims_options={"iss": {"essential": True, "values": list(config.issuers)}},
            leeway=60,
        )
        _remember(config, client)  # keeps the signing keys it fetched
        if not claims or not claims.get("sub"):
            raise ProviderFailed("invalid_token", "no ID token with a subject came back")
        return dict(claims)

    return _guarded(exchange)


def sso_settings() -> SsoSettings:
    """The app's single sign-on settings; tests replace the DNS resolver through
    `app.extensions["sso_txt_resolver"]`."""
    from flask import current_app

    resolver = current_app.extensions.get("sso_txt_resolver")
    overrides = {"resolver": resolver} if resolver is not None else {}
    return SsoSettings.from_config(current_app.config, **overrides)

"""ConnectWise's signed callbacks: `x-content-signature` is the base64 HMAC-SHA256 of the
raw body, keyed by the signing key that the payload's `Metadata.key_url` serves.

The key is fetched (by the edge's fetcher, adapters.psa.connectwise) only from the
connection's own site: a payload naming a key on another host could otherwise sign
itself. A connection may switch verification off for a server that does not sign; every
callback it accepts so is logged, and the switch itself is in the security log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from models.entities import PsaConnection
from models.errors import DomainError
from models.psa.base import PsaError
from models.psa.sites import normalize_site_url

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-content-signature"

#: key URL → the signing key it serves (raises PsaError when it cannot be fetched)
KeyFetcher = Callable[[str], str]


class CallbackUnsigned(DomainError):
    status = 401
    code = "callback_unsigned"


class CallbackForged(DomainError):
    status = 403
    code = "callback_signature_invalid"


class SigningKeyUnavailable(DomainError):
    status = 503
    code = "callback_key_unavailable"


def _key_url(raw: bytes) -> str | None:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    metadata = body.get("Metadata") if isinstance(body, dict) else None
    key_url = metadata.get("key_url") if isinstance(metadata, dict) else None
    return key_url if isinstance(key_url, str) and key_url else None


def on_site(key_url: str, site_url: str) -> bool:
    """Whether the key URL is on the connection's site: same scheme, host and port."""
    try:
        parts = urlsplit(key_url)
        site = normalize_site_url(site_url)
    except ValueError:
        return False
    return bool(parts.netloc) and f"{parts.scheme}://{parts.netloc}".lower() == site.lower()


def _signatures(key: str, raw: bytes) -> list[bytes]:
    """The HMAC under the key as served and under its SHA-256 digest (the form ConnectWise's
    developer guide describes, which some integrations follow): either proves the body."""
    return [
        base64.b64encode(hmac.new(secret, raw, hashlib.sha256).digest())
        for secret in (key.encode(), hashlib.sha256(key.encode()).digest())
    ]


def verify(
    connection: PsaConnection, raw: bytes, signature: str | None, fetch_key: KeyFetcher
) -> bool:
    """Raise unless the callback is signed by ConnectWise (or the connection switched
    verification off); return whether the signature was checked."""
    if not connection.verify_signatures:
        log.warning(
            "Account %s: PSA callback accepted unverified (signature checks are off for "
            "this connection)",
            connection.account_id,
        )
        return False
    if not signature or not signature.strip():
        raise CallbackUnsigned(
            f"The callback is not signed (no {SIGNATURE_HEADER} header). ConnectWise signs "
            "its callbacks; for a server that does not, an admin may switch signature "
            "checks off on the PSA connection."
        )
    key_url = _key_url(raw)
    if key_url is None:
        raise CallbackForged("The callback names no signing key (Metadata.key_url).")
    if not on_site(key_url, connection.site_url):
        raise CallbackForged(
            f"The callback's signing key is not on the connection's site "
            f"({normalize_site_url(connection.site_url)}); keys are fetched from there only."
        )
    try:
        key = fetch_key(key_url)
    except PsaError as exc:
        raise SigningKeyUnavailable(
            f"The callback's signing key could not be fetched: {exc.message}"
        ) from exc
    given = signature.strip().encode()
    if not any(hmac.compare_digest(given, expected) for expected in _signatures(key, raw)):
        raise CallbackForged("The callback's signature does not match its body.")
    return True

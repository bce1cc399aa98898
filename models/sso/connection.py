"""An account's single sign-on connection: validate and save it (client secret sealed),
the domains it serves and their DNS proof, and which connection serves an email."""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import security_log
from models.db import db, transaction, utcnow
from models.entities import User
from models.errors import Conflict, Forbidden, ValidationFailed
from models.psa.vault import Vault
from models.security_log import NO_CLIENT, Client
from models.sso import lookups
from models.sso.entities import JIT_ROLES, PROVIDERS, SsoConnection, SsoDomain

log = logging.getLogger(__name__)

CALLBACK_PATH = "/login/sso/callback"
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
GOOGLE_ISSUER = "https://accounts.google.com"
TXT_PREFIX = "_escalation-mode"
TXT_VALUE = "escalation-mode-sso={token}"
VERIFICATION_MODES = ("dns", "none")
#: Seconds allowed for each call to an identity provider: SSO_TIMEOUT_SECONDS's default,
#: defined once (web.config reads it).
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_DOMAINS = 50
PROVIDER_LABELS = {"microsoft": "Microsoft", "google": "Google", "oidc": "SSO"}

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

TxtResolver = Callable[[str], list[str]]


def dns_txt_records(name: str) -> list[str]:
    """The TXT strings published at `name` (none when the name has none or does not exist)."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=5.0)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.DNSException as exc:
        log.info("TXT look-up of %s failed: %s", name, exc)
        return []
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


@dataclass(frozen=True)
class SsoSettings:
    """How single sign-on is configured (built from the app config by the edge)."""

    encryption_keys: str
    base_url: str
    verification: str = "dns"
    # Test-only: where the Microsoft and Google discovery documents are read from instead
    # of their real hosts (which tests cannot reach).
    test_discovery_base: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    resolver: TxtResolver = field(default=dns_txt_records)

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> SsoSettings:
        mode = (config.get("SSO_DOMAIN_VERIFICATION") or "dns").strip().lower()
        return cls(
            encryption_keys=config.get("PSA_ENCRYPTION_KEYS") or "",
            base_url=config["BASE_URL"],
            verification=mode if mode in VERIFICATION_MODES else "dns",
            test_discovery_base=(config.get("SSO_TEST_DISCOVERY_BASE") or "").rstrip("/") or None,
            timeout=float(config.get("SSO_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS),
            **overrides,
        )

    def vault(self) -> Vault:
        return Vault.from_setting(self.encryption_keys)

    @property
    def redirect_uri(self) -> str:
        return self.base_url.rstrip("/") + CALLBACK_PATH


@dataclass(frozen=True)
class ProviderConfig:
    """Where a connection's provider is and which issuers its ID tokens may name."""

    discovery_url: str
    issuers: tuple[str, ...]
    client_id: str
    client_secret: str


def provider_config(connection: SsoConnection, settings: SsoSettings) -> ProviderConfig:
    base = settings.test_discovery_base
    if connection.provider == "microsoft":
        issuer = f"{base or MICROSOFT_AUTHORITY}/{connection.tenant_id}/v2.0"
        issuers: tuple[str, ...] = (issuer,)
    elif connection.provider == "google":
        issuer = base or GOOGLE_ISSUER
        # Google's ID tokens name either form of its issuer.
        issuers = (issuer,) if base else (GOOGLE_ISSUER, "accounts.google.com")
    else:
        issuer = connection.issuer_url or ""
        issuers = (issuer,)
    secret = settings.vault().open(connection.secrets)["client_secret"]
    return ProviderConfig(
        discovery_url=f"{issuer}/.well-known/openid-configuration",
        issuers=issuers,
        client_id=connection.client_id,
        client_secret=secret,
    )


# --- validation -------------------------------------------------------------------------


def normalize_domain(value: Any) -> str | None:
    """`msp.example` as stored (lower case, IDNA), or None when it is no domain name."""
    if not isinstance(value, str):
        return None
    name = value.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    return name


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalize_issuer(value: Any) -> str:
    """The issuer URL without a trailing slash; https, or http on a loopback host only."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("Required for provider oidc.")
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        raise ValueError("Must be an https URL with a host and no query or fragment.")
    if parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname)):
        return url
    raise ValueError("Must use https (http only on a loopback host such as 127.0.0.1).")


def _text(fields: dict[str, Any], name: str, limit: int, problems: dict) -> str | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        problems[name] = ["Must be a string."]
        return None
    if len(value.strip()) > limit:
        problems[name] = [f"At most {limit} characters."]
        return None
    return value.strip()


def _domains(value: Any, problems: dict) -> list[str]:
    if not isinstance(value, list) or not value:
        problems["domains"] = ['A list of one or more email domains, e.g. ["msp.example"].']
        return []
    if len(value) > MAX_DOMAINS:
        problems["domains"] = [f"At most {MAX_DOMAINS} domains."]
        return []
    domains, bad = [], []
    for item in value:
        name = normalize_domain(item)
        if name is None:
            bad.append(f"{str(item)[:100]!r} is not a domain name.")
        elif name not in domains:
            domains.append(name)
    if bad:
        problems["domains"] = bad
    return domains


def _jit(value: Any, problems: dict) -> tuple[bool, str]:
    if value is None:
        return False, "technician"
    if not isinstance(value, dict):
        problems["jit"] = ["Must be an object {enabled, role}."]
        return False, "technician"
    enabled, role = value.get("enabled", False), value.get("role", "technician")
    if not isinstance(enabled, bool):
        problems["jit.enabled"] = ["Must be true or false."]
    if role not in JIT_ROLES:
        problems["jit.role"] = [f"Must be one of: {', '.join(JIT_ROLES)}."]
    return enabled is True, role if role in JIT_ROLES else "technician"


def validate(fields: dict[str, Any], has_secret: bool) -> dict[str, Any]:
    """The connection's fields, cleaned; 422 with every problem at once otherwise."""
    problems: dict[str, list[str]] = {}
    provider = fields.get("provider")
    if provider not in PROVIDERS:
        problems["provider"] = [f"Must be one of: {', '.join(PROVIDERS)}."]
    values: dict[str, Any] = {"provider": provider, "tenant_id": None, "issuer_url": None}
    tenant = _text(fields, "tenant_id", 64, problems)
    if provider == "microsoft":
        if tenant is None or not _GUID.match(tenant.lower()):
            problems.setdefault(
                "tenant_id",
                ["Required for microsoft: the directory (tenant) id, a GUID. A multi-tenant "
                 "app (common, organizations) is not accepted."],
            )  # fmt: skip
        else:
            values["tenant_id"] = tenant.lower()
    if provider == "oidc":
        try:
            values["issuer_url"] = normalize_issuer(fields.get("issuer_url"))
        except ValueError as exc:
            problems["issuer_url"] = [str(exc)]
    values["client_id"] = _text(fields, "client_id", 300, problems)
    if values["client_id"] is None:
        problems.setdefault("client_id", ["Required."])
    values["client_secret"] = _text(fields, "client_secret", 2000, problems)
    if values["client_secret"] is None and not has_secret:
        problems.setdefault("client_secret", ["Required."])
    values["domains"] = _domains(fields.get("domains"), problems)
    values["jit_enabled"], values["jit_role"] = _jit(fields.get("jit"), problems)
    required = fields.get("required", False)
    if not isinstance(required, bool):
        problems["required"] = ["Must be true or false."]
    values["required"] = required is True
    if problems:
        raise ValidationFailed("Some single sign-on settings are invalid.", problems)
    return values


# --- the connection --------------------------------------------------------------------


def _require_admin(user: User) -> None:
    if user.role != "admin":
        raise Forbidden("Only an admin may manage single sign-on.")


def get_connection(account_id: int) -> SsoConnection | None:
    return db.session.scalar(select(SsoConnection).where(SsoConnection.account_id == account_id))


def txt_name(domain: str) -> str:
    return f"{TXT_PREFIX}.{domain}"


def view(connection: SsoConnection, settings: SsoSettings) -> dict[str, Any]:
    """What may be shown of a connection: never the client secret."""
    value = TXT_VALUE.format(token=connection.verification_token)
    return {
        "provider": connection.provider,
        "tenant_id": connection.tenant_id,
        "issuer_url": connection.issuer_url,
        "client_id": connection.client_id,
        "domains": [row.domain for row in connection.domains],
        "jit": {"enabled": connection.jit_enabled, "role": connection.jit_role},
        "required": connection.required,
        "redirect_uri": settings.redirect_uri,
        "domain_verification": {
            "mode": settings.verification,
            "domains": [
                {
                    "domain": row.domain,
                    "verified": row.verified_at is not None,
                    "txt_name": txt_name(row.domain),
                    "txt_value": value,
                }
                for row in connection.domains
            ],
        },
    }


def _held_elsewhere(account_id: int, domains: list[str]) -> list[str]:
    """Of `domains`, those another account's connection serves (holds verified)."""
    if not domains:
        return []
    with lookups.system("sso_domain"):
        rows = db.session.scalars(
            select(SsoDomain.domain).where(
                SsoDomain.domain.in_(domains),
                SsoDomain.account_id != account_id,
                SsoDomain.verified_at.is_not(None),
            )
        ).all()
    return sorted(set(rows))


def _domain_taken(domains: list[str]) -> Conflict:
    return Conflict(
        "Another account's single sign-on already serves "
        + ", ".join(domains)
        + ". A domain signs in to one account only.",
        {"domains": [f"{domain} is served by another account." for domain in domains]},
        code="domain_taken",
    )


def _apply(connection: SsoConnection, values: dict[str, Any], sealed: str | None) -> None:
    connection.provider = values["provider"]
    connection.tenant_id, connection.issuer_url = values["tenant_id"], values["issuer_url"]
    connection.client_id = values["client_id"]
    if sealed is not None:
        connection.secrets = sealed
    connection.jit_enabled, connection.jit_role = values["jit_enabled"], values["jit_role"]
    connection.required, connection.updated_at = values["required"], utcnow()
    keep = {row.domain: row for row in connection.domains}
    connection.domains = [
        keep.get(name) or SsoDomain(account_id=connection.account_id, domain=name)
        for name in values["domains"]
    ]


def save(
    admin: User, fields: dict[str, Any], settings: SsoSettings, client: Client = NO_CLIENT
) -> SsoConnection:
    """Create or replace the account's connection; its domains are checked at once (DNS,
    or accepted outright when verification is off). A domain served elsewhere is 409."""
    _require_admin(admin)
    previous = get_connection(admin.account_id)
    values = validate(fields, has_secret=previous is not None)
    taken = _held_elsewhere(admin.account_id, values["domains"])
    if taken:
        raise _domain_taken(taken)
    sealed = None
    if values["client_secret"] is not None:
        sealed = settings.vault().seal({"client_secret": values["client_secret"]})
    try:
        with transaction(expire_on_commit=False):
            connection = previous or SsoConnection(
                account_id=admin.account_id, verification_token=secrets.token_urlsafe(24)
            )
            _apply(connection, values, sealed)
            db.session.add(connection)
            db.session.flush()
            security_log.add(
                security_log.SSO_CONNECTION_CHANGED,
                admin.account_id,
                client,
                actor=admin,
                provider=connection.provider,
                domains=values["domains"],
                required=connection.required,
                secret_changed=sealed is not None,
            )
    except IntegrityError as exc:
        raise _domain_taken(values["domains"]) from exc
    verify_domains(connection, settings)
    return connection


def delete(admin: User, client: Client = NO_CLIENT) -> None:
    _require_admin(admin)
    connection = get_connection(admin.account_id)
    if connection is None:
        return
    with transaction():
        db.session.delete(connection)
        security_log.add(
            security_log.SSO_CONNECTION_CHANGED, admin.account_id, client, actor=admin,
            provider=connection.provider, deleted=True,
        )  # fmt: skip


def _proven(row: SsoDomain, connection: SsoConnection, settings: SsoSettings) -> bool:
    if settings.verification == "none":
        return True
    expected = TXT_VALUE.format(token=connection.verification_token)
    try:
        records = settings.resolver(txt_name(row.domain))
    except Exception:  # a resolver that fails proves nothing; the next check retries
        log.warning("TXT look-up for %s failed", row.domain, exc_info=True)
        return False
    return any(record.strip() == expected for record in records)


def verify_domains(connection: SsoConnection, settings: SsoSettings) -> int:
    """Check the connection's unverified domains; returns how many are verified now. A
    domain another account verified first stays unverified here."""
    proven = [
        row
        for row in connection.domains
        if row.verified_at is None and _proven(row, connection, settings)
    ]
    now = utcnow()
    for row in proven:
        try:
            with transaction(expire_on_commit=False):
                row.verified_at, row.checked_at = now, now
        except IntegrityError:
            db.session.refresh(row)
            log.info("Domain %s is already verified by another account", row.domain)
    unproven = [row for row in connection.domains if row.verified_at is None]
    if unproven:
        with transaction(expire_on_commit=False):
            for row in unproven:
                row.checked_at = now
    return sum(1 for row in connection.domains if row.verified_at is not None)


def email_domain(email: str) -> str | None:
    local, at, domain = email.strip().rpartition("@")
    return normalize_domain(domain) if at and local else None


def connection_for_email(email: str, settings: SsoSettings) -> SsoConnection | None:
    """The connection that serves this address's domain (verified), found before the
    tenant is known; the unit of work then acts for that account."""
    domain = email_domain(email)
    if domain is None:
        return None
    with lookups.system("sso_domain"):
        row = db.session.scalar(
            select(SsoDomain).where(SsoDomain.domain == domain, SsoDomain.verified_at.is_not(None))
        )
        account_id = row.account_id if row is not None else None
    if account_id is None:
        return None
    lookups.act_for(account_id)
    return get_connection(account_id)


def verified_domains(connection: SsoConnection) -> set[str]:
    return {row.domain for row in connection.domains if row.verified_at is not None}


def rotate_keys(settings: SsoSettings) -> int:
    """Re-encrypt every connection's client secret with the first encryption key."""
    vault = settings.vault()
    with lookups.system("psa_key_rotation"):  # the same keys, the same command
        rows = list(db.session.scalars(select(SsoConnection).order_by(SsoConnection.id)))
        with transaction():
            for connection in rows:
                connection.secrets = vault.rotate(connection.secrets)
    return len(rows)

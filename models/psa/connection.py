"""An account's PSA connection: save (and register the callback where the PSA has them),
test, delete, and the checks the callback endpoint relies on. Which fields a connection
has, and whether the PSA calls back, is the connector's `ConnectorSpec`."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from models import tenancy
from models.db import db, transaction, utcnow
from models.entities import PsaConnection, User
from models.errors import Forbidden, NotFound, ValidationFailed
from models.psa.base import (
    Connectors,
    ConnectorSpec,
    PsaAuthRejected,
    PsaConnector,
    PsaCredentials,
    PsaError,
)
from models.psa.settings import PsaSettings

log = logging.getLogger(__name__)

# One path segment, `<account id>.<secret>` (the secret is URL-safe base64: no dots).
CALLBACK_PATH = "/api/v1/psa/callbacks/{account_id}.{secret}"
CALLBACK_DESCRIPTION = "Escalation Mode: ticket notes"


def _require_admin(user: User) -> None:
    if user.role != "admin":
        raise Forbidden("Only an admin may manage the PSA connection.")


def get_connection(account_id: int) -> PsaConnection | None:
    return db.session.scalar(select(PsaConnection).where(PsaConnection.account_id == account_id))


def public_values(connection: PsaConnection) -> dict[str, str]:
    """The connection's stored non-secret settings, by field name (typed or discovered)."""
    if connection.public_settings:
        return dict(json.loads(connection.public_settings))
    # Saved before connectors had their own settings: a ConnectWise row's columns.
    legacy = {
        "site_url": connection.site_url,
        "company_id": connection.company_id,
        "client_id": connection.client_id,
    }
    return {name: value for name, value in legacy.items() if value is not None}


def callback_url(connection: PsaConnection, settings: PsaSettings) -> str | None:
    """Where the PSA calls us; None for a PSA without callbacks (polled only)."""
    if not settings.spec(connection.kind).callbacks:
        return None
    secret = settings.vault().open(connection.secrets).get("callback_secret")
    if not secret:
        return None
    path = CALLBACK_PATH.format(account_id=connection.account_id, secret=secret)
    return settings.base_url.rstrip("/") + path


def view(connection: PsaConnection, settings: PsaSettings) -> dict[str, Any]:
    """What may be shown of a connection: the spec's answered fields, never a secret."""
    spec = settings.spec(connection.kind)
    stored = public_values(connection)
    return {
        "kind": connection.kind,
        **{name: stored.get(name) for name in spec.answered},
        "status": connection.status,
        "message": connection.status_message,
        "callback_url": callback_url(connection, settings),
    }


def credentials(connection: PsaConnection, settings: PsaSettings) -> PsaCredentials:
    sealed = settings.vault().open(connection.secrets)
    return PsaCredentials.of({**public_values(connection), **sealed})


def connector(connection: PsaConnection, settings: PsaSettings) -> PsaConnector:
    return settings.connector(connection.kind, credentials(connection, settings), settings.timeout)


def _spec_of(fields: dict[str, Any], settings: PsaSettings) -> ConnectorSpec:
    kind = fields.get("kind") or settings.connector.kinds[0]
    if kind not in settings.connector.kinds:
        raise ValidationFailed(
            "Unknown PSA.", {"kind": [f"Must be one of: {', '.join(settings.connector.kinds)}."]}
        )
    return settings.spec(kind)


def _typed(spec: ConnectorSpec, fields: dict[str, Any]) -> dict[str, str]:
    return {f.name: str(fields.get(f.name) or "").strip() for f in spec.fields}


def _validated(spec: ConnectorSpec, fields: dict[str, Any]) -> dict[str, str]:
    """The spec's fields, trimmed and normalized; anything missing or malformed is 422."""
    values = _typed(spec, fields)
    problems: dict[str, list[str]] = {
        name: ["Required."] for name, value in values.items() if not value
    }
    if problems:
        raise ValidationFailed("Some PSA settings are missing.", problems)
    for f in spec.fields:
        if len(values[f.name]) > f.max_length:
            problems[f.name] = [f"At most {f.max_length} characters."]
        elif f.normalize is not None:
            try:
                values[f.name] = f.normalize(values[f.name])
            except ValueError as exc:
                problems[f.name] = [str(exc)]
    if problems:
        raise ValidationFailed(f"Some {spec.label} settings are not valid.", problems)
    return values


def _discovered(spec: ConnectorSpec, values: dict[str, str], settings: PsaSettings) -> dict:
    """The typed values plus what the PSA tells about them (Autotask's zone), or 422 with
    the PSA's words under the first field."""
    if spec.discover is None:
        return values
    try:
        return {**values, **spec.discover(values, settings.timeout, settings.options)}
    except PsaError as exc:
        raise ValidationFailed(exc.message, {spec.fields[0].name: [exc.message]}) from exc


def _forget_callback(connection: PsaConnection, settings: PsaSettings) -> None:
    """Best effort: a callback we cannot delete (the PSA is down, the keys were revoked)
    only calls an address that answers 404 from now on."""
    if not connection.psa_callback_id:
        return
    try:
        connector(connection, settings).delete_callback(connection.psa_callback_id)
    except PsaError as exc:
        log.warning(
            "Account %s: could not delete PSA callback %s: %s",
            connection.account_id,
            connection.psa_callback_id,
            exc.message,
        )


def save(admin: User, fields: dict[str, Any], settings: PsaSettings) -> PsaConnection:
    """Store the connection (secrets sealed), then register the callback with the PSA
    when it has callbacks.

    A new callback secret each time: saving again retires the previous callback URL."""
    _require_admin(admin)
    spec = _spec_of(fields, settings)
    typed = _validated(spec, fields)
    vault = settings.vault()  # no keys to seal with: 503 before the PSA is called
    values = _discovered(spec, typed, settings)
    previous = get_connection(admin.account_id)
    if previous is not None:
        _forget_callback(previous, settings)
    hidden = {name: values[name] for name in spec.secret()}
    if spec.callbacks:
        hidden["callback_secret"] = secrets.token_urlsafe(32)
    public = {name: value for name, value in values.items() if name not in hidden}
    with transaction():
        connection = previous or PsaConnection(account_id=admin.account_id)
        connection.kind, connection.site_url = spec.kind, public[spec.address]
        connection.company_id = public.get("company_id")
        connection.client_id = public.get("client_id")
        connection.public_settings = json.dumps(public, sort_keys=True)
        connection.secrets, connection.status, connection.status_message = (
            vault.seal(hidden), "connected", None,
        )  # fmt: skip
        connection.psa_callback_id, connection.updated_at = None, utcnow()
        db.session.add(connection)
    if spec.callbacks:
        _register_callback(connection, settings)
    return connection


def _register_callback(connection: PsaConnection, settings: PsaSettings) -> None:
    try:
        callback_id = connector(connection, settings).register_callback(
            callback_url(connection, settings), CALLBACK_DESCRIPTION
        )
    except PsaAuthRejected as exc:
        status, message, callback_id = "broken", exc.message, None
    except PsaError as exc:
        status, callback_id = "connected", None
        message = (
            f"Saved, but the callback could not be registered ({exc.message}); notes posted "
            "in the PSA are picked up by polling instead."
        )
    else:
        status, message = "connected", None
    with transaction():
        connection.status, connection.status_message = status, message
        connection.psa_callback_id = callback_id


def delete(admin: User, settings: PsaSettings) -> None:
    _require_admin(admin)
    connection = get_connection(admin.account_id)
    if connection is None:
        return
    _forget_callback(connection, settings)
    with transaction():
        db.session.delete(connection)


def test(admin: User, fields: dict[str, Any] | None, settings: PsaSettings) -> tuple[bool, str]:
    """Call the PSA with the given settings (or the saved ones) and say what is wrong."""
    _require_admin(admin)
    if fields:
        spec = _spec_of(fields, settings)
        for f in spec.fields:
            if not _typed(spec, fields)[f.name]:
                return False, f.missing or f"Missing: {f.label}."
        try:
            values = _discovered(spec, _validated(spec, fields), settings)
        except ValidationFailed as exc:
            return False, exc.message
        probe = settings.connector(spec.kind, PsaCredentials.of(values), settings.timeout)
    else:
        saved = get_connection(admin.account_id)
        if saved is None:
            return False, "No PSA connection is saved for this account."
        probe = connector(saved, settings)
    try:
        return True, probe.check()
    except PsaError as exc:
        return False, exc.message


def mark_broken(connection_id: int, message: str) -> None:
    """The PSA refused our keys: every delivery stops until an admin saves new ones."""
    with transaction():
        db.session.execute(
            update(PsaConnection)
            .where(PsaConnection.id == connection_id)
            .values(status="broken", status_message=message[:2000], updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def for_callback(key: str, settings: PsaSettings) -> PsaConnection:
    """The connection a callback URL's key (`<account id>.<secret>`) names, if its secret
    matches (compared in constant time); anything else is NotFound."""
    account, _, secret = key.partition(".")
    if not account.isdigit() or len(account) > 18 or not secret:
        raise NotFound("No such callback.")
    # Before the tenant is known: the URL names an account, its secret proves it.
    with tenancy.system("psa_callback"):
        connection = get_connection(int(account))
    if connection is None or connection.kind not in settings.connector.kinds:
        raise NotFound("No such callback.")
    expected = settings.vault().open(connection.secrets).get("callback_secret") or ""
    if not expected or not hmac.compare_digest(expected.encode(), secret.encode()):
        raise NotFound("No such callback.")
    tenancy.set_tenant(connection.account_id)
    return connection


def broken_accounts(limit: int = 50) -> list[dict[str, Any]]:
    with tenancy.system("health"):
        rows = db.session.execute(
            select(PsaConnection.account_id, PsaConnection.status_message)
            .where(PsaConnection.status == "broken")
            .order_by(PsaConnection.account_id)
            .limit(limit)
        ).all()
    return [{"account_id": account_id, "message": message} for account_id, message in rows]


@dataclass(frozen=True)
class SessionPsa:
    """What the session page shows about the PSA (no keys are read for it)."""

    connected: bool
    broken: bool
    ticket_id: str | None
    ticket_url: str | None
    name: str = "the PSA"  # the PSA's name, for "#5001 in ConnectWise Manage"


def for_session(
    account_id: int, ticket_id: str | None, connectors: Connectors | None = None
) -> SessionPsa:
    connection = get_connection(account_id)
    link, name = None, "the PSA"
    spec = None
    if connection is not None and connectors is not None and connection.kind in connectors.kinds:
        spec = connectors.spec(connection.kind)
        name = spec.label
    if spec is not None and ticket_id:
        link = spec.ticket_url(public_values(connection), ticket_id)
    return SessionPsa(
        connected=connection is not None,
        broken=connection is not None and connection.status == "broken",
        ticket_id=ticket_id,
        ticket_url=link,
        name=name,
    )


def rotate_keys(settings: PsaSettings) -> int:
    """Re-encrypt every connection's secrets with the first PSA_ENCRYPTION_KEYS key."""
    vault = settings.vault()
    with tenancy.system("psa_key_rotation"):
        connections = list(db.session.scalars(select(PsaConnection).order_by(PsaConnection.id)))
        with transaction():
            for connection in connections:
                connection.secrets = vault.rotate(connection.secrets)
    return len(connections)

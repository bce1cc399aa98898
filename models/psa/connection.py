"""An account's PSA connection: save (and register the callback where the PSA has them),
test, delete, and the checks the callback endpoint relies on. Which fields a connection
has, and whether the PSA calls back, is the connector's `ConnectorSpec`."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from models import security_log, tenancy
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

# One path segment, `<account id>.<secret>` (the secret is URL-safe base64: no dots), then
# an empty `id` query: ConnectWise appends the record id to the URL it was given, so it
# lands in the query (`...?id=5001`), not in the secret.
CALLBACK_PATH = "/api/v1/psa/callbacks/{account_id}.{secret}?id="
CALLBACK_DESCRIPTION = "Escalation Mode: ticket notes"


def _require_admin(user: User) -> None:
    if user.role != "admin":
        raise Forbidden("Only an admin may manage the PSA connection.")


def get_connection(account_id: int) -> PsaConnection | None:
    return db.session.scalar(select(PsaConnection).where(PsaConnection.account_id == account_id))


def public_values(connection: PsaConnection, spec: ConnectorSpec) -> dict[str, str]:
    """The connection's stored non-secret settings, by field name (typed or discovered).
    The columns win over the JSON: the API address (`site_url`, in the spec's `address`
    field) and ConnectWise's company and client ids. A row saved before connectors had
    their own settings has the columns only."""
    values = dict(json.loads(connection.public_settings)) if connection.public_settings else {}
    for name, value in (("company_id", connection.company_id), ("client_id", connection.client_id)):
        if value is not None:
            values[name] = value
    values[spec.address] = connection.site_url
    return values


def callback_url(connection: PsaConnection, settings: PsaSettings) -> str | None:
    """Where the PSA calls us; None for a PSA without callbacks (polled only)."""
    if not settings.spec(connection.kind).callbacks:
        return None
    secret = settings.vault().open(connection.secrets).get("callback_secret")
    if not secret:
        return None
    path = CALLBACK_PATH.format(account_id=connection.account_id, secret=secret)
    return settings.base_url.rstrip("/") + path


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def view(connection: PsaConnection, settings: PsaSettings) -> dict[str, Any]:
    """What may be shown of a connection: the spec's answered fields, never a secret (and,
    for a PSA that calls back, whether its callbacks must be signed)."""
    spec = settings.spec(connection.kind)
    stored = public_values(connection, spec)
    shown = {
        "kind": connection.kind,
        **{name: stored.get(name) for name in spec.answered},
        "status": connection.status,
        "message": connection.status_message,
        "callback_url": callback_url(connection, settings),
    }
    if spec.callbacks:
        shown["verify_callback_signatures"] = connection.verify_signatures
    return shown


def credentials(connection: PsaConnection, settings: PsaSettings) -> PsaCredentials:
    sealed = settings.vault().open(connection.secrets)
    spec = settings.spec(connection.kind)
    return PsaCredentials.of({**public_values(connection, spec), **sealed})


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


def _forget_callback(connection: PsaConnection, settings: PsaSettings) -> str | None:
    """Best effort: a callback we cannot delete (the PSA is down, the keys were revoked)
    only calls an address that answers 404 from now on. Returns why it was not deleted."""
    if not connection.psa_callback_id:
        return None
    try:
        connector(connection, settings).delete_callback(connection.psa_callback_id)
    except PsaError as exc:
        log.warning(
            "Account %s: could not delete PSA callback %s: %s",
            connection.account_id,
            connection.psa_callback_id,
            exc.message,
        )
        return exc.message
    return None


def _log_saved(admin: User, spec: ConnectorSpec, address: str, verify: bool) -> None:
    """In the save's transaction: the security log's entry (and a warning when callbacks
    are taken without a signature check)."""
    security_log.add(
        security_log.PSA_CREDENTIALS_CHANGED,
        admin.account_id,
        actor=admin,
        psa=spec.kind,
        site_url=address,
        callback_signatures=(
            "no callbacks" if not spec.callbacks else "verified" if verify else "not verified"
        ),
    )
    if spec.callbacks and not verify:
        log.warning(
            "Account %s: PSA callbacks accepted without a signature check (switched off by "
            "user %s)",
            admin.account_id,
            admin.id,
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
    verify = fields.get("verify_callback_signatures") is not False
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
        connection.verify_signatures = verify
        db.session.add(connection)
        _log_saved(admin, spec, public[spec.address], verify)
    if spec.callbacks:
        _register_callback(connection, settings)
    return connection


def _register_callback(connection: PsaConnection, settings: PsaSettings) -> None:
    url = callback_url(connection, settings)
    try:
        callback_id = connector(connection, settings).register_callback(url, CALLBACK_DESCRIPTION)
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
        connection.callback_registered = _digest(url) if callback_id else None


def reregister_callbacks(settings: PsaSettings) -> dict[str, int]:
    """`release`, after the migrations: every working ConnectWise connection whose callback
    was registered with another URL than the one it would be given now (an older release's
    form, another BASE_URL, a registration that failed) has it deleted and registered
    again. Best effort and repeatable: one the PSA refuses stays as it was (its notes are
    polled) and is tried again by the next run."""
    done = failed = 0
    with tenancy.system("psa_callback_upgrade"):
        rows = list(
            db.session.scalars(
                select(PsaConnection)
                .where(
                    PsaConnection.kind.in_(
                        [kind for kind, spec in settings.connector.specs.items() if spec.callbacks]
                    ),
                    PsaConnection.status == "connected",
                )
                .order_by(PsaConnection.id)
            )
        )
        for connection in rows:
            if connection.callback_registered == _digest(callback_url(connection, settings)):
                continue
            if (why := _forget_callback(connection, settings)) is not None:
                # Kept as it is (one callback, not two): the next release tries again.
                with transaction():
                    connection.status_message = (
                        f"The callback could not be registered again ({why}); notes posted "
                        "in the PSA are picked up by polling instead."
                    )[:2000]
            else:
                _register_callback(connection, settings)
            if connection.callback_registered:
                done += 1
            else:
                failed += 1
                log.warning(
                    "Account %s: PSA callback not registered again: %s",
                    connection.account_id,
                    connection.status_message,
                )
    return {"reregistered": done, "failed": failed}


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


PERMISSION_PREFIX = "Missing permission:"


def note_permission_problem(connection_id: int, message: str) -> None:
    """A 403: the keys work (the connection stays `connected`), but what the API member may
    not do is shown with the connection until it is fixed."""
    with transaction():
        db.session.execute(
            update(PsaConnection)
            .where(PsaConnection.id == connection_id, PsaConnection.status == "connected")
            .values(status_message=message[:2000], updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def clear_permission_problem(connection: PsaConnection, method: str) -> None:
    """Calls of this kind (GET: reading notes and members; POST: posting a note) work
    again: drop a missing-permission message about them, and only that one."""
    message = connection.status_message or ""
    if message.startswith(PERMISSION_PREFIX) and f"({method} " in message:
        with transaction():
            connection.status_message = None


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
        link = spec.ticket_url(public_values(connection, spec), ticket_id)
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

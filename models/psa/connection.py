"""An account's PSA connection: save (and register the callback), test, delete, and the
checks the callback endpoint relies on."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from models import security_log, tenancy
from models.db import db, transaction, utcnow
from models.entities import PSA_KINDS, PsaConnection, User
from models.errors import Forbidden, NotFound, ValidationFailed
from models.psa.base import PsaAuthRejected, PsaConnector, PsaCredentials, PsaError
from models.psa.settings import PsaSettings
from models.psa.sites import normalize_site_url, ticket_url

log = logging.getLogger(__name__)

# One path segment, `<account id>.<secret>` (the secret is URL-safe base64: no dots), then
# an empty `id` query: ConnectWise appends the record id to the URL it was given, so it
# lands in the query (`...?id=5001`), not in the secret.
CALLBACK_PATH = "/api/v1/psa/callbacks/{account_id}.{secret}?id="
CALLBACK_DESCRIPTION = "Escalation Mode: ticket notes"
NO_CLIENT_ID = (
    "No client id: ConnectWise requires a clientId on every API call. Create one in the "
    "ConnectWise developer portal and paste it here."
)
REQUIRED = ("site_url", "company_id", "public_key", "private_key", "client_id")


@dataclass(frozen=True)
class ConnectionView:
    """What may be shown of a connection: never the keys."""

    kind: str
    site_url: str
    company_id: str
    status: str
    message: str | None
    callback_url: str
    verify_callback_signatures: bool


def _require_admin(user: User) -> None:
    if user.role != "admin":
        raise Forbidden("Only an admin may manage the PSA connection.")


def get_connection(account_id: int) -> PsaConnection | None:
    return db.session.scalar(select(PsaConnection).where(PsaConnection.account_id == account_id))


def callback_url(connection: PsaConnection, settings: PsaSettings) -> str:
    secret = settings.vault().open(connection.secrets)["callback_secret"]
    path = CALLBACK_PATH.format(account_id=connection.account_id, secret=secret)
    return settings.base_url.rstrip("/") + path


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def view(connection: PsaConnection, settings: PsaSettings) -> ConnectionView:
    return ConnectionView(
        kind=connection.kind,
        site_url=connection.site_url,
        company_id=connection.company_id,
        status=connection.status,
        message=connection.status_message,
        callback_url=callback_url(connection, settings),
        verify_callback_signatures=connection.verify_signatures,
    )


def credentials(connection: PsaConnection, settings: PsaSettings) -> PsaCredentials:
    sealed = settings.vault().open(connection.secrets)
    return PsaCredentials(
        site_url=connection.site_url,
        company_id=connection.company_id,
        public_key=sealed["public_key"],
        private_key=sealed["private_key"],
        client_id=connection.client_id,
    )


def connector(connection: PsaConnection, settings: PsaSettings) -> PsaConnector:
    return settings.connector(connection.kind, credentials(connection, settings), settings.timeout)


def _validated(fields: dict[str, Any]) -> dict[str, str]:
    kind = fields.get("kind") or "connectwise"
    if kind not in PSA_KINDS:
        raise ValidationFailed(
            "Unknown PSA.", {"kind": [f"Must be one of: {', '.join(PSA_KINDS)}."]}
        )
    missing = {name: ["Required."] for name in REQUIRED if not str(fields.get(name) or "").strip()}
    if missing:
        raise ValidationFailed("Some PSA settings are missing.", missing)
    try:
        site_url = normalize_site_url(fields["site_url"])
    except ValueError as exc:
        raise ValidationFailed("The site URL is not valid.", {"site_url": [str(exc)]}) from exc
    clean = {name: str(fields[name]).strip() for name in REQUIRED}
    return {**clean, "kind": kind, "site_url": site_url}


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


def save(admin: User, fields: dict[str, Any], settings: PsaSettings) -> PsaConnection:
    """Store the connection (secrets sealed), then register the callback with the PSA.

    A new callback secret each time: saving again retires the previous callback URL."""
    _require_admin(admin)
    values = _validated(fields)
    vault = settings.vault()
    previous = get_connection(admin.account_id)
    if previous is not None:
        _forget_callback(previous, settings)
    sealed = vault.seal(
        {
            "public_key": values["public_key"],
            "private_key": values["private_key"],
            "callback_secret": secrets.token_urlsafe(32),
        }
    )
    verify = fields.get("verify_callback_signatures") is not False
    with transaction():
        connection = previous or PsaConnection(account_id=admin.account_id)
        connection.kind, connection.site_url = values["kind"], values["site_url"]
        connection.company_id, connection.client_id = values["company_id"], values["client_id"]
        connection.secrets, connection.status, connection.status_message = sealed, "connected", None
        connection.psa_callback_id, connection.updated_at = None, utcnow()
        connection.verify_signatures = verify
        db.session.add(connection)
        security_log.add(
            security_log.PSA_CREDENTIALS_CHANGED,
            admin.account_id,
            actor=admin,
            psa=values["kind"],
            site_url=values["site_url"],
            callback_signatures="verified" if verify else "not verified",
        )
    if not verify:
        log.warning(
            "Account %s: PSA callbacks accepted without a signature check (switched off by "
            "user %s)",
            admin.account_id,
            admin.id,
        )
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
                .where(PsaConnection.kind == "connectwise", PsaConnection.status == "connected")
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
        if not str(fields.get("client_id") or "").strip():
            return False, NO_CLIENT_ID
        values = _validated(fields)
        probe = settings.connector(
            values["kind"],
            PsaCredentials(
                values["site_url"], values["company_id"], values["public_key"],
                values["private_key"], values["client_id"].strip(),
            ),
            settings.timeout,
        )  # fmt: skip
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
    if connection is None:
        raise NotFound("No such callback.")
    expected = settings.vault().open(connection.secrets)["callback_secret"]
    if not hmac.compare_digest(expected.encode(), secret.encode()):
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


def for_session(account_id: int, ticket_id: str | None) -> SessionPsa:
    connection = get_connection(account_id)
    link = None
    if connection is not None and ticket_id:
        link = ticket_url(connection.site_url, connection.company_id, ticket_id)
    return SessionPsa(
        connected=connection is not None,
        broken=connection is not None and connection.status == "broken",
        ticket_id=ticket_id,
        ticket_url=link,
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

"""Tenant isolation in the database (PostgreSQL row-level security).

Three roles (docs/deploy.md): the schema owner runs migrations; the runtime role serves
every process and sees only the rows of the tenant its transaction names; the system role
bypasses row security and is used only for the work named in `SYSTEM_WORK` below.

- The tenant of the unit of work in hand (a request, a task) lives in a context variable.
  Every transaction the runtime role opens starts with
  `set_config('app.account_id', <tenant>, true)`: local to that transaction, so it never
  outlives it on a pooled connection. No tenant: the transaction sees no rows and can
  write none.
- `with system("<purpose>"):` sends the session's statements to the system role; the
  purpose must be one of `SYSTEM_WORK`, the one list of what may cross accounts.
- SQLite has no row security: there the application's own scoping is all there is (and it
  stays in place on PostgreSQL too, so both layers hold).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from models.db import (
    SYSTEM_SCOPE,
    commit_keeping_loaded,
    db,
    register_system_engine,
    system_engine_for,
)

log = logging.getLogger(__name__)

# The transaction settings the policies read (models/rls.py writes the policies).
TENANT_SETTING = "app.account_id"
SYSTEM_SETTING = "app.system"

# Everything that may run as the system role, and why. Keep it small: each entry is work
# that must see several accounts, or a look-up that finds the tenant in the first place.
SYSTEM_WORK: dict[str, str] = {
    # Cross-account work: the outbox relay and the beat sweeps.
    "outbox_relay": "the relay, and marking dispatch tasks published, for every account",
    "delivery_sweep": "re-sending email deliveries whose task was lost",
    "handoff_steps": "the reminder and admin steps due in any account",
    "rollup": "the monthly metrics of every account",
    "psa_poll": "the PSA tickets to poll and PSA posts to re-send, in every account",
    "shift_notices": "shift-start emails due in any account",
    "metrics": "counts across accounts for /metrics and telemetry",
    "health": "broken PSA connections of any account for /healthz",
    "psa_key_rotation": "re-encrypting every account's PSA and SSO client secrets",
    "psa_callback_upgrade": "registering again every account's PSA callback of an older URL form",
    # Look-ups made before the tenant is known.
    "sign_in": "the user of an email address at password sign-in",
    "credential_lookup": "the token or login behind an API token or a login cookie",
    "socket_credentials": "re-checking the credentials of a web node's open sockets",
    "psa_callback": "the PSA connection a callback URL names",
    "create_account": "creating a tenant and its owner",
    "security_event_without_account": "a failed sign-in for an email no account has",
    "task_from_before_tenancy": "the account of a queued task sent without one",
    "demo_seed": "the demo account and its logins (make run)",
    "calendar_feed": "the user behind a secret calendar feed URL",
    "sso_domain": "the account whose SSO connection serves an email domain",
    "sso_callback": "the SSO connection and identity a sign-in callback names",
    "jit_exists": "whether an email exists in no account before a JIT sign-up",
}

_TENANT: ContextVar[int | None] = ContextVar("tenant", default=None)


class UnknownSystemWork(ValueError):
    pass


def current_tenant() -> int | None:
    return _TENANT.get()


def in_system_scope() -> str | None:
    """The purpose of the system work running now, or None."""
    return SYSTEM_SCOPE.get()


def set_tenant(account_id: int | None) -> None:
    """Make `account_id` the tenant of the unit of work in hand (a request or a task), from
    now until it ends (`clear()`). A transaction already open takes it too."""
    _TENANT.set(int(account_id) if account_id is not None else None)
    _apply_to_open_transaction()


def clear() -> None:
    """The start and the end of a unit of work: no tenant, no system work."""
    _TENANT.set(None)
    SYSTEM_SCOPE.set(None)
    _apply_to_open_transaction()


def start_unit() -> tuple:
    """A unit of work (a request) begins with no tenant and no system work; returns what
    `end_unit` needs to put back what was there before."""
    return (_TENANT.set(None), SYSTEM_SCOPE.set(None))


def end_unit(tokens: tuple) -> None:
    tenant_token, system_token = tokens
    _TENANT.reset(tenant_token)
    SYSTEM_SCOPE.reset(system_token)
    _apply_to_open_transaction()


def clear_context() -> None:
    """Forget the tenant and any system work, touching no transaction (outside any app)."""
    _TENANT.set(None)
    SYSTEM_SCOPE.set(None)


@contextmanager
def use_tenant(account_id: int | None) -> Iterator[None]:
    """Run the block as `account_id`'s work; the tenant before it is restored after (and
    in a transaction still open, unless the block failed: its caller rolls that back)."""
    token = _TENANT.set(int(account_id) if account_id is not None else None)
    _apply_to_open_transaction()
    try:
        yield
    except BaseException:
        _TENANT.reset(token)
        raise
    _TENANT.reset(token)
    _apply_to_open_transaction()


def _check(purpose: str) -> None:
    if purpose not in SYSTEM_WORK:
        raise UnknownSystemWork(
            f"{purpose!r} is not system work; add it to models.tenancy.SYSTEM_WORK on purpose"
        )


@contextmanager
def system(purpose: str) -> Iterator[None]:
    """Run the block's statements (the app's session) as the system role. A transaction the
    block opened is committed (keeping what it loaded) or rolled back at its end, so no
    system-role transaction stays open behind the tenant's work that follows."""
    _check(purpose)
    session = db.session()
    began = not session.in_transaction()
    token = SYSTEM_SCOPE.set(purpose)
    _apply_to_open_transaction()
    try:
        yield
        if began and session.in_transaction():
            commit_keeping_loaded()
    except BaseException:
        if began:
            session.rollback()
        SYSTEM_SCOPE.reset(token)
        raise
    SYSTEM_SCOPE.reset(token)
    _apply_to_open_transaction()


def system_engine() -> Engine:
    """The system role's engine: its own URL, else the one URL everything uses."""
    return system_engine_for(db.engine)


@contextmanager
def system_connection(purpose: str) -> Iterator[Connection]:
    """A Core connection of the system role in a transaction of its own, committed at the
    end of the block (for writes made where the session cannot be used: commit hooks)."""
    _check(purpose)
    token = SYSTEM_SCOPE.set(purpose)
    try:
        with system_engine().begin() as connection:
            yield connection
    finally:
        SYSTEM_SCOPE.reset(token)


def account_of(model, row_id: int, purpose: str = "task_from_before_tenancy") -> int | None:
    """The account a row belongs to, read through the system role (for a task queued
    without its account)."""
    with system(purpose):
        return db.session.scalar(select(model.account_id).where(model.id == int(row_id)))


# --------------------------------------------------------------------------- transactions


def _setting_values() -> tuple[str, str]:
    tenant = _TENANT.get()
    return ("" if tenant is None else str(tenant), "on" if SYSTEM_SCOPE.get() else "")


def _on_begin(connection: Connection) -> None:
    """Every transaction of a PostgreSQL engine starts by naming its tenant (local to the
    transaction), before any statement of its own. The raw driver cursor starts the
    transaction and sends both settings in one round trip."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            "SELECT set_config(%s, %s, true), set_config(%s, %s, true)",
            (TENANT_SETTING, _setting_values()[0], SYSTEM_SETTING, _setting_values()[1]),
        )
    finally:
        cursor.close()


def install(runtime: Engine, system_role: Engine | None = None) -> None:
    """Name the tenant in every transaction of the app's PostgreSQL engines (idempotent),
    and give the runtime engine its system role's engine when that has a URL of its own.
    The system role bypasses row security, but its engine carries the settings too: with
    one URL the system work runs through the runtime engine itself."""
    if system_role is not None:
        register_system_engine(runtime, system_role)
    for engine in (runtime, system_role):
        if engine is None or engine.dialect.name != "postgresql":
            continue
        if not event.contains(engine, "begin", _on_begin):
            event.listen(engine, "begin", _on_begin)


def _apply_to_open_transaction() -> None:
    """A tenant or system scope that changes while the session's runtime transaction is
    open applies to it at once (the transaction named what was current when it began).
    With one URL, system work shares that transaction's connection, so it is switched too.
    A transaction that already failed is left alone: its caller rolls it back."""
    try:
        session = db.session()
        runtime = db.engine
    except RuntimeError:  # no app context: nothing is open
        return
    if not session.in_transaction() or runtime.dialect.name != "postgresql":
        return
    if SYSTEM_SCOPE.get() is not None and system_engine() is not runtime:
        return  # the system work goes to its own role; the runtime transaction keeps its tenant
    tenant, system_work = _setting_values()
    try:
        session.connection(bind_arguments={"bind": runtime}).execute(
            text("SELECT set_config(:t, :tv, true), set_config(:s, :sv, true)"),
            {"t": TENANT_SETTING, "tv": tenant, "s": SYSTEM_SETTING, "sv": system_work},
        )
    except DBAPIError:
        log.debug("Not re-applying the tenant to a failed transaction", exc_info=True)


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Isolation:
    """What /readyz and the web's start-up line say: "enforced", or "off" and why."""

    state: str
    reason: str | None = None

    def as_dict(self) -> dict[str, str]:
        body = {"tenant_isolation": self.state}
        if self.reason:
            body["tenant_isolation_reason"] = self.reason
        return body

    def log_line(self) -> str:
        if self.reason:
            return f"Tenant isolation in the database: {self.state} ({self.reason})"
        return f"Tenant isolation in the database: {self.state}"


_RUNTIME_ROLE = text(
    """
    SELECT current_user AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypass,
           EXISTS (
               SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm')
                 AND pg_has_role(current_user, c.relowner, 'USAGE')
           ) AS owns,
           ARRAY(
               SELECT c.relname::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'account_id'
                    AND NOT a.attisdropped
               WHERE n.nspname = current_schema() AND c.relkind = 'r'
                 AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
               ORDER BY 1
           ) AS unprotected
    FROM pg_roles r WHERE r.rolname = current_user
    """
)
_SYSTEM_ROLE = text(
    "SELECT current_user AS name, rolsuper OR rolbypassrls AS bypass "
    "FROM pg_roles WHERE rolname = current_user"
)


def isolation_status() -> Isolation:
    """Whether the database itself keeps tenants apart for this process, and if not, why."""
    if db.engine.dialect.name != "postgresql":
        return Isolation("off", f"{db.engine.dialect.name}: no row-level security")
    with db.engine.connect() as connection:
        runtime = connection.execute(_RUNTIME_ROLE).one()
    if runtime.superuser or runtime.bypass:
        return Isolation("off", "the runtime role bypasses row security")
    if runtime.owns:
        return Isolation("off", "the runtime role owns the tables")
    if runtime.unprotected:
        return Isolation("off", f"no row security on: {', '.join(runtime.unprotected)}")
    if system_engine() is db.engine:
        return Isolation("off", "no system role")
    with system_engine().connect() as connection:
        system_role = connection.execute(_SYSTEM_ROLE).one()
    if system_role.name == runtime.name:
        return Isolation("off", "no system role")
    if not system_role.bypass:
        return Isolation("off", "the system role does not bypass row security")
    return Isolation("enforced")

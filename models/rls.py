"""Row-level security as migrations write it, and the grants `release` gives the roles.

A new tenant table gets its policy in its own migration with one call, after the table
exists:

    from models.rls import protect
    ...
    op.create_table("rotations", sa.Column("account_id", ...), ...)
    protect("rotations")

`protect` is a no-op on SQLite. tests/models/test_tenant_isolation.py checks the catalog:
a table with `account_id` and no policy fails it. A view is created with
`create_view(name, select_sql)` (security_invoker, so the reader's row security applies).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection

TENANT_POLICY = "tenant_isolation"
OWNER_POLICY = "owner_system_work"
# The transaction's tenant, as models.tenancy sets it: '' (no tenant) matches no row.
TENANT = "NULLIF(current_setting('app.account_id', true), '')::integer"
SYSTEM_WORK = "current_setting('app.system', true) = 'on'"


def protect_statements(table: str, column: str = "account_id") -> list[str]:
    """Enable and force row security on `table`, with the tenant policy on `column`, and
    the owner's policy for system work (used only when one URL serves everything, and by
    migrations that touch rows; the system role bypasses row security anyway)."""
    tenant = f"{column} = {TENANT}"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {TENANT_POLICY} ON {table}",
        f"CREATE POLICY {TENANT_POLICY} ON {table} USING ({tenant}) WITH CHECK ({tenant})",
        f"DROP POLICY IF EXISTS {OWNER_POLICY} ON {table}",
        f"CREATE POLICY {OWNER_POLICY} ON {table} TO CURRENT_USER "
        f"USING ({SYSTEM_WORK}) WITH CHECK ({SYSTEM_WORK})",
    ]


def unprotect_statements(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS {TENANT_POLICY} ON {table}",
        f"DROP POLICY IF EXISTS {OWNER_POLICY} ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def _postgres_op():
    from alembic import op

    return op if op.get_bind().dialect.name == "postgresql" else None


def protect(table: str, column: str = "account_id") -> None:
    """In a migration: row security on a tenant table (`accounts` itself: column "id")."""
    if (op := _postgres_op()) is not None:
        for statement in protect_statements(table, column):
            op.execute(statement)


def unprotect(table: str) -> None:
    """In a migration's downgrade: the reverse of `protect`."""
    if (op := _postgres_op()) is not None:
        for statement in unprotect_statements(table):
            op.execute(statement)


def create_view(name: str, select_sql: str) -> None:
    """In a migration: a view that reads with the caller's rights (and row security)."""
    from alembic import op

    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE VIEW {name} WITH (security_invoker = true) AS {select_sql}")
    else:
        op.execute(f"CREATE VIEW {name} AS {select_sql}")


# --------------------------------------------------------------------------- grants


def grant_statements(role: str) -> list[str]:
    """What the runtime and system roles may do: read and write rows, use the sequences;
    never TRUNCATE (it ignores row security), never change the schema or the migrations'
    bookkeeping."""
    schema = "current_schema()"
    return [
        f"DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO {role}', {schema}); END $$",
        f"DO $$ BEGIN EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES "
        f"IN SCHEMA %I TO {role}', {schema}); END $$",
        f"DO $$ BEGIN EXECUTE format('REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES "
        f"IN SCHEMA %I FROM {role}', {schema}); END $$",
        f"DO $$ BEGIN EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I "
        f"TO {role}', {schema}); END $$",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
    ]


def grant_roles(connection: Connection, roles: Iterable[str | None]) -> list[str]:
    """Give each role (other than the one migrating) its rights; returns those granted.
    Runs after every migration, so tables added since are covered."""
    if connection.dialect.name != "postgresql":
        return []
    me = connection.execute(text("SELECT current_user")).scalar_one()
    quote = connection.dialect.identifier_preparer.quote
    granted: list[str] = []
    for role in dict.fromkeys(r for r in roles if r and r != me):
        exists = connection.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": role}
        ).scalar()
        if not exists:
            continue
        for statement in grant_statements(quote(role)):
            connection.execute(text(statement))
        granted.append(role)
    return granted

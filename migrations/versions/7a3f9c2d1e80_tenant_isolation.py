"""tenant isolation: account_id on tokens and logins, same-account foreign keys, row security

Revision ID: 7a3f9c2d1e80
Revises: f2a9c4d7e1b3
Create Date: 2026-12-07 11:00:00

"""

import sqlalchemy as sa
from alembic import op

from models.rls import protect, unprotect

revision = "7a3f9c2d1e80"
down_revision = "f2a9c4d7e1b3"
branch_labels = None
depends_on = None

# Every table that holds one account's rows, as of this revision (accounts: by id).
TENANT_TABLES = (
    "users",
    "api_tokens",
    "login_sessions",
    "security_events",
    "flow_sessions",
    "messages",
    "psa_writebacks",
    "handoffs",
    "outbox_events",
    "deliveries",
    "handoff_steps",
    "handoff_events",
    "monthly_rollups",
    "psa_connections",
    "psa_member_links",
    "oncall_rotations",
    "oncall_overrides",
    "calendar_feeds",
    "sso_connections",
    "sso_domains",
    "sso_identities",
    "sso_sign_ins",
)
# (table, column, referred table): a row may only point at a row of its own account.
# Foreign keys ignore row security, so without these a claim could name another tenant's
# user. Each is (account_id, column) -> referred (account_id, id).
SAME_ACCOUNT = (
    ("api_tokens", "user_id", "users"),
    ("login_sessions", "user_id", "users"),
    ("security_events", "actor_id", "users"),
    ("security_events", "subject_user_id", "users"),
    ("flow_sessions", "technician_id", "users"),
    ("messages", "author_id", "users"),
    ("messages", "session_id", "flow_sessions"),
    ("psa_writebacks", "author_id", "users"),
    ("psa_writebacks", "session_id", "flow_sessions"),
    ("handoffs", "escalated_by_id", "users"),
    ("handoffs", "claimed_by_id", "users"),
    ("handoffs", "first_action_by_id", "users"),
    ("handoffs", "session_id", "flow_sessions"),
    ("outbox_events", "handoff_id", "handoffs"),
    ("deliveries", "handoff_id", "handoffs"),
    ("deliveries", "recipient_id", "users"),
    ("handoff_steps", "handoff_id", "handoffs"),
    ("handoff_events", "handoff_id", "handoffs"),
    ("handoff_events", "actor_id", "users"),
    ("psa_member_links", "user_id", "users"),
    ("oncall_overrides", "user_id", "users"),
    ("oncall_overrides", "created_by_id", "users"),
    ("calendar_feeds", "user_id", "users"),
    ("sso_identities", "user_id", "users"),
)
REFERRED = ("users", "flow_sessions", "handoffs")


def _add_account_id(table: str) -> None:
    op.add_column(table, sa.Column("account_id", sa.Integer(), nullable=True))
    op.execute(
        f"UPDATE {table} SET account_id = "
        f"(SELECT users.account_id FROM users WHERE users.id = {table}.user_id)"
    )
    with op.batch_alter_table(table) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            f"fk_{table}_account_id_accounts", "accounts", ["account_id"], ["id"]
        )
        batch_op.create_index(f"ix_{table}_account_id", ["account_id"])


def upgrade():
    # Before row security is on: the backfill sees every row.
    _add_account_id("api_tokens")
    _add_account_id("login_sessions")
    if op.get_bind().dialect.name != "postgresql":
        # SQLite keeps the application's scoping; a batch copy of users or handoffs would
        # drop tables that other rows point at.
        return
    for table in REFERRED:
        op.create_unique_constraint(f"uq_{table}_account_id_id", table, ["account_id", "id"])
    for table, column, referred in SAME_ACCOUNT:
        op.create_foreign_key(
            f"fk_tenant_{table}_{column}",
            table,
            referred,
            ["account_id", column],
            ["account_id", "id"],
        )
    protect("accounts", "id")
    for table in TENANT_TABLES:
        protect(table)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in (*TENANT_TABLES, "accounts"):
            unprotect(table)
        for table, column, _referred in SAME_ACCOUNT:
            op.drop_constraint(f"fk_tenant_{table}_{column}", table, type_="foreignkey")
        for table in REFERRED:
            op.drop_constraint(f"uq_{table}_account_id_id", table, type_="unique")
    for table in ("login_sessions", "api_tokens"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(f"ix_{table}_account_id")
            batch_op.drop_constraint(f"fk_{table}_account_id_accounts", type_="foreignkey")
            batch_op.drop_column("account_id")

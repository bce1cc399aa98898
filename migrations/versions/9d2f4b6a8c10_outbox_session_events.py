"""outbox_events: session_id, message_id, writeback_id for a session's live events

Chat messages and PSA writebacks go live through the outbox like the handoff events; the
row names the session (whose room hears it) and the message or writeback it carries. On
PostgreSQL each points at a row of its own account (as the tenant isolation revision's
same-account keys do); the table's row security already covers the new columns.

Revision ID: 9d2f4b6a8c10
Revises: c5d2a8e1f704
Create Date: 2026-12-08 00:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "9d2f4b6a8c10"
down_revision = "c5d2a8e1f704"
branch_labels = None
depends_on = None

# (column, referred table)
COLUMNS = (
    ("session_id", "flow_sessions"),
    ("message_id", "messages"),
    ("writeback_id", "psa_writebacks"),
)
# Referred tables without an (account_id, id) key yet (flow_sessions has one).
NEWLY_REFERRED = ("messages", "psa_writebacks")


def upgrade():
    # SQLite takes a new column's key inline (ADD COLUMN ... REFERENCES): no table copy.
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column, referred in COLUMNS:
        key = sa.ForeignKey(f"{referred}.id", name=f"fk_outbox_events_{column}_{referred}")
        op.add_column(
            "outbox_events",
            sa.Column(column, sa.Integer(), key, nullable=True),
            inline_references=sqlite,
        )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in NEWLY_REFERRED:
        op.create_unique_constraint(f"uq_{table}_account_id_id", table, ["account_id", "id"])
    for column, referred in COLUMNS:
        op.create_foreign_key(
            f"fk_tenant_outbox_events_{column}",
            "outbox_events",
            referred,
            ["account_id", column],
            ["account_id", "id"],
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for column, _referred in COLUMNS:
            op.drop_constraint(
                f"fk_tenant_outbox_events_{column}", "outbox_events", type_="foreignkey"
            )
        for table in NEWLY_REFERRED:
            op.drop_constraint(f"uq_{table}_account_id_id", table, type_="unique")
        for column, referred in reversed(COLUMNS):
            op.drop_constraint(
                f"fk_outbox_events_{column}_{referred}", "outbox_events", type_="foreignkey"
            )
            op.drop_column("outbox_events", column)
        return
    with op.batch_alter_table("outbox_events", recreate="always") as batch_op:
        for column, _referred in reversed(COLUMNS):
            batch_op.drop_column(column)

"""PSA: connections per account, sessions linked to a ticket, writebacks delivered

Revision ID: 5c1e9a2f7d30
Revises: c7e1a2b9d4f0
Create Date: 2026-12-01 23:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "5c1e9a2f7d30"
down_revision = "c7e1a2b9d4f0"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "psa_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("site_url", sa.String(length=300), nullable=False),
        sa.Column("company_id", sa.String(length=100), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("psa_callback_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_psa_connections_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psa_connections")),
        sa.UniqueConstraint("account_id", name=op.f("uq_psa_connections_account_id")),
    )
    op.create_table(
        "psa_member_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("psa_member", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_psa_member_links_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_psa_member_links_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psa_member_links")),
        sa.UniqueConstraint("account_id", "psa_member", name="uq_psa_member_links_member"),
    )
    with op.batch_alter_table("flow_sessions") as batch_op:
        batch_op.add_column(sa.Column("psa_ticket_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("psa_writebacks") as batch_op:
        batch_op.add_column(sa.Column("delivery_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("psa_note_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_psa_writebacks_delivery_id"), ["delivery_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_psa_writebacks_delivery_id_deliveries"),
            "deliveries",
            ["delivery_id"],
            ["id"],
        )
    # A writeback is about a session, which may have no handoff: its outbox row and
    # delivery carry no handoff then.
    with op.batch_alter_table("outbox_events") as batch_op:
        batch_op.alter_column("handoff_id", existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.alter_column("handoff_id", existing_type=sa.Integer(), nullable=True)


def downgrade():
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.alter_column("handoff_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("outbox_events") as batch_op:
        batch_op.alter_column("handoff_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("psa_writebacks") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_psa_writebacks_delivery_id_deliveries"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_psa_writebacks_delivery_id"))
        batch_op.drop_column("psa_note_id")
        batch_op.drop_column("delivery_id")
    with op.batch_alter_table("flow_sessions") as batch_op:
        batch_op.drop_column("psa_ticket_id")
    op.drop_table("psa_member_links")
    op.drop_table("psa_connections")

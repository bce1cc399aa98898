"""handoff outcome note; whether the account's baseline was set by its owner

Revision ID: c7e1a2b9d4f0
Revises: 5e1c0a7d2b94
Create Date: 2026-12-01 23:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "c7e1a2b9d4f0"
down_revision = "5e1c0a7d2b94"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.Text(), nullable=True))
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("baseline_is_set", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # A baseline other than the default was chosen by someone.
    op.execute("UPDATE accounts SET baseline_is_set = true WHERE manual_baseline_minutes <> 45")


def downgrade():
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("baseline_is_set")
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_column("outcome")

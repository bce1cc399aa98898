"""sessions: customer and priority; users: notification preferences; handoffs by claimer

Revision ID: 5e1c0a7d2b94
Revises: b1c2d3e4f5a6
Create Date: 2026-12-01 23:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "5e1c0a7d2b94"
down_revision = "b1c2d3e4f5a6"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("flow_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("priority", sa.String(length=2), server_default="p3", nullable=False)
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "notify_email", sa.String(length=16), server_default="when_offline", nullable=False
            )
        )
        batch_op.add_column(sa.Column("quiet_hours_start", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("quiet_hours_end", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_handoffs_account_claimed_by",
            ["account_id", "claimed_by_id", "status"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_index("ix_handoffs_account_claimed_by")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("quiet_hours_end")
        batch_op.drop_column("quiet_hours_start")
        batch_op.drop_column("notify_email")
    with op.batch_alter_table("flow_sessions", schema=None) as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("customer")

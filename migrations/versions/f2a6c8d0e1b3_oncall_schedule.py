"""On call: accounts.business_hours, rotations, overrides and calendar feeds

Revision ID: f2a6c8d0e1b3
Revises: e8b3f1c4a927
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "f2a6c8d0e1b3"
down_revision = "e8b3f1c4a927"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("business_hours", sa.JSON(), nullable=True))
    op.create_table(
        "oncall_rotations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("participants", sa.JSON(), nullable=False),
        sa.Column("shift_length_days", sa.Integer(), nullable=False),
        sa.Column("handoff_time", sa.String(5), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_oncall_rotations_account_id", "oncall_rotations", ["account_id"])
    op.create_table(
        "oncall_overrides",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column(
            "rotation_id",
            sa.Integer(),
            sa.ForeignKey("oncall_rotations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("end_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_oncall_overrides_rotation_id", "oncall_overrides", ["rotation_id"])
    op.create_index("ix_oncall_overrides_account_end", "oncall_overrides", ["account_id", "end_at"])
    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("user_id", name="uq_calendar_feeds_user_id"),
        sa.UniqueConstraint("secret_hash", name="uq_calendar_feeds_secret_hash"),
    )


def downgrade():
    op.drop_table("calendar_feeds")
    op.drop_table("oncall_overrides")
    op.drop_table("oncall_rotations")
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("business_hours")

"""accounts.schedule_version: what a process-local copy of an account's on-call schedule
was loaded under (models/schedule_cache.py)

Revision ID: b5d1e7f3a2c4
Revises: 9b4e2c7a1f05
Create Date: 2026-12-07 23:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b5d1e7f3a2c4"
down_revision = "9b4e2c7a1f05"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(
            sa.Column("schedule_version", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade():
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("schedule_version")

"""deliveries: why each email went (`reason`), when a held one is due (`held_until`), and
what a notice not about a handoff says (`details`: a shift notice's rotation and end)

Revision ID: d4a7e2c91b38
Revises: 5ec0b1d2e3f4
Create Date: 2026-12-07 11:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "d4a7e2c91b38"
down_revision = "5ec0b1d2e3f4"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("held_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_column("details")
        batch_op.drop_column("held_until")
        batch_op.drop_column("reason")

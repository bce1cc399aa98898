"""outbox_events.emitted_at: the web process emitted the event live

Revision ID: b1c2d3e4f5a6
Revises: a78fa9ff564c
Create Date: 2026-12-01 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b1c2d3e4f5a6"
down_revision = "a78fa9ff564c"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_events") as batch_op:
        batch_op.add_column(sa.Column("emitted_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("outbox_events") as batch_op:
        batch_op.drop_column("emitted_at")

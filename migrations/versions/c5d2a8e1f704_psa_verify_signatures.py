"""psa_connections.verify_signatures: a ConnectWise callback must carry a valid
x-content-signature unless an admin switched that off (true on every existing row)

Revision ID: c5d2a8e1f704
Revises: b3e91d7c4a25
Create Date: 2026-12-08 00:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "c5d2a8e1f704"
down_revision = "b3e91d7c4a25"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("psa_connections") as batch_op:
        batch_op.add_column(
            sa.Column("verify_signatures", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade():
    with op.batch_alter_table("psa_connections") as batch_op:
        batch_op.drop_column("verify_signatures")

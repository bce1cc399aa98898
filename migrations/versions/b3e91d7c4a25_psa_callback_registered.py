"""psa_connections.callback_registered: which callback URL ConnectWise was given (its
SHA-256), so `release` re-registers callbacks of the old form, which ended in the secret
(ConnectWise appends the record id to it); the new form ends in `?id=`

Revision ID: b3e91d7c4a25
Revises: 7a3f9c2d1e80
Create Date: 2026-12-07 23:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "b3e91d7c4a25"
down_revision = "7a3f9c2d1e80"
branch_labels = None
depends_on = None


def upgrade():
    # NULL on every existing row: none was registered with the new form.
    with op.batch_alter_table("psa_connections") as batch_op:
        batch_op.add_column(sa.Column("callback_registered", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("psa_connections") as batch_op:
        batch_op.drop_column("callback_registered")

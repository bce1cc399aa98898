"""PSA connections of any kind: the connector's own settings as JSON; the ConnectWise-only
columns (company id, client id) become optional

Revision ID: 9b4e2c7a1f05
Revises: 9d2f4b6a8c10
Create Date: 2026-12-07 23:55:00

Row security on psa_connections (7a3f9c2d1e80) covers the new column: policies are per
table, not per column.
"""

import sqlalchemy as sa
from alembic import op

revision = "9b4e2c7a1f05"
down_revision = "9d2f4b6a8c10"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("psa_connections") as batch_op:
        batch_op.add_column(sa.Column("public_settings", sa.Text(), nullable=True))
        batch_op.alter_column("company_id", existing_type=sa.String(length=100), nullable=True)
        batch_op.alter_column("client_id", existing_type=sa.String(length=100), nullable=True)


def downgrade():
    # Only ConnectWise connections fit the old columns.
    op.execute("DELETE FROM psa_connections WHERE company_id IS NULL OR client_id IS NULL")
    with op.batch_alter_table("psa_connections") as batch_op:
        batch_op.alter_column("client_id", existing_type=sa.String(length=100), nullable=False)
        batch_op.alter_column("company_id", existing_type=sa.String(length=100), nullable=False)
        batch_op.drop_column("public_settings")

"""handoffs.first_action_by_id (who took the first action, credited whoever holds the
handoff later) and accounts.policy_by_priority (per-priority unclaimed policy; null: the
defaults)

Revision ID: e8b3f1c4a927
Revises: d4a7e2c91b38
Create Date: 2026-12-07 11:35:00
"""

import sqlalchemy as sa
from alembic import op

revision = "e8b3f1c4a927"
down_revision = "d4a7e2c91b38"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("handoffs") as batch_op:
        batch_op.add_column(sa.Column("first_action_by_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_handoffs_first_action_by_id_users", "users", ["first_action_by_id"], ["id"]
        )
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("policy_by_priority", sa.JSON(), nullable=True))
    # Who acted: the timeline's first_action row names them; older rows without one had
    # only the holder to go by.
    op.execute(
        """
        UPDATE handoffs SET first_action_by_id = COALESCE(
            (SELECT e.actor_id FROM handoff_events e
              WHERE e.handoff_id = handoffs.id AND e.kind = 'first_action'
              ORDER BY e.id LIMIT 1),
            claimed_by_id)
        WHERE first_action_at IS NOT NULL
        """
    )


def downgrade():
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("policy_by_priority")
    with op.batch_alter_table("handoffs") as batch_op:
        batch_op.drop_constraint("fk_handoffs_first_action_by_id_users", type_="foreignkey")
        batch_op.drop_column("first_action_by_id")

"""Single sign-on: per-account OpenID Connect connections, their domains, linked
identities and sign-ins under way

Revision ID: f2a9c4d7e1b3
Revises: f2a6c8d0e1b3
Create Date: 2026-12-07 11:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "f2a9c4d7e1b3"
down_revision = "f2a6c8d0e1b3"
branch_labels = None
depends_on = None


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"], ["accounts.id"], name=op.f(f"fk_{table}_account_id_accounts")
    )


def upgrade():
    op.create_table(
        "sso_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("issuer_url", sa.String(length=500), nullable=True),
        sa.Column("client_id", sa.String(length=300), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("jit_enabled", sa.Boolean(), nullable=False),
        sa.Column("jit_role", sa.String(length=20), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("verification_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        _account_fk("sso_connections"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_connections")),
        sa.UniqueConstraint("account_id", name=op.f("uq_sso_connections_account_id")),
    )
    op.create_table(
        "sso_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=True),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        _account_fk("sso_domains"),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_domains_connection_id_sso_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_domains")),
        sa.UniqueConstraint("account_id", "domain", name="uq_sso_domains_account_domain"),
    )
    op.create_index(op.f("ix_sso_domains_account_id"), "sso_domains", ["account_id"])
    op.create_index(op.f("ix_sso_domains_connection_id"), "sso_domains", ["connection_id"])
    # One account at most holds a domain verified.
    op.create_index(
        "uq_sso_domains_verified",
        "sso_domains",
        ["domain"],
        unique=True,
        sqlite_where=sa.text("verified_at IS NOT NULL"),
        postgresql_where=sa.text("verified_at IS NOT NULL"),
    )
    op.create_table(
        "sso_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(), nullable=True),
        _account_fk("sso_identities"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sso_identities_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_identities")),
        sa.UniqueConstraint("account_id", "issuer", "subject", name="uq_sso_identities_identity"),
    )
    op.create_index(op.f("ix_sso_identities_account_id"), "sso_identities", ["account_id"])
    op.create_index(op.f("ix_sso_identities_user_id"), "sso_identities", ["user_id"])
    op.create_table(
        "sso_sign_ins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        _account_fk("sso_sign_ins"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_sign_ins")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_sso_sign_ins_state_hash")),
    )
    op.create_index(op.f("ix_sso_sign_ins_account_id"), "sso_sign_ins", ["account_id"])


def downgrade():
    op.drop_table("sso_sign_ins")
    op.drop_table("sso_identities")
    op.drop_index("uq_sso_domains_verified", table_name="sso_domains")
    op.drop_table("sso_domains")
    op.drop_table("sso_connections")

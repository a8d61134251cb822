"""api_keys, jobs.owner_key_id, idempotency keys scoped per API key

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create api_keys, give jobs an owner, and make room for scoped idempotency keys."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # Existing jobs keep a NULL owner: no key sees them, which is the safe reading of "unknown".
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("owner_key_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key("fk_jobs_owner_key_id_api_keys", "api_keys", ["owner_key_id"], ["id"])
        batch_op.create_index("ix_jobs_owner_created", ["owner_key_id", "created_at"], unique=False)
        batch_op.create_index("ix_jobs_owner_status", ["owner_key_id", "status"], unique=False)
    # Stored keys become "<api key id>:<client key>". Records from before keys existed name
    # jobs that no key can see, so they could never be replayed: they go.
    op.execute(sa.text("DELETE FROM idempotency_keys"))
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(length=255), type_=sa.String(length=300), existing_nullable=False
        )


def downgrade() -> None:
    """Drop them again; scoped idempotency records do not fit the old column and go too."""
    op.execute(sa.text("DELETE FROM idempotency_keys"))
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(length=300), type_=sa.String(length=255), existing_nullable=False
        )
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_owner_status")
        batch_op.drop_index("ix_jobs_owner_created")
        batch_op.drop_constraint("fk_jobs_owner_key_id_api_keys", type_="foreignkey")
        batch_op.drop_column("owner_key_id")
    op.drop_table("api_keys")

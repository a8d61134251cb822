"""jobs.enqueued_at, for the reconciler

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column and an index for the reconciler's scan."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_jobs_status_enqueued", ["status", "enqueued_at"], unique=False)


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_status_enqueued")
        batch_op.drop_column("enqueued_at")

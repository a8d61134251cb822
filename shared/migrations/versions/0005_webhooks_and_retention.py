"""jobs.webhook_url, jobs.webhook_events, jobs.expired_at

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the webhook columns and the retention mark (all nullable: old rows need no backfill)."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("webhook_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_events", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("expired_at")
        batch_op.drop_column("webhook_events")
        batch_op.drop_column("webhook_url")

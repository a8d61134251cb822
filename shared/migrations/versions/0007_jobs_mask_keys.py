"""jobs.mask_keys: the label images of a job with regions (spatial control)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column; jobs made before it have no masks (NULL)."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("mask_keys", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("mask_keys")

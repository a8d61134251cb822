"""jobs.lost_runs: runs whose worker died, the count the attempts cap applies to

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 02:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the counter; a job's earlier lost runs are not known, so every job starts at 0."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("lost_runs", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("lost_runs")

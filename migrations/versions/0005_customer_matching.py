"""customer matching: the possible-duplicate marker and a returning customer's typed differences

- submission.possible_duplicate_of: the HCP customer id that shares this person's email or a
  number without being a match; the sync made a new customer and the office may merge them.
- submission.typed_differences: the job note line listing the email, name or mobile a
  returning customer typed that differ from HCP's record (which is never overwritten).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("submission") as batch_op:
        batch_op.add_column(sa.Column("possible_duplicate_of", sa.String(length=64), nullable=True))
        # Rows that exist already have no differences: "" fills them.
        batch_op.add_column(
            sa.Column("typed_differences", sa.Text(), nullable=False, server_default="")
        )


def downgrade():
    with op.batch_alter_table("submission") as batch_op:
        batch_op.drop_column("typed_differences")
        batch_op.drop_column("possible_duplicate_of")

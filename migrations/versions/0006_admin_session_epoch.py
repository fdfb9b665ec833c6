"""admin session epoch: logging out ends the admin's sessions on the server

- admin_user.session_epoch: part of every admin session's fingerprint; logout adds one, so a
  session cookie copied before the logout is refused when it is replayed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 11:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("admin_user") as batch_op:
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade():
    with op.batch_alter_table("admin_user") as batch_op:
        batch_op.drop_column("session_epoch")

"""recurring maintenance: a visit that repeats, and the follow-up requests it makes

- submission.repeat_every: "monthly", "quarterly" or "yearly" when the homeowner asked for the
  visit to repeat ("" otherwise; rows that exist already don't repeat).
- submission.next_follow_up: the day the next follow-up request falls due (None: none, or the
  series was stopped); submission.repeat_stopped_at: when an admin stopped it.
- submission.follow_up_of / follow_up_due: on a follow-up, the original request and the day it
  was due for. Unique together: a sweep run twice, or in two workers, makes one follow-up.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 21:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("submission") as batch_op:
        batch_op.add_column(
            sa.Column("repeat_every", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("next_follow_up", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("repeat_stopped_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("follow_up_of", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("follow_up_due", sa.Date(), nullable=True))
        batch_op.create_index("ix_submission_next_follow_up", ["next_follow_up"])
        batch_op.create_index("ix_submission_follow_up_of", ["follow_up_of"])
        batch_op.create_foreign_key(
            "fk_submission_follow_up_of_submission", "submission", ["follow_up_of"], ["id"]
        )
        batch_op.create_unique_constraint(
            "uq_submission_follow_up", ["follow_up_of", "follow_up_due"]
        )


def downgrade():
    with op.batch_alter_table("submission") as batch_op:
        batch_op.drop_constraint("uq_submission_follow_up", type_="unique")
        batch_op.drop_constraint("fk_submission_follow_up_of_submission", type_="foreignkey")
        batch_op.drop_index("ix_submission_follow_up_of")
        batch_op.drop_index("ix_submission_next_follow_up")
        batch_op.drop_column("follow_up_due")
        batch_op.drop_column("follow_up_of")
        batch_op.drop_column("repeat_stopped_at")
        batch_op.drop_column("next_follow_up")
        batch_op.drop_column("repeat_every")

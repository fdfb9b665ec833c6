"""booking windows: step 6 offers HCP's open windows; a preference becomes an unscheduled job

- form.scheduling_mode: "booked" (HCP's booking windows, the form's own windows only when HCP
  cannot answer) or "preferences" (the form's windows, as preferred times, always).
- form.booking_days: how many days of windows step 6 offers (14).
- form.lead_time_minutes: no window that starts sooner than this is offered (120).
- submission.schedule_kind: "booked" (a window HCP had open, a scheduled job) or "preference"
  (an unscheduled job with the preferred time in its notes). Rows that exist already were
  preferences: nobody checked HCP's calendar for them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("form") as batch_op:
        batch_op.add_column(
            sa.Column(
                "scheduling_mode", sa.String(length=16), nullable=False, server_default="booked"
            )
        )
        batch_op.add_column(
            sa.Column("booking_days", sa.Integer(), nullable=False, server_default="14")
        )
        batch_op.add_column(
            sa.Column("lead_time_minutes", sa.Integer(), nullable=False, server_default="120")
        )
    with op.batch_alter_table("submission") as batch_op:
        batch_op.add_column(
            sa.Column(
                "schedule_kind", sa.String(length=16), nullable=False, server_default="preference"
            )
        )


def downgrade():
    with op.batch_alter_table("submission") as batch_op:
        batch_op.drop_column("schedule_kind")
    with op.batch_alter_table("form") as batch_op:
        batch_op.drop_column("lead_time_minutes")
        batch_op.drop_column("booking_days")
        batch_op.drop_column("scheduling_mode")

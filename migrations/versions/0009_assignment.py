"""assignment: who does the work of a booked window, and its dispatch

- form.territories: ZIPs or ZIP prefixes per HCP employee id ({} = anyone anywhere).
- form.use_service_zones: HCP's service zones decide who covers a ZIP instead.
- form.dispatch_jobs: dispatch a booked job to its pro (PUT /jobs/{id}/dispatch); off.
- submission.assigned_at, hcp_employee_name, assignment_note: the pro chosen (stored before
  the job is sent, so a resumed sync sends the same one) or why none was; hcp_employee_id
  already exists.
- submission.dispatched_at: when the job was dispatched to that pro.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("form") as batch_op:
        batch_op.add_column(
            sa.Column("territories", sa.JSON(), nullable=False, server_default="{}")
        )
        batch_op.add_column(
            sa.Column("use_service_zones", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("dispatch_jobs", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("submission") as batch_op:
        batch_op.add_column(sa.Column("assigned_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("hcp_employee_name", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("assignment_note", sa.String(length=300), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("dispatched_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("submission") as batch_op:
        batch_op.drop_column("dispatched_at")
        batch_op.drop_column("assignment_note")
        batch_op.drop_column("hcp_employee_name")
        batch_op.drop_column("assigned_at")
    with op.batch_alter_table("form") as batch_op:
        batch_op.drop_column("dispatch_jobs")
        batch_op.drop_column("use_service_zones")
        batch_op.drop_column("territories")

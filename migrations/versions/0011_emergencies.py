"""emergencies: keywords and an emergency job type per form; ASAP and acknowledgement per request

- form.emergency_keywords: words in a description that make step 6 suggest Emergency (a hint
  only), JSON list, the default list for existing forms.
- form.emergency_job_type_id: the HCP job type of an emergency job ("" = the service type's).
- submission.asap: the homeowner chose "As soon as possible" on step 6.
- submission.emergency_acknowledged_at / _by: who in the office saw an emergency, and when.
  Emergencies received before this migration count as acknowledged: the dashboard's banner
  starts empty instead of listing every old emergency.
- index submission (urgency, emergency_acknowledged_at, status, created_at): the banner's
  open emergencies and their count, read from the index alone (the dashboard's rule, 0004).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 21:00:00

"""

import json

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DEFAULT_KEYWORDS = [
    "gas smell", "smell gas", "smells like gas", "gas leak", "carbon monoxide", "flooding",
    "flooded", "burst pipe", "pipe burst", "no heat", "sparking", "sparks", "burning smell",
    "sewage", "sewer backup",
]  # fmt: skip
INDEX = (
    "ix_submission_emergency_open",
    ["urgency", "emergency_acknowledged_at", "status", "created_at"],
)


def upgrade():
    with op.batch_alter_table("form") as batch_op:
        batch_op.add_column(
            sa.Column(
                "emergency_keywords",
                sa.JSON(),
                nullable=False,
                server_default=json.dumps(DEFAULT_KEYWORDS),
            )
        )
        batch_op.add_column(
            sa.Column(
                "emergency_job_type_id", sa.String(length=64), nullable=False, server_default=""
            )
        )
    with op.batch_alter_table("submission") as batch_op:
        batch_op.add_column(
            sa.Column("asap", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("emergency_acknowledged_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "emergency_acknowledged_by",
                sa.String(length=254),
                nullable=False,
                server_default="",
            )
        )
    submission = sa.table(
        "submission",
        sa.column("urgency", sa.String),
        sa.column("created_at", sa.DateTime),
        sa.column("emergency_acknowledged_at", sa.DateTime),
        sa.column("emergency_acknowledged_by", sa.String),
    )
    op.execute(
        submission.update()
        .where(submission.c.urgency == "emergency")
        .values(
            emergency_acknowledged_at=submission.c.created_at,
            emergency_acknowledged_by="before migration 0011",
        )
    )
    op.create_index(INDEX[0], "submission", INDEX[1], unique=False)


def downgrade():
    op.drop_index(INDEX[0], table_name="submission")
    with op.batch_alter_table("submission") as batch_op:
        batch_op.drop_column("emergency_acknowledged_by")
        batch_op.drop_column("emergency_acknowledged_at")
        batch_op.drop_column("asap")
    with op.batch_alter_table("form") as batch_op:
        batch_op.drop_column("emergency_job_type_id")
        batch_op.drop_column("emergency_keywords")

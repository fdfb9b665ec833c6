"""contact preferences, marketing consent and the email outbox

- outbox_message: one message per (submission, kind, recipient), sent by the workers under a
  lease (channel "email"; room for SMS), with its state, attempts and last error.
- form: contact_method_default (the contact step's preselected choice), office_emails.
- submission: contact_method, marketing_consent, marketing_consent_at,
  marketing_consent_version.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 22:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
            name=op.f("fk_outbox_message_submission_id_submission"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint(
            "submission_id", "kind", "recipient", name="uq_outbox_submission_kind_recipient"
        ),
    )
    with op.batch_alter_table("outbox_message") as batch_op:
        for column in ("submission_id", "state", "next_attempt_at"):
            batch_op.create_index(batch_op.f(f"ix_outbox_message_{column}"), [column])
    with op.batch_alter_table("form") as batch_op:
        batch_op.add_column(
            sa.Column(
                "contact_method_default", sa.String(length=8), nullable=False, server_default="text"
            )
        )
        batch_op.add_column(
            sa.Column("office_emails", sa.JSON(), nullable=False, server_default="[]")
        )
    with op.batch_alter_table("submission") as batch_op:
        batch_op.add_column(
            sa.Column("contact_method", sa.String(length=8), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("marketing_consent", sa.Boolean(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("marketing_consent_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "marketing_consent_version", sa.String(length=16), nullable=False, server_default=""
            )
        )


def downgrade():
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), as 0012 does.
    with op.batch_alter_table("submission", recreate="never") as batch_op:
        batch_op.drop_column("marketing_consent_version")
        batch_op.drop_column("marketing_consent_at")
        batch_op.drop_column("marketing_consent")
        batch_op.drop_column("contact_method")
    with op.batch_alter_table("form", recreate="never") as batch_op:
        batch_op.drop_column("office_emails")
        batch_op.drop_column("contact_method_default")
    op.drop_table("outbox_message")

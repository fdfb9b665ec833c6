"""abandoned requests, resume links and connection health

- abandoned_request: a draft left idle with a way to reach the person and their consent; its
  resume token, and the lead sent to HCP for it (lease, creates sent, HCP ids, state).
- draft: contact_consent_at (the contact step's consent with a valid phone or email),
  erased_at (personal answers erased when it expired).
- form: abandoned_after_minutes, abandoned_to_hcp.
- submission: abandoned_lead_id (the lead its draft became before it was submitted).
- hcp_connection: check_failures, failing_since (the admin's connection banner).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 22:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "abandoned_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("detected_at", sa.DateTime(), nullable=False),
        sa.Column("resume_token", sa.String(length=64), nullable=False),
        sa.Column("lead_state", sa.String(length=16), nullable=False),
        sa.Column("creates_sent", sa.String(length=40), nullable=False),
        sa.Column("hcp_customer_id", sa.String(length=64), nullable=True),
        sa.Column("hcp_address_id", sa.String(length=64), nullable=True),
        sa.Column("hcp_lead_id", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("lead_sent_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["draft.id"], name=op.f("fk_abandoned_request_draft_id_draft")
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["form.id"], name=op.f("fk_abandoned_request_form_id_form")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abandoned_request")),
        sa.UniqueConstraint("draft_id", name=op.f("uq_abandoned_request_draft_id")),
        sa.UniqueConstraint("resume_token", name=op.f("uq_abandoned_request_resume_token")),
    )
    with op.batch_alter_table("abandoned_request") as batch_op:
        for column in ("form_id", "detected_at", "lead_state"):
            batch_op.create_index(batch_op.f(f"ix_abandoned_request_{column}"), [column])
    with op.batch_alter_table("draft") as batch_op:
        batch_op.add_column(sa.Column("contact_consent_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_draft_contact_consent_at"), ["contact_consent_at"])
    with op.batch_alter_table("form") as batch_op:
        batch_op.add_column(
            sa.Column("abandoned_after_minutes", sa.Integer(), nullable=False, server_default="60")
        )
        batch_op.add_column(
            sa.Column("abandoned_to_hcp", sa.Boolean(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("submission") as batch_op:
        batch_op.add_column(sa.Column("abandoned_lead_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("hcp_connection") as batch_op:
        batch_op.add_column(
            sa.Column("check_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(), nullable=True))


def downgrade():
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), as 0008 does: a batch copy of a table
    # that others reference would be refused by the foreign keys.
    with op.batch_alter_table("hcp_connection", recreate="never") as batch_op:
        batch_op.drop_column("failing_since")
        batch_op.drop_column("check_failures")
    with op.batch_alter_table("submission", recreate="never") as batch_op:
        batch_op.drop_column("abandoned_lead_id")
    with op.batch_alter_table("form", recreate="never") as batch_op:
        batch_op.drop_column("abandoned_to_hcp")
        batch_op.drop_column("abandoned_after_minutes")
    with op.batch_alter_table("draft", recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_draft_contact_consent_at"))
        batch_op.drop_column("erased_at")
        batch_op.drop_column("contact_consent_at")
    op.drop_table("abandoned_request")

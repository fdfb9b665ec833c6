"""webhooks: HCP's deliveries, stored once, and what became of each record in HCP

- webhook_event: one verified delivery (dedupe_key = sha256 of timestamp and body, unique).
- submission: hcp_status (+ _at, _source), hcp_completed_at, hcp_canceled_at, invoiced_cents,
  paid_cents, hcp_paid_at, hcp_money_at, hcp_money_source, hcp_money (per invoice),
  hcp_reconciled_at.
- hcp_connection: the webhook signing secret (encrypted), the previous one and until when it
  is still accepted, when it was set, and the time of the last verified delivery.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 21:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("resource", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_event")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_webhook_event_dedupe_key")),
    )
    with op.batch_alter_table("webhook_event") as batch_op:
        for column in ("record_id", "received_at", "state", "submission_id"):
            batch_op.create_index(batch_op.f(f"ix_webhook_event_{column}"), [column])
    with op.batch_alter_table("submission") as batch_op:
        batch_op.add_column(sa.Column("hcp_status", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("hcp_status_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("hcp_status_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("hcp_completed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("hcp_canceled_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("invoiced_cents", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("paid_cents", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("hcp_paid_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("hcp_money_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("hcp_money_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("hcp_money", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("hcp_reconciled_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_submission_hcp_status"), ["hcp_status"])
    with op.batch_alter_table("hcp_connection") as batch_op:
        batch_op.add_column(sa.Column("webhook_secret_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_previous_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_previous_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_set_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("webhook_last_verified_at", sa.DateTime(), nullable=True))


def downgrade():
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch copy of hcp_connection or
    # submission would drop a table that others reference, which foreign keys refuse.
    with op.batch_alter_table("hcp_connection", recreate="never") as batch_op:
        for column in (
            "webhook_last_verified_at",
            "webhook_secret_set_at",
            "webhook_previous_until",
            "webhook_previous_encrypted",
            "webhook_secret_encrypted",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("submission", recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_hcp_status"))
        for column in (
            "hcp_reconciled_at",
            "hcp_money",
            "hcp_money_source",
            "hcp_money_at",
            "hcp_paid_at",
            "paid_cents",
            "invoiced_cents",
            "hcp_canceled_at",
            "hcp_completed_at",
            "hcp_status_source",
            "hcp_status_at",
            "hcp_status",
        ):
            batch_op.drop_column(column)
    op.drop_table("webhook_event")

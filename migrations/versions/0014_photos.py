"""photos: the homeowner's photos of the problem, and their attachment to the HCP job

- photo: one row per photo, owned by a draft while the wizard is in progress and by the
  submission once submitted; the file (re-encoded JPEG) and its thumbnail live in the photo
  store under stored_name / thumb_name; attach_* columns track the upload to HCP's job.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 21:00:00

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "photo",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_name", sa.String(length=200), nullable=False),
        sa.Column("thumb_name", sa.String(length=200), nullable=False),
        sa.Column("attach_state", sa.String(length=16), nullable=False),
        sa.Column("attach_sent", sa.Boolean(), nullable=False),
        sa.Column("attach_attempts", sa.Integer(), nullable=False),
        sa.Column("attach_error", sa.Text(), nullable=False),
        sa.Column("next_attach_at", sa.DateTime(), nullable=True),
        sa.Column("attach_claim_until", sa.DateTime(), nullable=True),
        sa.Column("attached_at", sa.DateTime(), nullable=True),
        sa.Column("hcp_attachment_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["draft_id"], ["draft.id"], name=op.f("fk_photo_draft_id_draft")),
        sa.ForeignKeyConstraint(
            ["submission_id"], ["submission.id"], name=op.f("fk_photo_submission_id_submission")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo")),
        sa.UniqueConstraint("key", name=op.f("uq_photo_key")),
    )
    with op.batch_alter_table("photo") as batch_op:
        batch_op.create_index(batch_op.f("ix_photo_draft_id"), ["draft_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_photo_submission_id"), ["submission_id"], unique=False
        )
        batch_op.create_index(
            "ix_photo_attach_state_next", ["attach_state", "next_attach_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("photo") as batch_op:
        batch_op.drop_index("ix_photo_attach_state_next")
        batch_op.drop_index(batch_op.f("ix_photo_submission_id"))
        batch_op.drop_index(batch_op.f("ix_photo_draft_id"))
    op.drop_table("photo")

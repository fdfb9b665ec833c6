"""marketing: first-page views per campaign, and the ad spend the admin enters

- campaign_visit: first-page views of a form per local day, source, medium and campaign
  (lowercased UTM values, "" when absent), for the Marketing page's "visits".
- ad_spend: what was spent on ads from one source in one month, in cents (unique per source
  and month), for cost per lead, cost per completed job and return on ad spend.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 21:40:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "campaign_visit",
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("medium", sa.String(length=200), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["form_id"], ["form.id"], name=op.f("fk_campaign_visit_form_id_form")
        ),
        sa.PrimaryKeyConstraint(
            "form_id", "day", "source", "medium", "campaign", name=op.f("pk_campaign_visit")
        ),
    )
    op.create_table(
        "ad_spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_spend")),
        sa.UniqueConstraint("source", "month", name="uq_ad_spend_source_month"),
    )
    with op.batch_alter_table("ad_spend") as batch_op:
        batch_op.create_index(batch_op.f("ix_ad_spend_month"), ["month"])


def downgrade():
    op.drop_table("ad_spend")
    op.drop_table("campaign_visit")

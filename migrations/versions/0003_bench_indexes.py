"""indexes for the admin search at scale (bench/admin.py)

The admin's search matches names and emails with ILIKE '%text%' (icontains). Without an index
that is a sequential scan of every submission, done twice per page (the count and the page):
about 250 ms at 100,000 submissions on PostgreSQL. Trigram GIN indexes let PostgreSQL answer
those matches, and the reference/phone equality next to them, from indexes (a BitmapOr).
pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.

SQLite has no such index; its scan of 100,000 rows stays well under the 200 ms goal.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-27 21:40:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

TRIGRAM_INDEXES = (
    ("ix_submission_first_name_trgm", "first_name"),
    ("ix_submission_last_name_trgm", "last_name"),
    ("ix_submission_email_trgm", "email"),
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in TRIGRAM_INDEXES:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON submission USING gin ({column} gin_trgm_ops)"
        )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _column in TRIGRAM_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")

"""RQ job functions. They take ids only; the worker supplies the app context."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, update

from .extensions import db
from .models import Status, Submission
from .timeutil import utcnow

logger = logging.getLogger(__name__)


def sync_submission(submission_id: int) -> str:
    """Sync one submission to Housecall Pro (see sync.py)."""
    from .sync import sync_submission as run

    return run(submission_id)


def sweep() -> int:
    """Re-enqueue submissions left pending, or claimed by a worker that died; return how many.

    A row is enqueued by at most one sweeper: each claims it with a conditional update of
    `enqueued_at` first, so two sweeps running at once don't both enqueue it. A row whose job
    still waits on the queue (a backlog) is not enqueued again: the count is new jobs only.
    """
    from .hcp.connection import connection_row
    from .queue import enqueue_sync_once
    from .sync import resume_waiting

    now = utcnow()
    grace = timedelta(seconds=int(current_app.config["SWEEP_PENDING_GRACE_SECONDS"]))
    stale = or_(Submission.enqueued_at.is_(None), Submission.enqueued_at <= now - grace)
    due = or_(
        and_(
            Submission.status == Status.PENDING,
            or_(Submission.next_attempt_at.is_(None), Submission.next_attempt_at <= now),
            stale,
        ),
        and_(Submission.status == Status.SYNCING, Submission.lease_until < now, stale),
    )
    ids = list(db.session.scalars(select(Submission.id).where(due).limit(1000)))
    count = 0
    for sid in ids:
        claimed = db.session.execute(
            update(Submission)
            .where(Submission.id == sid, due)
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if claimed.rowcount == 1 and enqueue_sync_once(sid) == "enqueued":
            count += 1
    conn = connection_row()
    if conn.state != "disconnected" and not conn.paused:
        count += resume_waiting()
    if count:
        logger.info("Sweep re-enqueued %s submissions", count)
    return count


def sweep_job() -> int:
    """Run the sweep, then schedule the next one (the worker's scheduler runs it)."""
    from .queue import enqueue_sweep

    try:
        return sweep()
    finally:
        enqueue_sweep()

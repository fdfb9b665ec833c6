"""Without webhooks, ask HCP about each open record now and then, and apply what it says.

A record is open while it is neither closed (canceled, deleted, declined, lost) nor completed
more than RECONCILE_STOP_DAYS ago; each is asked about at most every RECONCILE_INTERVAL_MINUTES
(the first time that long after it was synced), through HousecallProClient and so within the
shared rate budget. What it finds goes through the same `apply_record` as a webhook event,
with the source "reconcile".
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update

from ..connection import connection_row, make_client
from ..extensions import db, rowcount
from ..hcp.client import HcpError
from ..models import HcpConnection, Status, Submission
from ..timeutil import utcnow
from . import apply, figures, secret

logger = logging.getLogger(__name__)


def webhooks_live(conn: HcpConnection) -> bool:
    """Return True when webhooks are set up: a secret is in force and a delivery verified."""
    return secret.source(conn) != "none" and conn.webhook_last_verified_at is not None


def _interval() -> timedelta:
    return timedelta(minutes=float(current_app.config["RECONCILE_INTERVAL_MINUTES"]))


def due_ids(*, now: datetime, limit: int) -> list[int]:
    """Return the open records due for a reconcile, the longest waiting first."""
    stop = timedelta(days=float(current_app.config["RECONCILE_STOP_DAYS"]))
    last = func.coalesce(Submission.hcp_reconciled_at, Submission.synced_at)
    stmt = (
        select(Submission.id)
        .where(
            Submission.status == Status.SYNCED,
            or_(
                Submission.hcp_job_id.is_not(None),
                Submission.hcp_estimate_id.is_not(None),
                Submission.hcp_lead_id.is_not(None),
            ),
            or_(Submission.hcp_status.is_(None), Submission.hcp_status.not_in(figures.CLOSED)),
            or_(Submission.hcp_completed_at.is_(None), Submission.hcp_completed_at > now - stop),
            last <= now - _interval(),
        )
        .order_by(last, Submission.id)
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def _claim(sub_id: int, *, now: datetime) -> bool:
    """Mark the record asked about now, unless another run did within the interval."""
    claimed = db.session.execute(
        update(Submission)
        .where(
            Submission.id == sub_id,
            or_(
                Submission.hcp_reconciled_at.is_(None),
                Submission.hcp_reconciled_at <= now - _interval(),
            ),
        )
        .values(hcp_reconciled_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return rowcount(claimed) == 1


def reconcile_submission(sub_id: int, *, now: datetime) -> str:
    """Read one submission's record (and a job's invoices) from HCP and apply it.

    Returns:
        "done", "skipped" (asked about recently, or nothing to ask) or "error" (HCP failed;
        the next try comes after the interval).
    """
    sub = db.session.get(Submission, sub_id)
    if sub is None or sub.hcp_record is None or not _claim(sub_id, now=now):
        return "skipped"
    kind, record_id = sub.hcp_record
    states: list[tuple[str, dict[str, Any]]] = []
    try:
        client = make_client(submission_id=sub_id)
        asked_at = utcnow()  # HCP's answer is its state at this moment or later
        if kind == "job":
            states.append(("job", client.get_job(record_id)))
            states += [("invoice", i) for i in client.job_invoices(record_id)]
        elif kind == "estimate":
            states.append(("estimate", client.get_estimate(record_id)))
        else:
            states.append(("lead", client.get_lead(record_id)))
    except HcpError as exc:
        logger.warning("Reconcile of submission %s: HCP said %s", sub_id, exc.status or exc.kind)
        db.session.rollback()
        return "error"
    locked = apply.lock(sub_id)
    if locked is None:
        return "skipped"
    for resource, record in states:
        apply.apply_record(locked, resource, "reconcile", record, at=asked_at, source="reconcile")
    apply.refresh_totals(locked)
    db.session.commit()
    return "done"


def reconcile_due(*, now: datetime) -> int:
    """Reconcile up to RECONCILE_BATCH due records when webhooks are not set up; return how
    many were read."""
    conn = connection_row()
    if webhooks_live(conn) or conn.state == "disconnected":
        return 0
    done = 0
    for sub_id in due_ids(now=now, limit=int(current_app.config["RECONCILE_BATCH"])):
        if reconcile_submission(sub_id, now=now) == "done":
            done += 1
    return done

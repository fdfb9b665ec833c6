"""The sync's lease: a claim on one submission, and a guard that makes every write use it.

A run claims a submission with a conditional update that stores a fresh token; from then on every
write the run makes to that submission goes out as UPDATE … WHERE lease_token = ours, so a run
frozen past its lease (and taken over by another) writes nothing when it wakes (LeaseLost).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, event, inspect, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import claim_with_lease, rowcount
from ..models import Status, Submission
from ..timeutil import utcnow

logger = logging.getLogger(__name__)


# (submission id, lease token) of the run in this thread; see _lease_guard.
_current_run: ContextVar[tuple[int, str] | None] = ContextVar("hcpform_sync_run", default=None)


class LeaseLost(Exception):
    """The run's lease ran out and another run took the submission over: stop, write nothing."""


@event.listens_for(Session, "before_flush")
def _lease_guard(session: Session, _context: Any, _instances: Any) -> None:
    """Write the running sync's changes to its submission only while its lease holds.

    Every ORM change a run makes to its own submission (ids, creates_sent, status, errors...)
    goes out here as UPDATE ... WHERE id = ? AND lease_token = ?, which also extends the lease;
    no row updated means another run owns the submission now, and LeaseLost stops this one.

    Raises:
        LeaseLost: when the submission is no longer held with this run's lease.
    """
    run = _current_run.get()
    if run is None:
        return
    sub_id, token = run
    for obj in list(session.dirty):
        if not isinstance(obj, Submission) or obj.id != sub_id:
            continue
        values = {}
        for attr in inspect(obj).attrs:
            added = attr.history.added
            if added and attr.key in Submission.__table__.c:
                values[attr.key] = added[0]
        if not values:
            continue
        lease = timedelta(seconds=int(current_app.config["SYNC_LEASE_SECONDS"]))
        values.setdefault("lease_until", utcnow() + lease)
        result = session.execute(
            update(Submission)
            .where(
                Submission.id == sub_id,
                Submission.lease_token == token,
                Submission.status == Status.SYNCING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) != 1:
            raise LeaseLost(f"submission {sub_id}: the lease ran out and another run took over")
        for key, value in values.items():
            set_committed_value(obj, key, value)  # written above: nothing left to flush


def claim(submission_id: int, *, now: datetime) -> str | None:
    """Take the submission with a lease (conditional update); return the lease token or None."""
    lease = timedelta(seconds=int(current_app.config["SYNC_LEASE_SECONDS"]))
    due = or_(
        and_(
            Submission.status == Status.PENDING,
            or_(
                Submission.next_attempt_at.is_(None),
                Submission.next_attempt_at <= now + timedelta(seconds=1),
            ),
        ),
        and_(Submission.status == Status.SYNCING, Submission.lease_until < now),
    )
    return claim_with_lease(
        Submission,
        submission_id,
        due,
        until=now + lease,
        status=Status.SYNCING,
        attempts=Submission.attempts + 1,
        next_attempt_at=None,
    )

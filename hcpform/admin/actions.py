"""What an admin can do to submissions: retry, mark handled manually, release, delete.

Each change is one conditional UPDATE (so a worker holding the row is never overruled) and
commits before anything is enqueued: a worker must find the row as we left it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update

from .. import photos
from ..extensions import db, rowcount
from ..jobs import enqueue_sync
from ..models import (
    AbandonedRequest,
    Draft,
    HcpCall,
    OutboxMessage,
    Status,
    Submission,
    SyncAttempt,
)

# Statuses "Retry now" may move back to pending (syncing only once its lease has run out).
RETRYABLE = (Status.FAILED, Status.WAITING, Status.PENDING, Status.MANUAL)
MANUAL_FROM = (Status.FAILED, Status.WAITING, Status.PENDING, Status.QUARANTINED)
BULK_LIMIT = 1000


class ActionRefused(Exception):
    """The submission is not in a state that allows the action; the message says why."""


def _retry_values(now: datetime) -> dict[str, Any]:
    return {
        "status": Status.PENDING,
        "next_attempt_at": None,
        "first_failure_at": None,
        "lease_until": None,
        "lease_token": None,
        "enqueued_at": now,
    }


def _retryable(now: datetime) -> Any:
    return or_(
        Submission.status.in_(RETRYABLE),
        (Submission.status == Status.SYNCING) & (Submission.lease_until < now),
    )


def retry(sub: Submission, *, now: datetime) -> None:
    """Send the submission to the queue again now (commits, then enqueues).

    Raises:
        ActionRefused: when it is synced, quarantined or held by a worker.
    """
    done = db.session.execute(
        update(Submission)
        .where(Submission.id == sub.id, _retryable(now))
        .values(**_retry_values(now))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if rowcount(done) != 1:
        db.session.refresh(sub)
        raise ActionRefused(f"A submission that is {sub.status} cannot be retried.")
    enqueue_sync(sub.id)


def retry_many(ids: list[int] | None, *, now: datetime, limit: int = BULK_LIMIT) -> list[int]:
    """Retry the given submissions, or the failed ones when ids is None; return those retried.

    At most `limit` per call, so one click stays a short request; the page offers the rest.
    """
    if ids is None:
        ids = list(
            db.session.scalars(
                select(Submission.id)
                .where(Submission.status == Status.FAILED)
                .order_by(Submission.id)
                .limit(limit)
            )
        )
    where = Submission.id.in_(ids[:limit]) & _retryable(now)
    retried = list(
        db.session.scalars(
            update(Submission)
            .where(where)
            .values(**_retry_values(now))
            .returning(Submission.id)
            .execution_options(synchronize_session=False)
        )
    )
    db.session.commit()
    for sid in retried:
        enqueue_sync(sid)
    return retried


def mark_manual(sub: Submission, note: str, *, now: datetime) -> None:
    """Record that the office handled the request by hand in HCP; the sync leaves it alone.

    Raises:
        ActionRefused: when it is synced or a worker holds it.
    """
    done = db.session.execute(
        update(Submission)
        .where(Submission.id == sub.id, Submission.status.in_(MANUAL_FROM))
        .values(status=Status.MANUAL, manual_note=note, next_attempt_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(done) != 1:
        db.session.rollback()
        db.session.refresh(sub)
        raise ActionRefused(f"A submission that is {sub.status} cannot be marked as handled.")


def release(sub: Submission, *, now: datetime) -> None:
    """Let a quarantined submission go to HCP after all (commits, then enqueues).

    Raises:
        ActionRefused: when it is not quarantined.
    """
    done = db.session.execute(
        update(Submission)
        .where(Submission.id == sub.id, Submission.status == Status.QUARANTINED)
        .values(**_retry_values(now))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if rowcount(done) != 1:
        db.session.refresh(sub)
        raise ActionRefused("Only a quarantined submission can be released.")
    enqueue_sync(sub.id)


def delete_quarantined(sub: Submission) -> None:
    """Delete a quarantined submission with its draft and sync records (the caller commits).

    Raises:
        ActionRefused: when it is not quarantined.
    """
    if sub.status != Status.QUARANTINED:
        raise ActionRefused("Only a quarantined submission can be deleted.")
    draft_id = sub.draft_id
    photos.erase(submission_ids=[sub.id], draft_ids=[draft_id] if draft_id else [])
    db.session.execute(delete(HcpCall).where(HcpCall.submission_id == sub.id))
    db.session.execute(delete(SyncAttempt).where(SyncAttempt.submission_id == sub.id))
    db.session.execute(delete(OutboxMessage).where(OutboxMessage.submission_id == sub.id))
    db.session.execute(
        delete(Submission).where(Submission.id == sub.id, Submission.status == Status.QUARANTINED)
    )
    if draft_id is not None:
        db.session.execute(delete(AbandonedRequest).where(AbandonedRequest.draft_id == draft_id))
        db.session.execute(delete(Draft).where(Draft.id == draft_id))
    db.session.expunge(sub)

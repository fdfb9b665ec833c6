"""The sync queue: RQ job functions and the helpers that enqueue them.

This is the only module that enqueues. Jobs carry a submission id and nothing personal; the
worker (`flask worker`, or the embedded thread of worker.py) supplies the app context. The
Redis connection, real or embedded, is the factory's (extensions.get_redis).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any, cast

import redis
from flask import Flask, current_app
from redis.exceptions import WatchError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from rq.timeouts import JobTimeoutException
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from . import mailjobs, recurring, sync
from .connection import connection_row
from .extensions import db, get_redis, rowcount
from .models import Status, Submission
from .sync import attachments
from .timeutil import utcnow

logger = logging.getLogger(__name__)


def sync_submission(submission_id: int) -> str:
    """Sync one submission to Housecall Pro (see sync.py); enqueue the retry it scheduled."""
    try:
        outcome = sync.sync_submission(submission_id)
    except JobTimeoutException:
        enqueue_retry(submission_id)  # RQ stopped the job; sync put the row back to pending
        raise
    if outcome == "retry":
        enqueue_retry(submission_id)
    if outcome == "synced" and attachments.pending(submission_id):
        enqueue_attach(submission_id)  # the photos go on their own: they never fail the job
    try:  # the update email its job may have queued; the outbox sweep catches a miss
        mailjobs.enqueue_for_submission(submission_id)
    except SQLAlchemyError:
        logger.exception("Could not enqueue the emails of submission %s", submission_id)
        db.session.rollback()
    return outcome


def attach_photos(submission_id: int) -> str:
    """Attach a synced submission's photos to its HCP job; enqueue the retry it scheduled."""
    outcome, next_at = attachments.attach_photos(submission_id)
    if next_at is not None:
        enqueue_attach(submission_id, delay=max(0.0, (next_at - utcnow()).total_seconds()))
    return outcome


def enqueue_attach(submission_id: int, *, delay: float = 0.0) -> bool:
    """Enqueue the photos' attachment for one submission; False if Redis is down.

    A second job for the same submission is harmless: each photo is claimed before it is sent.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    queue = get_queue(app)
    options: dict[str, Any] = {
        "job_timeout": app.config["SYNC_JOB_TIMEOUT"],
        "result_ttl": 600,
        "failure_ttl": 7 * 24 * 3600,
        "description": f"attach photos of submission {submission_id}",
    }
    try:
        if delay > 0:
            queue.enqueue_in(timedelta(seconds=delay), attach_photos, submission_id, **options)
        else:
            queue.enqueue(attach_photos, submission_id, **options)
    except (redis.RedisError, OSError) as exc:
        logger.warning("Queue unreachable, photos of %s wait for the sweep: %s", submission_id, exc)
        return False
    return True


def enqueue_retry(submission_id: int) -> bool:
    """Enqueue a pending submission at its next attempt time; False when there is none."""
    try:
        db.session.rollback()
        sub = db.session.get(Submission, submission_id)
        if sub is None or sub.status != Status.PENDING or sub.next_attempt_at is None:
            return False
        due = sub.next_attempt_at
    except Exception:  # after a timeout the session may be unusable: the sweep recovers the row
        logger.exception("Could not read submission %s to enqueue its retry", submission_id)
        db.session.rollback()
        return False
    delay = max(0.0, (due - utcnow()).total_seconds())
    return enqueue_sync(submission_id, delay=delay)


def sweep() -> int:
    """Re-enqueue submissions left pending, or claimed by a worker that died; return how many.

    It first creates the follow-ups of repeating visits that fell due (recurring.py).

    A row is enqueued by at most one sweeper: each claims it with a conditional update of
    `enqueued_at` first, so two sweeps running at once don't both enqueue it. A row whose job
    still waits on the queue (a backlog) is not enqueued again: the count is new jobs only.
    """
    now = utcnow()
    try:  # recurring maintenance: due follow-ups become pending rows, enqueued just below
        recurring.create_due_follow_ups(now)
    except SQLAlchemyError:  # the sweep's own work must not wait on it
        logger.exception("Could not create the due follow-ups")
        db.session.rollback()
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
        if rowcount(claimed) == 1 and enqueue_sync_once(sid) == "enqueued":
            count += 1
    conn = connection_row()
    if conn.state != "disconnected" and not conn.paused:
        count += resume_waiting()
        for sid in attachments.due_submissions(now=now, grace=grace):
            count += enqueue_attach(sid)
    if count:
        logger.info("Sweep re-enqueued %s submissions", count)
    return count


def sweep_job() -> int:
    """Run the sweep, then schedule the next one (the worker's scheduler runs it)."""
    try:
        return sweep()
    finally:
        enqueue_sweep()


def resume_waiting() -> int:
    """Move every waiting submission back to pending and enqueue it; return how many."""
    ids = list(db.session.scalars(select(Submission.id).where(Submission.status == Status.WAITING)))
    if ids:
        db.session.execute(
            update(Submission)
            .where(Submission.id.in_(ids), Submission.status == Status.WAITING)
            .values(status=Status.PENDING, next_attempt_at=None, enqueued_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    for sid in ids:
        enqueue_sync(sid)
    return len(ids)


def get_queue(app: Flask | None = None) -> Queue:
    """Return the sync queue (one queue, so RQ uses its reliable LMOVE dequeue)."""
    app = app or current_app
    return Queue(app.config["RQ_QUEUE"], connection=get_redis(app))


def enqueue_sync(submission_id: int, *, delay: float = 0.0) -> bool:
    """Enqueue the sync of one submission, now or after `delay` seconds; False if Redis is down.

    A submission already waiting on the queue (or scheduled) is not enqueued again.
    """
    return enqueue_sync_once(submission_id, delay=delay) != "down"


_LIVE = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})
OVERDUE_SECONDS = 5  # RQ's scheduler moves due jobs every second; later than this, it is stuck


def enqueue_sync_once(submission_id: int, *, delay: float = 0.0) -> str:
    """Enqueue the sync of one submission unless a job for it is queued or scheduled already.

    Job ids come from the submission id and a counter, `sync-<id>-<n>`, and the counter's key
    points at the latest: while that job waits, another enqueue (the sweep, a resume, an admin
    retry) changes nothing. A job that started, finished or failed is not waiting, so the
    running job's own retry, or a re-enqueue after its worker died, makes job n + 1. The check
    and the enqueue are one WATCH/MULTI transaction (no Lua: the embedded fakeredis runs it).

    Returns:
        "enqueued", "already" (a job waits for it), or "down" (Redis unreachable).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    queue = get_queue(app)
    conn = get_redis(app)
    counter = f"hcpform:sync:job:{submission_id}"
    # Outlives any wait on the queue; only a later enqueue's uniqueness depends on it.
    keep = int(delay) + 7 * 24 * 3600
    try:
        with conn.pipeline() as pipe:
            try:
                pipe.watch(counter)
                # redis-py types its sync and asyncio clients alike; this one returns bytes.
                latest = int(cast("bytes | None", pipe.get(counter)) or 0)
                if latest and _waiting(queue, f"sync-{submission_id}-{latest}", delay):
                    pipe.unwatch()
                    return "already"
                job_id = f"sync-{submission_id}-{latest + 1}"
                pipe.multi()
                pipe.set(counter, latest + 1, ex=keep)
                options = {
                    "job_id": job_id,
                    "job_timeout": app.config["SYNC_JOB_TIMEOUT"],
                    "result_ttl": 600,
                    "failure_ttl": 7 * 24 * 3600,
                    "description": f"sync submission {submission_id}",
                    "pipeline": pipe,
                }
                if delay > 0:
                    when = timedelta(seconds=delay)
                    queue.enqueue_in(when, sync_submission, submission_id, **options)
                else:
                    queue.enqueue(sync_submission, submission_id, **options)
                pipe.execute()
            except WatchError:  # another enqueue of this submission won the race: it waits
                return "already"
    except (redis.RedisError, OSError) as exc:
        logger.warning(
            "Queue unreachable, submission %s waits for the sweep: %s", submission_id, exc
        )
        return "down"
    return "enqueued"


def _waiting(queue: Queue, job_id: str, delay: float) -> bool:
    """Return True when the job waits on the queue, or is scheduled no later than `delay`."""
    job = queue.fetch_job(job_id)
    if job is None or job.get_status(refresh=False) not in _LIVE:
        return False
    if job.get_status(refresh=False) != JobStatus.SCHEDULED:
        return True
    try:
        when: float = queue.scheduled_job_registry.get_scheduled_time(job).timestamp()
    except NoSuchJobError:
        return False
    # Not waiting: a retry scheduled an hour from now, when an admin's "retry now" wants it
    # sooner; or one whose time has passed that no scheduler moved (a killed worker holds
    # RQ's scheduler lock for a minute). The old job then runs later and finds nothing to do.
    return time.time() - OVERDUE_SECONDS <= when <= time.time() + delay + 1


def enqueue_sweep(app: Flask | None = None, *, delay: float | None = None) -> bool:
    """Schedule the next sweep in a time bucket, so several workers schedule it only once."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    interval = max(1, int(app.config["SWEEP_INTERVAL_SECONDS"]))
    delay = interval if delay is None else delay
    bucket = int((time.time() + delay) // interval)
    conn = get_redis(app)
    # SET NX on the bucket: the first worker to ask schedules it; the rest see it is taken.
    try:
        if not conn.set(f"hcpform:sweep:{bucket}", 1, nx=True, ex=interval * 4):
            return False
        if delay <= 0:  # now: straight onto the queue, not through RQ's scheduler, whose
            # lock a killed worker keeps for 61 s (its scheduler then moves nothing)
            get_queue(app).enqueue(sweep_job, result_ttl=0, description="sweep")
        else:
            get_queue(app).enqueue_in(
                timedelta(seconds=delay), sweep_job, result_ttl=0, description="sweep"
            )
    except (redis.RedisError, OSError) as exc:
        logger.warning("Could not schedule the sweep: %s", exc)
        return False
    return True

"""The outbox's RQ jobs: one job per message, and the sweep that picks up due or stuck ones.

Jobs carry an outbox id and nothing personal. Every send goes through `outbox.deliver`, which
claims the row with a lease, so a message enqueued twice (by the wizard and the sweep, say) is
still sent once. A failed send enqueues its own retry at the backoff time; with Redis down the
sweep (every MAIL_SWEEP_SECONDS, scheduled by periodic.py) finds it later.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from flask import current_app
from rq import Queue
from sqlalchemy import or_, select, update

from . import outbox
from .extensions import db, get_redis, rowcount
from .models import OutboxMessage
from .timeutil import utcnow

logger = logging.getLogger(__name__)
ENQUEUE_GRACE_SECONDS = 60  # a due message enqueued longer ago than this is enqueued again


def send_message(message_id: int) -> str:
    """Send one outbox message (see outbox.deliver); enqueue its retry when one is set."""
    result = outbox.deliver(message_id)
    if result == "retry":
        due = outbox.next_attempt(message_id)
        if due is not None:
            enqueue_message(message_id, delay=max(0.0, (due - utcnow()).total_seconds()))
    return result


def _queue() -> Queue:
    """Return the worker's queue (the sync's one queue)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return Queue(app.config["RQ_QUEUE"], connection=get_redis(app))


def enqueue_message(message_id: int, *, delay: float = 0.0) -> bool:
    """Enqueue the send of one message, now or after `delay` seconds; False if Redis is down."""
    options = {
        "job_timeout": int(float(current_app.config["MAIL_LEASE_SECONDS"])),
        "result_ttl": 600,
        "failure_ttl": 7 * 24 * 3600,
        "description": f"send email {message_id}",
    }
    try:
        if delay > 0:
            _queue().enqueue_in(timedelta(seconds=delay), send_message, message_id, **options)
        else:
            _queue().enqueue(send_message, message_id, **options)
    except (redis.RedisError, OSError) as exc:
        logger.warning("Queue unreachable, email %s waits for the sweep: %s", message_id, exc)
        return False
    return True


def enqueue_for_submission(submission_id: int) -> int:
    """Enqueue a submission's queued messages that no job holds yet; return how many."""
    if not outbox.mail_on():
        return 0
    ids = list(
        db.session.scalars(
            select(OutboxMessage.id).where(
                OutboxMessage.submission_id == submission_id,
                OutboxMessage.state == outbox.QUEUED,
                OutboxMessage.enqueued_at.is_(None),
            )
        )
    )
    return _enqueue_claimed(ids, OutboxMessage.enqueued_at.is_(None))


def _enqueue_claimed(ids: list[int], condition: object) -> int:
    """Mark each message enqueued (a conditional update, so one caller wins), then enqueue."""
    count = 0
    now = utcnow()
    for message_id in ids:
        claimed = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, condition)  # type: ignore[arg-type]
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if rowcount(claimed) == 1 and enqueue_message(message_id):
            count += 1
    return count


def sweep_outbox() -> int:
    """Enqueue due messages not enqueued lately, and those a dead worker left; return how many."""
    if not outbox.mail_on():
        return 0
    now = utcnow()
    stale = or_(
        OutboxMessage.enqueued_at.is_(None),
        OutboxMessage.enqueued_at <= now - timedelta(seconds=ENQUEUE_GRACE_SECONDS),
    )
    ids = [i for i in outbox.due_ids(now=now) if i]
    ids = list(db.session.scalars(select(OutboxMessage.id).where(OutboxMessage.id.in_(ids), stale)))
    count = _enqueue_claimed(ids, stale)
    if count:
        logger.info("Outbox sweep enqueued %s emails", count)
    return count

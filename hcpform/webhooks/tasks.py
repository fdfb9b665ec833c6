"""The webhooks' queue jobs: apply one stored event, and the periodic housekeeping.

Housekeeping (every WEBHOOK_HOUSEKEEPING_SECONDS, scheduled once per time bucket by whichever
worker asks first) drops events older than WEBHOOK_KEEP_DAYS, enqueues events stored while
the queue was down, and reconciles due records when webhooks are not set up.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import redis
from flask import Flask, current_app

from ..extensions import db, get_redis
from ..jobs import get_queue
from ..timeutil import utcnow
from . import apply, reconcile

logger = logging.getLogger(__name__)


def apply_webhook_event(event_id: int) -> str:
    """Apply one stored event to its submission (idempotent: a second run changes nothing)."""
    state = apply.apply_event(event_id, now=utcnow())
    db.session.commit()
    return state


def enqueue_apply(event_id: int, app: Flask | None = None) -> bool:
    """Enqueue the apply of one event; False when the queue is down (housekeeping retries)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        get_queue(app).enqueue(
            apply_webhook_event,
            event_id,
            job_id=f"webhook-{event_id}",
            result_ttl=60,
            failure_ttl=7 * 24 * 3600,
            description=f"apply webhook event {event_id}",
        )
    except (redis.RedisError, OSError) as exc:
        logger.warning("Queue unreachable, webhook event %s waits: %s", event_id, exc)
        return False
    return True


def housekeeping() -> dict[str, int]:
    """Purge old events, enqueue forgotten ones, reconcile due records; return the counts."""
    now = utcnow()
    purged = apply.purge(now=now)
    db.session.commit()
    waiting = apply.waiting(older_than=now - timedelta(seconds=30))
    for event_id in waiting:
        enqueue_apply(event_id)
    reconciled = reconcile.reconcile_due(now=now)
    counts = {"purged": purged, "requeued": len(waiting), "reconciled": reconciled}
    if any(counts.values()):
        logger.info("Webhook housekeeping: %s", counts)
    return counts


def enqueue_housekeeping(app: Flask) -> bool:
    """Enqueue housekeeping now, once per WEBHOOK_HOUSEKEEPING_SECONDS bucket across workers."""
    interval = max(1, int(app.config["WEBHOOK_HOUSEKEEPING_SECONDS"]))
    bucket = int(time.time() // interval)
    try:
        if not get_redis(app).set(
            f"hcpform:webhooks:housekeeping:{bucket}", 1, nx=True, ex=interval * 4
        ):
            return False
        get_queue(app).enqueue(housekeeping, result_ttl=0, description="webhook housekeeping")
    except (redis.RedisError, OSError) as exc:
        logger.warning("Could not schedule webhook housekeeping: %s", exc)
        return False
    return True

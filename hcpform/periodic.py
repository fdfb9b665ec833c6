"""The workers' periodic jobs beside the sweep: abandoned requests and the HCP health check.

Scheduled like the webhooks' housekeeping (webhooks/tasks.py): whichever worker asks first in
a time bucket enqueues the job (a Redis SET NX per bucket), from worker.py's maintenance pass
and the embedded loop.

- `abandoned_sweep` (every ABANDONED_SWEEP_SECONDS): marks newly abandoned drafts, erases the
  personal answers of expired drafts, and sends due abandoned requests to HCP as leads.
- `check_connection` (every HCP_HEALTH_CHECK_MINUTES): one GET /company, so the dashboard
  always knows the connection's state, and the admin's banner appears after
  HCP_HEALTH_FAILURES failed checks in a row (or one refused key).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask, current_app

from . import abandoned, mailjobs
from .connection import connection_row, key_source, test_connection
from .extensions import db, get_redis
from .jobs import get_queue
from .sync.abandoned import due_ids, send_lead
from .timeutil import utcnow

logger = logging.getLogger(__name__)


def abandoned_sweep() -> dict[str, int]:
    """Mark abandoned drafts, erase expired ones, send due leads; return the counts."""
    now = utcnow()
    counts = {
        "abandoned": abandoned.detect(now=now),
        "erased": abandoned.erase_expired(now=now),
        "leads": 0,
    }
    for row_id in due_ids(now=now, limit=int(current_app.config["ABANDONED_BATCH"])):
        if send_lead(row_id) == "sent":
            counts["leads"] += 1
    if any(counts.values()):
        logger.info("Abandoned requests: %s", counts)
    return counts


def check_connection() -> str:
    """Check the HCP connection once (GET /company); return its state."""
    conn = connection_row()
    if key_source(conn) == "none":
        return "no key"
    test_connection(scheduled=True)
    db.session.refresh(conn)
    logger.info("HCP connection check: %s", conn.state)
    return conn.state


def _enqueue_once(app: Flask, name: str, seconds: float, func: Callable[[], Any]) -> bool:
    """Enqueue `func` now, once per `seconds` bucket across every worker."""
    interval = max(1, int(seconds))
    bucket = int(time.time() // interval)
    try:
        if not get_redis(app).set(f"hcpform:{name}:{bucket}", 1, nx=True, ex=interval * 4):
            return False
        get_queue(app).enqueue(func, result_ttl=0, description=name)
    except (redis.RedisError, OSError) as exc:
        logger.warning("Could not schedule %s: %s", name, exc)
        return False
    return True


def enqueue_periodic(app: Flask) -> None:
    """Schedule the abandoned-request sweep, the connection check and the outbox sweep."""
    cfg = app.config
    _enqueue_once(app, "abandoned-sweep", float(cfg["ABANDONED_SWEEP_SECONDS"]), abandoned_sweep)
    _enqueue_once(app, "hcp-health", float(cfg["HCP_HEALTH_CHECK_MINUTES"]) * 60, check_connection)
    if cfg.get("MAIL_URL"):  # due and stuck emails (mailjobs.py)
        _enqueue_once(app, "outbox-sweep", float(cfg["MAIL_SWEEP_SECONDS"]), mailjobs.sweep_outbox)

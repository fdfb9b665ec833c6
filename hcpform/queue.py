"""The sync queue: a real Redis with REDIS_URL, else an embedded queue running the same RQ code.

This is the only module that enqueues. Jobs carry a submission id and nothing personal.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import redis
from flask import Flask, current_app
from rq import Queue, SimpleWorker
from rq.timeouts import TimerDeathPenalty

logger = logging.getLogger(__name__)

EXT_KEY = "hcpform.redis"
_fake_servers: dict[str, Any] = {}
_embedded_lock = threading.Lock()


def init_app(app: Flask) -> None:
    """Store one Redis client on the app: real when REDIS_URL is set, fakeredis otherwise."""
    url = app.config.get("REDIS_URL")
    if url:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
        )
        app.extensions[EXT_KEY] = client
        app.extensions["hcpform.embedded_queue"] = False
    else:
        import fakeredis

        # One fake server per process, shared by the web threads and the worker thread.
        server = _fake_servers.setdefault("default", fakeredis.FakeServer())
        app.extensions[EXT_KEY] = fakeredis.FakeStrictRedis(server=server)
        app.extensions["hcpform.embedded_queue"] = True


def get_redis(app: Flask | None = None) -> redis.Redis:
    """Return the app's Redis client (real or embedded)."""
    return (app or current_app).extensions[EXT_KEY]


def is_embedded(app: Flask | None = None) -> bool:
    """Return True when the queue runs in-process (no REDIS_URL)."""
    return bool((app or current_app).extensions.get("hcpform.embedded_queue"))


def get_queue(app: Flask | None = None) -> Queue:
    """Return the sync queue (one queue, so RQ uses its reliable LMOVE dequeue)."""
    app = app or current_app
    return Queue(app.config["RQ_QUEUE"], connection=get_redis(app))


def enqueue_sync(submission_id: int, *, delay: float = 0.0) -> bool:
    """Enqueue the sync of one submission, now or after `delay` seconds; False if Redis is down.

    Duplicates are harmless: the sync claims the submission with a lease before working.
    """
    from .jobs import sync_submission

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    queue = get_queue(app)
    options = {
        "job_timeout": app.config["SYNC_JOB_TIMEOUT"],
        "result_ttl": 600,
        "failure_ttl": 7 * 24 * 3600,
        "description": f"sync submission {submission_id}",
    }
    try:
        if delay > 0:
            queue.enqueue_in(timedelta(seconds=delay), sync_submission, submission_id, **options)
        else:
            queue.enqueue(sync_submission, submission_id, **options)
    except (redis.RedisError, OSError) as exc:
        logger.warning(
            "Queue unreachable, submission %s waits for the sweep: %s", submission_id, exc
        )
        return False
    if is_embedded(app):
        ensure_embedded_worker(app)
    return True


def enqueue_sweep(app: Flask | None = None, *, delay: float | None = None) -> bool:
    """Schedule the next sweep in a time bucket, so several workers schedule it only once."""
    from .jobs import sweep_job

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


class _ThreadWorker(SimpleWorker):
    """An RQ SimpleWorker that can live in a thread (no signal handlers, timer-based timeouts)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


def ensure_embedded_worker(app: Flask) -> None:
    """Start the in-process worker thread once per process (embedded queue only)."""
    with _embedded_lock:
        if app.extensions.get("hcpform.embedded_worker"):
            return
        thread = threading.Thread(
            target=_embedded_loop, args=(app,), name="hcpform-embedded-worker", daemon=True
        )
        app.extensions["hcpform.embedded_worker"] = thread
        thread.start()


def _embedded_loop(app: Flask) -> None:
    """Drain the queue, move due scheduled jobs, and sweep now and then, forever."""
    from rq.registry import ScheduledJobRegistry

    from .jobs import sweep

    queue = get_queue(app)
    worker = _ThreadWorker([queue], connection=get_redis(app))
    last_sweep = 0.0
    while True:
        try:
            with app.app_context():
                registry = ScheduledJobRegistry(queue=queue)
                for job_id in registry.get_jobs_to_schedule(int(time.time())):
                    registry.remove(job_id)
                    job = queue.fetch_job(job_id)
                    if job is not None:  # its hash may have expired meanwhile
                        queue.enqueue_job(job)
                if time.time() - last_sweep >= app.config["SWEEP_INTERVAL_SECONDS"]:
                    last_sweep = time.time()
                    sweep()
                worker.work(burst=True, logging_level="WARNING")
        except Exception:  # a thread that dies silently would stop every sync: log and go on
            logger.exception("Embedded worker loop error")
        time.sleep(0.5)

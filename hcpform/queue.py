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
from redis.exceptions import WatchError
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
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
        try:
            import fakeredis
        except ImportError as exc:  # production installs leave out the `embedded` extra
            raise RuntimeError(
                "REDIS_URL is not set and fakeredis is not installed: set REDIS_URL to a Redis "
                "server, or install the embedded queue with pip install 'hcpform[embedded]' "
                "(scripts/run does)."
            ) from exc

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
    from .jobs import sync_submission

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
                latest = int(pipe.get(counter) or 0)
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
    if is_embedded(app):
        ensure_embedded_worker(app)
    return "enqueued"


def _waiting(queue: Queue, job_id: str, delay: float) -> bool:
    """Return True when the job waits on the queue, or is scheduled no later than `delay`."""
    job = queue.fetch_job(job_id)
    if job is None or job.get_status(refresh=False) not in _LIVE:
        return False
    if job.get_status(refresh=False) != JobStatus.SCHEDULED:
        return True
    try:
        when = queue.scheduled_job_registry.get_scheduled_time(job).timestamp()
    except NoSuchJobError:
        return False
    # Not waiting: a retry scheduled an hour from now, when an admin's "retry now" wants it
    # sooner; or one whose time has passed that no scheduler moved (a killed worker holds
    # RQ's scheduler lock for a minute). The old job then runs later and finds nothing to do.
    return time.time() - OVERDUE_SECONDS <= when <= time.time() + delay + 1


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

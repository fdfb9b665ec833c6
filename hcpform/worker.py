"""The workers: the `flask worker` command (an RQ worker with its scheduler), and the embedded
worker thread that runs the same jobs in-process when no REDIS_URL is set."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import SimpleWorker, Worker
from rq.registry import ScheduledJobRegistry
from rq.timeouts import TimerDeathPenalty

from .extensions import db, get_redis, is_embedded
from .jobs import enqueue_sweep, get_queue, sweep
from .periodic import enqueue_periodic
from .webhooks.tasks import enqueue_housekeeping

logger = logging.getLogger(__name__)
_embedded_lock = threading.Lock()


def init_app(app: Flask) -> None:
    """With the embedded queue, start its worker thread on the first request (once)."""
    if is_embedded(app):
        app.before_request(lambda: ensure_embedded_worker(app))


class SyncWorker(Worker):
    """An RQ worker that also keeps the periodic sweep scheduled.

    The sweep re-schedules itself after each run, but a Redis restart (it keeps no data) would
    break that chain; the worker's maintenance pass puts it back, once per time bucket.
    """

    def __init__(self, *args: Any, app: Flask, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = app

    def run_maintenance_tasks(self) -> None:
        """Run RQ's maintenance, then schedule the sweep (one worker per time bucket does)."""
        # RQ leaves this hook unannotated; untyped_calls_exclude does not reach a super() call.
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        enqueue_sweep(self.app, delay=0)
        enqueue_housekeeping(self.app)  # webhook events and the reconcile (webhooks/tasks.py)
        enqueue_periodic(self.app)  # abandoned requests, the HCP health check (periodic.py)

    @property
    def dequeue_timeout(self) -> int:
        """Return how long an idle worker blocks: one maintenance interval, not RQ's 405 s."""
        # RQ blocks an idle worker for worker_ttl - 15 s (405 s) between maintenance passes:
        # after a crash, the sweep and the takeover of a dead worker's scheduler waited that
        # long (tests/test_outages.py measures the recovery).
        return max(1, int(self.maintenance_interval))


@click.command("worker")
@click.option("--burst", is_flag=True, help="Drain the queue, then exit.")
@click.option("--name", default=None, help="Worker name (default: RQ's own).")
@with_appcontext
def worker_command(burst: bool, name: str | None) -> None:
    """Run an RQ worker for the HCP sync queue (with its scheduler)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if is_embedded(app):
        raise click.ClickException(
            "REDIS_URL is not set: the embedded queue runs inside `flask --app hcpform dev`. "
            "Set REDIS_URL to run separate workers."
        )
    # Touch nothing in the database before forking job processes: no inherited connections.
    db.engine.dispose()
    if not burst:
        enqueue_sweep(app, delay=0)
        enqueue_periodic(app)
    worker = SyncWorker(
        [get_queue(app)],
        app=app,
        connection=get_redis(app),
        name=name,
        log_job_description=False,  # descriptions are harmless, but keep job logs minimal
        maintenance_interval=max(2, int(app.config["SWEEP_INTERVAL_SECONDS"])),
    )
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


class _ThreadWorker(SimpleWorker):
    """An RQ SimpleWorker that can live in a thread (no signal handlers, timer-based timeouts)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


def ensure_embedded_worker(app: Flask) -> None:
    """Start the in-process worker thread once per process (embedded queue only)."""
    if app.extensions.get("hcpform.embedded_worker"):  # every request asks: no lock then
        return
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
                enqueue_housekeeping(app)  # once per bucket; a cheap SET NX otherwise
                enqueue_periodic(app)
                worker.work(burst=True, logging_level="WARNING")
        except Exception:  # a thread that dies silently would stop every sync: log and go on
            logger.exception("Embedded worker loop error")
        time.sleep(0.5)

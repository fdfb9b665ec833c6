"""The `flask worker` command: an RQ worker (with its scheduler) inside the app context."""

from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import with_appcontext
from rq import Worker

from .extensions import db
from .queue import enqueue_sweep, get_queue, get_redis, is_embedded

logger = logging.getLogger(__name__)


class SyncWorker(Worker):
    """An RQ worker that also keeps the periodic sweep scheduled.

    The sweep re-schedules itself after each run, but a Redis restart (it keeps no data) would
    break that chain; the worker's maintenance pass puts it back, once per time bucket.
    """

    def __init__(self, *args, app, **kwargs) -> None:  # noqa: ANN001,ANN002,ANN003
        super().__init__(*args, **kwargs)
        self.app = app

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        enqueue_sweep(self.app, delay=0)

    @property
    def dequeue_timeout(self) -> int:
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
    worker = SyncWorker(
        [get_queue(app)],
        app=app,
        connection=get_redis(app),
        name=name,
        log_job_description=False,  # descriptions are harmless, but keep job logs minimal
        maintenance_interval=max(2, int(app.config["SWEEP_INTERVAL_SECONDS"])),
    )
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")

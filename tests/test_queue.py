"""The queue on real parts: Redis, `flask worker` subprocesses, the sweep, outages, init-db."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Status, Submission
from hcpform.timeutil import utcnow
from tests.conftest import free_port, kill_tree, worker_env
from tests.helpers import Wizard, reference_in, wait_for


def status_of(app: Any, reference: str) -> str:
    with app.app_context():
        return db.session.scalar(select(Submission.status).where(Submission.reference == reference))


def jobs_in(sandbox: Any) -> int:
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["counts"]["jobs"]


@pytest.mark.both_dbs
def test_submission_is_enqueued_on_redis_and_synced_by_a_real_worker(
    client, app, sandbox, start_worker
):
    from hcpform.jobs import get_queue

    wizard = Wizard(client)
    wizard.complete()
    ref = reference_in(wizard.page)
    with app.app_context():
        queue = get_queue()
        assert len(queue) == 1
        job = queue.jobs[0]
        sub = db.session.scalar(select(Submission).where(Submission.reference == ref))
        assert job.args == (sub.id,) and not job.kwargs  # the id alone, nothing personal
        assert sub.enqueued_at is not None
    proc = start_worker("--burst")
    assert proc.wait(timeout=60) == 0
    assert status_of(app, ref) == Status.SYNCED
    assert jobs_in(sandbox) == 1


def test_redis_unreachable_at_submit_still_confirms_and_the_sweep_recovers(
    settings, tmp_path, sandbox, start_worker, app
):
    from hcpform import create_app

    down = dict(settings, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    broken = create_app({"TESTING": True, **down}, instance_path=str(tmp_path / "instance2"))
    wizard = Wizard(broken.test_client())
    response = wizard.complete()
    assert response.status_code == 200 and "Request sent" in wizard.page
    ref = reference_in(wizard.page)
    with app.app_context():
        sub = db.session.scalar(select(Submission).where(Submission.reference == ref))
        assert sub.status == Status.PENDING and sub.enqueued_at is None
    # Redis is back (the normal app): the sweep enqueues it once, a worker syncs it.
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sweep"])
    assert "Re-enqueued 1 submissions" in result.output
    assert "Re-enqueued 0 submissions" in runner.invoke(args=["sweep"]).output
    assert start_worker("--burst").wait(timeout=60) == 0
    assert status_of(app, ref) == Status.SYNCED
    assert jobs_in(sandbox) == 1


def test_worker_killed_between_customer_and_job_then_sweep_makes_one_job(
    client, app, sandbox, settings, start_worker
):
    # The shortest lease check_config allows: a job timeout of 10 x (0.25 + 0.25 + 1.5) s.
    short = {
        "HCP_READ_TIMEOUT": 1.5,
        "HCP_CONNECT_TIMEOUT": 0.25,
        "SYNC_RATE_LIMIT_WAIT_SECONDS": 0.25,
        "SYNC_JOB_TIMEOUT": 20,
        "SYNC_LEASE_SECONDS": 23,
    }
    settings.update(short)  # fmt: skip
    app.config.update(short)
    # POST /jobs commits, then hangs: the worker is killed while waiting for the answer.
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"rules": [{"method": "POST", "path": "/jobs", "kind": "timeout", "seconds": 60}]},
        timeout=5,
    ).raise_for_status()
    wizard = Wizard(client)
    wizard.complete()
    ref = reference_in(wizard.page)
    worker = start_worker()

    def job_post_in_flight() -> bool:
        log = requests.get(f"{sandbox.url}/_sandbox/requests?method=POST&path=/jobs", timeout=5)
        return log.json()["count"] >= 1 or jobs_in(sandbox) >= 1

    wait_for(job_post_in_flight, timeout=60, interval=0.05)
    assert kill_tree(worker) >= 2  # the worker and its work-horse, before the read times out
    worker.wait(timeout=10)
    with app.app_context():
        sub = db.session.scalar(select(Submission).where(Submission.reference == ref))
        assert sub.hcp_customer_id and sub.status == Status.SYNCING and not sub.hcp_job_id
        lease_until = sub.lease_until
    wait_for(lambda: utcnow() > lease_until, timeout=30)  # the dead worker's lease runs out
    runner = app.test_cli_runner()
    assert "Re-enqueued 1 submissions" in runner.invoke(args=["sweep"]).output
    assert start_worker("--burst").wait(timeout=60) == 0
    assert status_of(app, ref) == Status.SYNCED
    assert jobs_in(sandbox) == 1
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["counts"]
    assert (state["customers"], state["addresses"]) == (1, 1)


def test_embedded_queue_runs_the_same_job_without_redis(settings, tmp_path, sandbox):
    from hcpform import create_app
    from hcpform.database import ensure_default_form

    embedded = dict(settings, REDIS_URL=None, DATABASE_URL=f"sqlite:///{tmp_path / 'e.db'}")
    app = create_app({"TESTING": True, **embedded}, instance_path=str(tmp_path / "inst"))
    with app.app_context():
        db.create_all()
        ensure_default_form()
        db.session.commit()
    wizard = Wizard(app.test_client())
    wizard.complete()
    ref = reference_in(wizard.page)
    wait_for(lambda: status_of(app, ref) == Status.SYNCED, timeout=30)
    assert jobs_in(sandbox) == 1


def run_flask(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "hcpform", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.both_dbs
def test_init_db_twice_is_harmless_and_matches_the_models(settings, tmp_path, database_url):
    env = worker_env(settings, tmp_path)
    first = run_flask(["init-db"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Created form 'service-request'" in first.stdout
    second = run_flask(["init-db"], env, tmp_path)
    assert second.returncode == 0 and "Created form" not in second.stdout
    check = run_flask(["db", "check"], env, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr  # migrations == models


def test_healthz_reports_each_part(client):
    body = client.get("/healthz").get_json()
    assert body["ok"] is True and body["database"]["ok"] is True
    assert body["queue"]["ok"] is True and body["queue"]["embedded"] is False
    assert body["hcp"]["key"] == "sandbox"
    assert body["sync"] == {
        "pending": 0, "syncing": 0, "waiting": 0, "failed": 0, "oldest_unsynced_seconds": 0,
    }  # fmt: skip


def test_healthz_is_503_when_the_database_is_unreachable(settings, tmp_path):
    from hcpform import create_app

    gone = dict(settings, DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    app = create_app({"TESTING": True, **gone}, instance_path=str(tmp_path / "i"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"]["ok"] is False
    page = app.test_client().get("/f/service-request/")
    assert page.status_code == 503 and "unavailable" in page.get_data(as_text=True)


def test_a_running_worker_sweeps_by_itself(app, sandbox, start_worker):
    from tests.factories import make_submission

    with app.app_context():
        sub = make_submission()  # saved, never enqueued (as if the web process died right after)
        db.session.commit()
        ref = sub.reference
    start_worker()
    wait_for(lambda: status_of(app, ref) == Status.SYNCED, timeout=45)
    assert jobs_in(sandbox) == 1


def test_healthz_shows_the_backlog_to_alert_on(client, app):
    from datetime import timedelta

    from hcpform.timeutil import utcnow
    from tests.factories import make_submission

    with app.app_context():
        make_submission(created_at=utcnow() - timedelta(minutes=5))
        make_submission(status=Status.FAILED)
        db.session.commit()
    sync = client.get("/healthz").get_json()["sync"]
    assert sync["pending"] == 1 and sync["failed"] == 1
    assert 290 <= sync["oldest_unsynced_seconds"] <= 400


def test_a_submission_waiting_on_the_queue_is_not_enqueued_again(app):
    from datetime import timedelta

    from hcpform.jobs import enqueue_sync, enqueue_sync_once, get_queue, sweep
    from tests.factories import make_submission

    with app.app_context():
        sub = make_submission()
        db.session.commit()
        assert enqueue_sync(sub.id) and enqueue_sync(sub.id)  # the submit, then a resume
        assert enqueue_sync_once(sub.id, delay=30) == "already"
        # A backlog: the row waits on the queue past the sweep's grace. The sweep sees it
        # "stuck" but it is only queued, so no second job is made.
        sub.enqueued_at = utcnow() - timedelta(minutes=5)
        db.session.commit()
        assert sweep() == 0
        assert get_queue().job_ids == [f"sync-{sub.id}-1"]


def test_a_retry_the_running_job_schedules_for_itself_runs(app, sandbox, start_worker):
    from tests.factories import make_submission

    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"rules": [{"method": "POST", "path": "/jobs", "kind": "503"}]},
        timeout=5,
    ).raise_for_status()
    with app.app_context():
        sub = make_submission()
        db.session.commit()
        ref = sub.reference
        from hcpform.jobs import enqueue_sync

        assert enqueue_sync(sub.id)
    start_worker()
    wait_for(lambda: status_of(app, ref) == Status.SYNCED, timeout=60)
    with app.app_context():
        from hcpform.extensions import get_redis
        from hcpform.models import SyncAttempt

        outcomes = list(db.session.scalars(select(SyncAttempt.outcome).order_by(SyncAttempt.id)))
        assert outcomes == ["retry", "synced"]
        # The first job, while it ran, made the second: the same submission, the next number.
        assert int(get_redis().get(f"hcpform:sync:job:{sub.id}")) == 2
    assert jobs_in(sandbox) == 1


def test_sqlite_runs_in_wal_and_syncs_at_checkpoints(app, settings):
    """A file database gets WAL and synchronous=NORMAL on every connection (docs/operations.md)."""
    from sqlalchemy import text

    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        pytest.fail(f"the app fixture should use a SQLite file here: {settings}")
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL

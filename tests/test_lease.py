"""Exactly-once without timing: the lease guards every write, timeouts and unreadable keys."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import timedelta
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty
from sqlalchemy import func, select

from hcpform.extensions import db
from hcpform.models import Status, Submission, SyncAttempt
from hcpform.timeutil import utcnow
from tests.conftest import process_tree
from tests.factories import make_submission
from tests.helpers import Wizard, wait_for

# check_config's shortest lease for these timeouts: 10 calls x (0.2 + 0.2 + 1.0) s = 14 s.
LEASE = 16


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Short timeouts, so that the shortest lease check_config allows is short too."""
    return {
        **settings,
        "HCP_READ_TIMEOUT": 1.0,
        "HCP_CONNECT_TIMEOUT": 0.2,
        "SYNC_RATE_LIMIT_WAIT_SECONDS": 0.2,
        "SYNC_JOB_TIMEOUT": 14,
        "SYNC_LEASE_SECONDS": LEASE,
    }


def sandbox_counts(sandbox: Any) -> dict[str, int]:
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["counts"]


def rule(sandbox: Any, **fault: Any) -> None:
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"rules": [fault]}, timeout=5
    ).raise_for_status()


def signal_tree(proc: subprocess.Popen, sig: signal.Signals) -> int:
    """Send `sig` to a `flask worker`, its work-horse and its scheduler; return how many."""
    pids = process_tree(proc.pid)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return len(pids)


def lease_expired(app: Any, sub_id: int) -> bool:
    with app.app_context():
        sub = db.session.get(Submission, sub_id)
        expired = sub.lease_until is not None and sub.lease_until < utcnow() - timedelta(seconds=1)
        db.session.remove()
        return expired


def test_a_frozen_run_that_wakes_after_another_finished_writes_nothing(app, sandbox, start_worker):
    # The worker's first customer search is answered late, and the worker is frozen meanwhile:
    # as a long GC pause, a stopped VM or a swapped-out process would.
    rule(sandbox, method="GET", path="/customers", kind="timeout", seconds=0.6, times=1)
    with app.app_context():
        sub_id = make_submission().id
        db.session.commit()
    worker = start_worker()  # the worker's sweep enqueues the new submission

    def search_in_flight() -> bool:
        log = requests.get(f"{sandbox.url}/_sandbox/requests?method=GET&path=/customers", timeout=5)
        return log.json()["count"] >= 1

    wait_for(search_in_flight, timeout=60, interval=0.05)
    assert signal_tree(worker, signal.SIGSTOP) >= 2  # the worker and its work-horse
    try:
        wait_for(lambda: lease_expired(app, sub_id), timeout=LEASE + 10)
        # A second run takes the expired lease over and finishes the submission.
        from hcpform.jobs import sync_submission

        with app.app_context():
            assert sync_submission(sub_id) == "synced"
            synced = db.session.get(Submission, sub_id)
            synced_at, job_id = synced.synced_at, synced.hcp_job_id
            db.session.remove()
    finally:
        signal_tree(worker, signal.SIGCONT)

    def frozen_run_ended() -> bool:
        with app.app_context():
            outcomes = list(db.session.scalars(select(SyncAttempt.outcome)))
            db.session.remove()
        return "running" not in outcomes

    wait_for(frozen_run_ended, timeout=30)
    with app.app_context():
        attempts = dict(db.session.execute(select(SyncAttempt.number, SyncAttempt.outcome)).all())
        sub = db.session.get(Submission, sub_id)
        assert attempts == {1: "lease lost", 2: "synced"}
        # No status overwrite: the second run's result stands as it wrote it.
        assert (sub.status, sub.synced_at, sub.hcp_job_id) == (Status.SYNCED, synced_at, job_id)
        assert sub.lease_token is None and sub.last_error == ""
    # No double create: the woken run found no customer, but it created none.
    counts = sandbox_counts(sandbox)
    assert (counts["customers"], counts["addresses"], counts["jobs"]) == (1, 1, 1)


def test_every_write_of_a_run_needs_its_lease(app_ctx, sandbox):
    from hcpform.sync import LeaseLost, _current_run, claim

    sub = make_submission()
    db.session.commit()
    token = claim(sub.id, now=utcnow())
    run = _current_run.set((sub.id, token))
    try:
        sub.creates_sent = "customer"
        db.session.commit()  # ours: written, and the lease extended
        assert db.session.get(Submission, sub.id).creates_sent == "customer"
        db.session.execute(
            Submission.__table__.update()
            .where(Submission.id == sub.id)
            .values(lease_token="someone-else")
        )
        db.session.commit()
        sub.hcp_customer_id = "cus_x"
        with pytest.raises(LeaseLost):
            db.session.commit()
        db.session.rollback()
    finally:
        _current_run.reset(run)
    assert db.session.get(Submission, sub.id).hcp_customer_id is None


def test_a_job_timeout_is_not_swallowed_and_gives_the_submission_back(app_ctx, sandbox):
    from hcpform.jobs import get_queue, sync_submission

    app_ctx.config["HCP_READ_TIMEOUT"] = 10  # the call outlasts the job's time, not its own
    rule(sandbox, method="GET", path="/customers", kind="timeout", seconds=4, times=1)
    sub = make_submission()
    db.session.commit()
    with pytest.raises(JobTimeoutException):
        with UnixSignalDeathPenalty(1, JobTimeoutException):  # what RQ's work-horse uses
            sync_submission(sub.id)
    db.session.rollback()
    sub = db.session.get(Submission, sub.id)
    assert sub.status == Status.PENDING and sub.lease_token is None
    assert sub.next_attempt_at is not None and "SYNC_JOB_TIMEOUT" in sub.last_error
    attempt = db.session.scalar(select(SyncAttempt).where(SyncAttempt.submission_id == sub.id))
    assert attempt.outcome == "timeout" and attempt.finished_at is not None
    scheduled = get_queue().scheduled_job_registry.get_job_ids()
    assert scheduled == [f"sync-{sub.id}-1"]  # the retry


def test_park_takes_an_expired_syncing_row_but_not_a_held_one(app_ctx):
    from hcpform.connection import connection_row
    from hcpform.sync import park

    conn = connection_row()
    conn.paused = True
    expired = make_submission(status=Status.SYNCING, lease_until=utcnow() - timedelta(seconds=5))
    held = make_submission(
        status=Status.SYNCING, lease_until=utcnow() + timedelta(seconds=60), lease_token="t"
    )
    db.session.commit()
    assert park(expired, conn) == "waiting"
    assert park(held, conn) == "busy"
    db.session.expire_all()
    assert db.session.get(Submission, expired.id).status == Status.WAITING
    assert "paused" in db.session.get(Submission, expired.id).last_error
    assert db.session.get(Submission, held.id).status == Status.SYNCING


REASON = "the stored HCP key cannot be decrypted with the current encryption keys"


def test_an_undecryptable_key_waits_with_its_reason_and_resumes_when_saved_again(app, sandbox):
    from hcpform.admin import settings as admin_settings
    from hcpform.connection import connection_row
    from hcpform.jobs import sync_submission
    from tests.test_security import admin_login

    with app.app_context():
        admin_settings.save_api_key(connection_row(), "sandbox-key")
        sub_id = make_submission().id
        db.session.commit()
    app.config["ENCRYPTION_KEY"] = Fernet.generate_key().decode()  # the old key is gone
    with app.app_context():
        assert sync_submission(sub_id) == "waiting"
        sub = db.session.get(Submission, sub_id)
        assert sub.status == Status.WAITING and REASON in sub.last_error
        assert connection_row().state == "disconnected"
        db.session.remove()
    admin = app.test_client()
    admin_login(app, admin)
    assert REASON in admin.get("/admin/").get_data(as_text=True)
    assert REASON in admin.get(f"/admin/submissions/{sub_id}").get_data(as_text=True)
    assert admin.get("/healthz").get_json()["hcp"]["message"] == REASON
    assert sandbox_counts(sandbox)["customers"] == 0
    with app.app_context():  # an admin enters the key again: the waiting submission goes on
        admin_settings.save_api_key(connection_row(), "sandbox-key")
        db.session.commit()
        assert admin_settings.check_connection().resumed == 1
        assert sync_submission(sub_id) == "synced"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"SYNC_JOB_TIMEOUT": 13}, "SYNC_JOB_TIMEOUT (13 s) is shorter than one sync attempt"),
        ({"HCP_READ_TIMEOUT": 30}, "10 HCP calls x 30.4 s"),
        ({"SYNC_LEASE_SECONDS": 15}, "SYNC_LEASE_SECONDS (15 s) must be longer than"),
        ({"SYNC_LEASE_SECONDS": 15.4}, "make it more than 15.4 s"),
    ],
)
def test_check_config_refuses_a_lease_the_job_can_outlive(app, changes, words):
    import re

    from hcpform.config import check_config

    check_config(app)  # the test's own settings (a worker process checks them at start)
    app.config.update(changes)
    with pytest.raises(RuntimeError, match=re.escape(words)):
        check_config(app)


def test_the_defaults_pass_check_config(tmp_path):
    from flask import Flask

    from hcpform.config import DefaultConfig, check_config

    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.from_object(DefaultConfig)
    check_config(app)  # raises when the defaults break their own rule


def test_a_rollback_after_submit_leaves_nothing_on_sqlite(app, client):
    from hcpform.models import Draft, Form
    from hcpform.submissions import submit

    wizard = Wizard(client)
    wizard.complete(submit=False)
    with app.app_context():
        assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        form = db.session.get(Form, draft.form_id)
        db.session.commit()  # nothing pending: the next statement starts afresh
        submit(draft, form, now=utcnow())
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 0
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        assert draft.submitted_at is None

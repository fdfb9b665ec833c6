"""Without webhooks, the reconcile reads each open job from the sandbox over HTTP and fills the
same fields (source "reconcile"): at most every 30 minutes per record, never again 60 days
after completion, and not at all once webhooks are working."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import update

from hcpform.connection import connection_row
from hcpform.extensions import db
from hcpform.models import Submission
from hcpform.timeutil import utcnow
from hcpform.webhooks import secret, tasks
from hcpform_sandbox.contract import contract
from tests.admin_helpers import text as page_text
from tests.webhook_helpers import API, SECRET, sandbox_job, submission, synced_submission

pytest_plugins = ["tests.admin_fixtures"]


def calls_to(sandbox: Any, job_id: str) -> list[str]:
    """Return the sandbox's logged GETs about one job, e.g. ['/jobs/x', '/jobs/x/invoices']."""
    log = requests.get(f"{sandbox.url}/_sandbox/requests?method=GET", timeout=5).json()
    return [r["path"] for r in log["requests"] if job_id in r["path"]]


def complete_and_pay(sandbox: Any, job_id: str, cents: int) -> None:
    control = f"{sandbox.url}/_sandbox"
    requests.post(f"{control}/jobs/{job_id}/complete", timeout=5).raise_for_status()
    invoice = requests.post(f"{control}/jobs/{job_id}/invoices", json={"amount": cents}, timeout=5)
    invoice.raise_for_status()
    paid = requests.post(f"{control}/invoices/{invoice.json()['id']}/pay", timeout=5)
    paid.raise_for_status()


def run_housekeeping(app: Any) -> dict[str, int]:
    with app.app_context():
        return tasks.housekeeping()


def age(app: Any, sub_id: int, **values: Any) -> None:
    with app.app_context():
        db.session.execute(update(Submission).where(Submission.id == sub_id).values(**values))
        db.session.commit()


@pytest.mark.both_dbs
def test_reconcile_fills_the_fields_when_there_are_no_webhooks(app, admin_client, sandbox):
    job_id = sandbox_job(sandbox)
    sub_id = synced_submission(app, job_id, synced_minutes_ago=31)
    fresh = synced_submission(app, sandbox_job(sandbox), synced_minutes_ago=5)
    complete_and_pay(sandbox, job_id, 18000)
    assert run_housekeeping(app)["reconciled"] == 1  # the fresh one is not due yet
    assert calls_to(sandbox, job_id) == [f"/jobs/{job_id}", f"/jobs/{job_id}/invoices"]
    sub = submission(app, sub_id)
    assert (sub.hcp_status, sub.hcp_status_source) == ("completed", "reconcile")
    assert (sub.invoiced_cents, sub.paid_cents) == (18000, 18000)
    assert sub.hcp_money_source == "reconcile" and sub.hcp_paid_at is not None
    assert submission(app, fresh).hcp_reconciled_at is None
    page = page_text(admin_client.get(f"/admin/submissions/{sub_id}"))
    assert "read from Housecall Pro" in page and "$180.00" in page
    path = f"/jobs/{job_id}/invoices"  # the sandbox answers as the definition says
    answer = requests.get(f"{sandbox.url}{path}", headers=API, timeout=5)
    assert contract().check_response("GET", path, 200, answer.json()) == []
    assert answer.json()["invoices"][0]["status"] == "paid"


def test_reconcile_asks_at_most_every_30_minutes_and_stops_60_days_after_completion(app, sandbox):
    job_id = sandbox_job(sandbox)
    sub_id = synced_submission(app, job_id, synced_minutes_ago=31)
    run_housekeeping(app)
    assert len(calls_to(sandbox, job_id)) == 2
    run_housekeeping(app)  # straight away: not due
    age(app, sub_id, hcp_reconciled_at=utcnow() - timedelta(minutes=29))
    run_housekeeping(app)
    assert len(calls_to(sandbox, job_id)) == 2
    age(app, sub_id, hcp_reconciled_at=utcnow() - timedelta(minutes=31))
    run_housekeeping(app)
    assert len(calls_to(sandbox, job_id)) == 4
    requests.post(f"{sandbox.url}/_sandbox/jobs/{job_id}/complete", timeout=5)
    age(app, sub_id, hcp_reconciled_at=utcnow() - timedelta(minutes=31))
    run_housekeeping(app)
    assert submission(app, sub_id).hcp_status == "completed"
    age(  # completed 59 days ago: still asked about (payments come late)
        app,
        sub_id,
        hcp_reconciled_at=utcnow() - timedelta(minutes=31),
        hcp_completed_at=utcnow() - timedelta(days=59),
    )
    run_housekeeping(app)
    assert len(calls_to(sandbox, job_id)) == 8
    age(  # 61 days: no more
        app,
        sub_id,
        hcp_reconciled_at=utcnow() - timedelta(minutes=31),
        hcp_completed_at=utcnow() - timedelta(days=61),
    )
    run_housekeeping(app)
    assert len(calls_to(sandbox, job_id)) == 8


def test_a_canceled_record_is_not_asked_about_again(app, sandbox):
    job_id = sandbox_job(sandbox)
    sub_id = synced_submission(app, job_id, synced_minutes_ago=31)
    requests.post(f"{sandbox.url}/_sandbox/jobs/{job_id}/cancel", timeout=5)
    run_housekeeping(app)
    assert submission(app, sub_id).hcp_status == "canceled"
    age(app, sub_id, hcp_reconciled_at=utcnow() - timedelta(hours=5))
    run_housekeeping(app)
    assert len(calls_to(sandbox, job_id)) == 2


def test_no_reconcile_once_webhooks_are_working(app, sandbox):
    job_id = sandbox_job(sandbox)
    synced_submission(app, job_id, synced_minutes_ago=31)
    with app.app_context():
        conn = connection_row()
        secret.save(conn, SECRET, now=utcnow())
        conn.webhook_last_verified_at = utcnow()
        db.session.commit()
    assert run_housekeeping(app)["reconciled"] == 0
    assert calls_to(sandbox, job_id) == []

"""The sync of one submission to HCP: a claim with a lease, then small idempotent steps.

customer → address → job, estimate or lead (with its pro, assignment.py) → dispatch. Each step
stores the HCP id it obtained and commits at once, so a run that dies anywhere resumes where it
stopped. A create whose answer was lost (timeout, dropped connection, worker killed) is looked
for before it is sent again, so nothing is made twice.

lease.py holds the claim and its guard, steps.py the customer and address steps, records.py
the job, estimate or lead; this module runs one attempt in that order and records how it ended
(synced, retry, failed, waiting).
"""

from __future__ import annotations

import logging
import os
import random
import socket
from contextvars import Token
from datetime import timedelta

from flask import current_app
from rq.timeouts import JobTimeoutException
from sqlalchemy import and_, or_, select, update

from .. import formdefs
from ..connection import (
    KeyUnreadable,
    connection_row,
    key_source,
    make_client,
    mark_disconnected,
)
from ..extensions import db, rowcount
from ..hcp.client import HcpError, HousecallProClient
from ..models import HcpConnection, Status, Submission, SyncAttempt
from ..timeutil import utcnow
from .abandoned import link_lead
from .lease import LeaseLost, _current_run, claim
from .records import (
    created_message,
    ensure_dispatch,
    ensure_record,
    record_job_type,
    resolve_lead_source,
)
from .steps import SyncFailed, ensure_address, ensure_customer, person_lock

logger = logging.getLogger(__name__)


def run_steps(client: HousecallProClient, sub: Submission, conn: HcpConnection) -> None:
    """Run the steps in order; each one does nothing when its id is already stored."""
    missing = formdefs.missing_required_keys(sub.form.definition)
    if missing:
        raise SyncFailed(formdefs.missing_mappings_message(missing))
    link_lead(sub)  # the lead its draft became while abandoned, if any (sync/abandoned.py)
    kind = formdefs.record_kind(sub.form.service_types, sub.service_type)
    job_type_id = record_job_type(client, sub, conn, kind)
    lead_source = resolve_lead_source(client, sub, conn)
    with person_lock(sub):
        found = ensure_customer(client, sub, conn, lead_source)
        ensure_address(client, sub, found)
    ensure_record(client, sub, conn, kind, job_type_id, lead_source)
    ensure_dispatch(client, sub)


def sync_submission(submission_id: int) -> str:
    """Sync one submission to HCP; return what happened (synced, retry, failed, waiting, …)."""
    now = utcnow()
    sub = db.session.get(Submission, submission_id)
    if sub is None:
        return "missing"
    if sub.status not in (Status.PENDING, Status.SYNCING):
        return f"skipped ({sub.status})"
    conn = connection_row()
    if (
        conn.paused
        or conn.state == "disconnected"
        or key_source(conn) == "none"
        or not sub.form.sync_enabled
    ):
        return park(sub, conn)
    token = claim(submission_id, now=now)
    if token is None:
        return "busy"
    run: Token[tuple[int, str] | None] | None = _current_run.set((submission_id, token))
    attempt_id = None
    try:
        db.session.refresh(sub)
        attempt = SyncAttempt(
            submission_id=sub.id, number=sub.attempts, started_at=now, worker=_worker_name()
        )
        db.session.add(attempt)
        db.session.commit()
        attempt_id = attempt.id
        return attempt_sync(sub, attempt, conn)
    except JobTimeoutException:
        # RQ stopped the job: give the submission back now rather than when the lease runs
        # out, and let RQ see the timeout (it records the job as failed).
        release_after_timeout(submission_id)
        raise
    except LeaseLost as exc:
        db.session.rollback()
        logger.warning("Sync of submission %s stopped: %s", submission_id, exc)
        if run is not None:  # always set here; mypy widens names assigned within a try
            _current_run.reset(run)
            run = None
        if attempt_id is not None:
            _close_attempt(attempt_id, "lease lost", str(exc))
        return "lease lost"
    finally:
        if run is not None:
            _current_run.reset(run)


def attempt_sync(sub: Submission, attempt: SyncAttempt, conn: HcpConnection) -> str:
    """Run the steps under the claimed lease and record how the attempt ended."""
    logger.info(
        "📤 Sending to Housecall Pro: submission %s, attempt %s", sub.reference, sub.attempts
    )
    try:
        client = make_client(submission_id=sub.id, attempt=sub.attempts)
        if client.rate_limiter is not None:  # bounded, so that check_config can size the job
            client.rate_limiter.max_wait = float(current_app.config["SYNC_RATE_LIMIT_WAIT_SECONDS"])
        run_steps(client, sub, conn)
    except (LeaseLost, JobTimeoutException):
        raise  # LeaseLost: sync_submission stops; a timeout is RQ's (see release_after_timeout)
    except KeyUnreadable as exc:
        db.session.rollback()
        mark_disconnected(conn, exc.message)
        return finish(
            sub, attempt, Status.WAITING,
            f"Waiting for the HCP connection: {exc.message}. Enter the key again in "
            "Integration settings; waiting submissions then sync by themselves.",
        )  # fmt: skip
    except SyncFailed as exc:
        return finish(sub, attempt, Status.FAILED, str(exc))
    except HcpError as exc:
        return handle_hcp_error(sub, attempt, conn, exc)
    except Exception as exc:  # a bug or a database hiccup: log it, keep the row retrying
        logger.exception("Unexpected error syncing submission %s", sub.reference)
        db.session.rollback()
        error = HcpError(f"internal error ({exc.__class__.__name__}); see the worker log")
        return schedule_retry(sub, attempt, error)
    return finish(sub, attempt, Status.SYNCED, created_message(sub))


def release_after_timeout(submission_id: int) -> None:
    """Give back a submission whose job RQ timed out: pending again, retried after a backoff.

    The session may have been interrupted mid-statement, so any failure here only leaves the
    lease to run out (the sweep then takes the submission up again). A run that was frozen
    past its lease wakes up here too (its alarm fired meanwhile) and writes nothing.
    """
    attempt_id = None
    try:
        db.session.rollback()
        sub = db.session.get(Submission, submission_id)
        attempt = db.session.scalar(
            select(SyncAttempt)
            .where(SyncAttempt.submission_id == submission_id, SyncAttempt.finished_at.is_(None))
            .order_by(SyncAttempt.id.desc())
            .limit(1)
        )
        if sub is None or attempt is None:
            return
        attempt_id = attempt.id
        error = HcpError(
            f"the attempt took longer than SYNC_JOB_TIMEOUT "
            f"({current_app.config['SYNC_JOB_TIMEOUT']} s) and was stopped"
        )
        schedule_retry(sub, attempt, error, outcome="timeout")
    except LeaseLost as exc:
        db.session.rollback()
        logger.warning("Sync of submission %s stopped: %s", submission_id, exc)
        if attempt_id is not None:
            _close_attempt(attempt_id, "lease lost", str(exc))
    except Exception:  # the timeout is what RQ must see; the sweep recovers the row
        logger.exception("Could not release submission %s after its timeout", submission_id)
        db.session.rollback()


def _close_attempt(attempt_id: int, outcome: str, message: str) -> None:
    """Record how a run ended on its own attempt row (never on the submission)."""
    db.session.execute(
        update(SyncAttempt)
        .where(SyncAttempt.id == attempt_id)
        .values(finished_at=utcnow(), outcome=outcome, message=message[:2000])
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def handle_hcp_error(
    sub: Submission, attempt: SyncAttempt, conn: HcpConnection, exc: HcpError
) -> str:
    """Classify an HCP error: wait for the connection, retry later, or fail for a person."""
    db.session.rollback()
    if exc.kind == "auth":
        mark_disconnected(conn, f"HCP refused the API key ({exc.status}): {exc.message}")
        return finish(
            sub,
            attempt,
            Status.WAITING,
            f"HCP refused the API key ({exc.status}). Fix the key in Integration settings and "
            "click Test connection; waiting submissions then sync by themselves.",
        )
    if exc.retryable:
        return schedule_retry(sub, attempt, exc)
    return finish(
        sub, attempt, Status.FAILED, f"HCP answered {exc.status}: {exc.message}", exc.status
    )


def backoff_seconds(attempts: int, *, retry_after: float | None = None) -> float:
    """Return the wait before the next attempt: capped exponential, full jitter, ≥ Retry-After."""
    cfg = current_app.config
    ceiling = min(
        float(cfg["SYNC_RETRY_CAP_SECONDS"]),
        float(cfg["SYNC_RETRY_BASE_SECONDS"]) * 2 ** max(0, attempts - 1),
    )
    delay = max(1.0, random.uniform(0, ceiling))
    if retry_after is not None:  # HCP said when: wait at least that (within reason)
        delay = max(delay, min(retry_after, float(cfg["SYNC_RETRY_AFTER_MAX_SECONDS"])))
    return delay


def schedule_retry(
    sub: Submission, attempt: SyncAttempt, exc: HcpError, *, outcome: str = "retry"
) -> str:
    """Put the submission back to pending with its next attempt time (jobs.py enqueues it)."""
    now = utcnow()
    first = sub.first_failure_at or now
    window = timedelta(hours=float(current_app.config["SYNC_RETRY_WINDOW_HOURS"]))
    status_text = exc.status if exc.status is not None else "no answer"
    if now - first > window:
        return finish(
            sub, attempt, Status.FAILED,
            f"HCP kept failing for {window.total_seconds() / 3600:g} h; "
            f"last: {status_text}: {exc.message}",
            exc.status,
        )  # fmt: skip
    delay = backoff_seconds(sub.attempts, retry_after=exc.retry_after)
    sub.first_failure_at = first
    sub.next_attempt_at = now + timedelta(seconds=delay)
    sub.enqueued_at = sub.next_attempt_at
    finish(
        sub, attempt, Status.PENDING,
        f"HCP error ({status_text}: {exc.message}); retrying in {delay:.0f} s", exc.status,
        outcome=outcome,
    )  # fmt: skip
    return outcome


def park(sub: Submission, conn: HcpConnection) -> str:
    """Leave the submission waiting while sync is paused or the key is refused.

    A pending row is parked, and so is a syncing one whose lease ran out (its worker died);
    a row another run holds now is left to that run ("busy").
    """
    if conn.paused:
        reason = "Sync is paused (manual processing). It resumes when an admin resumes sync."
    elif key_source(conn) == "none":
        reason = (
            "No HCP API key yet: enter it in Integration settings; waiting submissions then sync."
        )
    elif conn.state == "disconnected":
        reason = "Waiting for the HCP connection: " + (conn.last_message or "the key was refused.")
    else:
        reason = "This form does not send submissions to Housecall Pro."
    now = utcnow()
    result = db.session.execute(
        update(Submission)
        .where(
            Submission.id == sub.id,
            or_(
                Submission.status == Status.PENDING,
                and_(Submission.status == Status.SYNCING, Submission.lease_until < now),
            ),
        )
        .values(status=Status.WAITING, last_error=reason, lease_until=None, lease_token=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return "waiting" if rowcount(result) == 1 else "busy"


def finish(
    sub: Submission,
    attempt: SyncAttempt,
    status: str,
    message: str,
    code: int | None = None,
    *,
    outcome: str | None = None,
) -> str:
    """Record how the attempt ended, release the lease and commit."""
    now = utcnow()
    sub.status = status
    sub.lease_until = None
    sub.lease_token = None
    if status == Status.SYNCED:
        sub.synced_at = now
        sub.last_error = ""
        sub.last_error_code = None
        sub.next_attempt_at = None
        logger.info("✅ HousecallPro API response received: submission %s synced", sub.reference)
    else:
        sub.last_error = message[:2000]
        sub.last_error_code = code
        if status == Status.FAILED:
            logger.warning(
                "❌ HousecallPro API call failed: submission %s: %s", sub.reference, message
            )
    attempt.finished_at = now
    attempt.outcome = outcome or str(status)
    attempt.message = message[:2000]
    db.session.commit()
    return attempt.outcome


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"

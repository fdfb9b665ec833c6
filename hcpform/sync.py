"""The sync of one submission to HCP: a claim with a lease, then small idempotent steps.

customer → address → job. Each step stores the HCP id it obtained and commits at once, so a run
that dies anywhere resumes where it stopped. A create whose answer was lost (timeout, dropped
connection, worker killed) is looked for before it is sent again, so nothing is made twice.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from redis.exceptions import LockError
from rq.timeouts import JobTimeoutException
from sqlalchemy import and_, event, inspect, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from . import formdefs
from .connection import (
    KeyUnreadable,
    connection_row,
    key_source,
    make_client,
    mark_disconnected,
)
from .extensions import db
from .hcp import payloads
from .hcp.client import HcpError, HousecallProClient
from .hcp.errors import HcpTransientError
from .models import Form, HcpConnection, Status, Submission, SyncAttempt
from .timeutil import utcnow

logger = logging.getLogger(__name__)


# (submission id, lease token) of the run in this thread; see _lease_guard.
_current_run: ContextVar[tuple[int, str] | None] = ContextVar("hcpform_sync_run", default=None)


class SyncFailed(Exception):
    """A permanent problem on our side (e.g. a missing mapping); the message is for a person."""


class LeaseLost(Exception):
    """The run's lease ran out and another run took the submission over: stop, write nothing."""


@event.listens_for(Session, "before_flush")
def _lease_guard(session: Session, _context: Any, _instances: Any) -> None:
    """Write the running sync's changes to its submission only while its lease holds.

    Every ORM change a run makes to its own submission (ids, creates_sent, status, errors...)
    goes out here as UPDATE ... WHERE id = ? AND lease_token = ?, which also extends the lease;
    no row updated means another run owns the submission now, and LeaseLost stops this one.

    Raises:
        LeaseLost: when the submission is no longer held with this run's lease.
    """
    run = _current_run.get()
    if run is None:
        return
    sub_id, token = run
    for obj in list(session.dirty):
        if not isinstance(obj, Submission) or obj.id != sub_id:
            continue
        values = {}
        for attr in inspect(obj).attrs:
            added = attr.history.added
            if added and attr.key in Submission.__table__.c:
                values[attr.key] = added[0]
        if not values:
            continue
        lease = timedelta(seconds=int(current_app.config["SYNC_LEASE_SECONDS"]))
        values.setdefault("lease_until", utcnow() + lease)
        result = session.execute(
            update(Submission)
            .where(
                Submission.id == sub_id,
                Submission.lease_token == token,
                Submission.status == Status.SYNCING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise LeaseLost(f"submission {sub_id}: the lease ran out and another run took over")
        for key, value in values.items():
            set_committed_value(obj, key, value)  # written above: nothing left to flush


def claim(submission_id: int, *, now: datetime) -> str | None:
    """Take the submission with a lease (conditional update); return the lease token or None."""
    token = secrets.token_hex(8)
    lease = timedelta(seconds=int(current_app.config["SYNC_LEASE_SECONDS"]))
    result = db.session.execute(
        update(Submission)
        .where(
            Submission.id == submission_id,
            or_(
                and_(
                    Submission.status == Status.PENDING,
                    or_(
                        Submission.next_attempt_at.is_(None),
                        Submission.next_attempt_at <= now + timedelta(seconds=1),
                    ),
                ),
                and_(Submission.status == Status.SYNCING, Submission.lease_until < now),
            ),
        )
        .values(
            status=Status.SYNCING,
            lease_until=now + lease,
            lease_token=token,
            attempts=Submission.attempts + 1,
            next_attempt_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return token if result.rowcount == 1 else None


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
    run = _current_run.set((submission_id, token))
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
    return finish(sub, attempt, Status.SYNCED, f"Job {sub.hcp_job_id} created in HCP")


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


def run_steps(client: HousecallProClient, sub: Submission, conn: HcpConnection) -> None:
    """Run the steps in order; each one does nothing when its id is already stored."""
    missing = formdefs.missing_required_keys(sub.form.definition)
    if missing:
        raise SyncFailed(formdefs.missing_mappings_message(missing))
    job_type_id = resolve_job_type(client, sub.form, sub, conn)
    lead_source = resolve_lead_source(client, sub, conn)
    with person_lock(sub):
        found = ensure_customer(client, sub, conn, lead_source)
        ensure_address(client, sub, found)
    ensure_job(client, sub, conn, job_type_id, lead_source)


@contextmanager
def person_lock(sub: Submission) -> Iterator[None]:
    """Hold this person's lock (by phone and by email) while their customer and address are made.

    Two submissions of one new person synced at the same moment by two workers would otherwise
    both find no customer, and both create one. The Redis keys are HMACs: no phone or email.

    Raises:
        HcpTransientError: when another run holds it too long (the sync is retried later).
    """
    from .extensions import get_redis
    from .validation import phone_digits

    secret = str(current_app.config["SECRET_KEY"]).encode()
    values = {phone_digits(sub.phone), (sub.email or "").strip().lower()} - {""}
    names = sorted(
        "hcpform:person-lock:" + hmac.new(secret, v.encode(), hashlib.sha256).hexdigest()[:32]
        for v in values
    )  # always in the same order: two runs never wait for each other in a circle
    lease = float(current_app.config["SYNC_LEASE_SECONDS"])
    conn = get_redis()
    # redis-py's Lock: SET NX PX with a token, released by a script only while still ours (it
    # may have expired and been taken over). The embedded fakeredis runs the script with lupa.
    locks = [
        conn.lock(name, timeout=lease, sleep=0.05, blocking_timeout=max(1.0, lease / 3))
        for name in names
    ]
    held: list[Any] = []
    try:
        for lock in locks:
            if not lock.acquire():
                raise HcpTransientError("another sync for the same person is running")
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            try:
                lock.release()
            except LockError:  # expired, maybe taken over: not ours to delete
                pass


def _request(sub: Submission) -> payloads.ServiceRequest:
    """Return the submission's values as the plain request the payload builders take."""
    return payloads.ServiceRequest.of(sub)


def _mark_sent(sub: Submission, step: str) -> None:
    """Record, before the POST goes out, that a create for this step may now exist in HCP."""
    steps = set(filter(None, sub.creates_sent.split(",")))
    steps.add(step)
    sub.creates_sent = ",".join(sorted(steps))
    db.session.commit()


def find_customer(
    client: HousecallProClient, sub: Submission
) -> tuple[dict | None, str | None, str | None]:
    """Look the person up by phone, then by email; return (match, rule, possible duplicate id).

    A match is the mobile number, or a home/work number or the email together with the last
    name (never a name alone, never an email alone). A customer that shares the email or a
    number without matching is returned as the possible duplicate, so that the office can merge.
    """
    candidate: str | None = None
    for query in (payloads.phone_query(sub.phone), sub.email):
        if not query:
            continue
        result = client.search_customers(query, page_size=50)
        for customer in result.get("customers", []):
            rule = payloads.submission_matches(customer, _request(sub))
            if rule:
                return customer, rule, None
            if candidate is None and payloads.possible_duplicate(customer, _request(sub)):
                candidate = customer.get("id")
    return None, None, candidate


def ensure_customer(
    client: HousecallProClient, sub: Submission, conn: HcpConnection, lead_source: str | None
) -> dict[str, Any] | None:
    """Store the HCP customer id: the existing customer when one matches, else a new one."""
    if sub.hcp_customer_id:
        return None
    customer, rule, candidate = find_customer(client, sub)
    if customer is not None:
        # A match after our own create was sent is our customer, not a returning one.
        ours = "customer" in sub.creates_sent
        sub.customer_matched_by = "created" if ours else rule
        sub.hcp_customer_id = customer["id"]
        # HCP's record is the office's: what the person typed otherwise goes in the job's notes
        # (payloads.job_notes reads it), never into a PUT of the customer.
        differences = {} if ours else payloads.typed_differences(customer, _request(sub))
        sub.typed_differences = payloads.differences_note(differences)
        logger.info(
            "🏠 Customer lookup result: %s matched by %s%s",
            customer["id"],
            rule,
            f"; typed differently: {', '.join(differences)}" if differences else "",
        )  # field names only: the values are personal data
        db.session.commit()
        return customer
    if candidate and not sub.possible_duplicate_of:
        # Committed with the mark below, before the POST: a retry after a lost answer finds our
        # own new customer (a match), and the marker must survive that.
        sub.possible_duplicate_of = candidate
    logger.info(
        "🏠 Customer lookup result: no match, creating a customer%s",
        f" (possible duplicate of {candidate})" if candidate else "",
    )
    _mark_sent(sub, "customer")
    created = client.create_customer(
        payloads.customer_body(
            _request(sub), lead_source=lead_source, tags=list(conn.default_tags or [])
        )
    )
    sub.hcp_customer_id = created["id"]
    sub.customer_matched_by = "created"
    address = payloads.find_address(created.get("addresses") or [], _request(sub))
    if address is not None:
        sub.hcp_address_id = address["id"]
        sub.address_reused = False
        logger.info("📍 Address validation result: %s created with the customer", address["id"])
    db.session.commit()
    return created


def ensure_address(
    client: HousecallProClient, sub: Submission, customer: dict[str, Any] | None
) -> None:
    """Store the service address id: a matching address of the customer, else a new one."""
    if sub.hcp_address_id:
        return
    addresses = (customer or {}).get("addresses")
    if addresses is None or "address" in sub.creates_sent:
        addresses = client.list_customer_addresses(sub.hcp_customer_id)
    match = payloads.find_address(addresses, _request(sub))
    if match is not None:
        sub.hcp_address_id = match["id"]
        sub.address_reused = "address" not in sub.creates_sent
        logger.info("📍 Address validation result: reusing address %s", match["id"])
        db.session.commit()
        return
    _mark_sent(sub, "address")
    created = client.create_customer_address(
        sub.hcp_customer_id, payloads.address_body(_request(sub))
    )
    sub.hcp_address_id = created["id"]
    sub.address_reused = False
    logger.info("📍 Address validation result: created address %s", created["id"])
    db.session.commit()


def ensure_job(
    client: HousecallProClient,
    sub: Submission,
    conn: HcpConnection,
    job_type_id: str | None,
    lead_source: str | None,
) -> None:
    """Store the job id; after a create whose answer was lost, find that job by our reference."""
    if sub.hcp_job_id:
        return
    if "job" in sub.creates_sent:
        marker = payloads.reference_marker(sub.reference)
        for job in client.iter_pages(
            "/jobs", "jobs", params={"customer_id": sub.hcp_customer_id}, page_size=100
        ):
            notes = job.get("notes") or []
            text = " ".join(n.get("content") or "" for n in notes if isinstance(n, dict))
            if marker in text or marker in (job.get("description") or ""):
                sub.hcp_job_id = job["id"]
                db.session.commit()
                return
    form = sub.form
    window = next((w for w in form.time_windows if w["id"] == sub.booking_window), None)
    body = payloads.job_body(
        _request(sub),
        customer_id=sub.hcp_customer_id,
        address_id=sub.hcp_address_id,
        job_type_id=job_type_id,
        lead_source=lead_source,
        tags=list(conn.default_tags or []),
        window_label=window["label"] if window else sub.booking_window,
        time_zone=conn.time_zone or form.time_zone,
    )
    _mark_sent(sub, "job")
    created = client.create_job(body)
    sub.hcp_job_id = created["id"]
    sub.job_work_status = created.get("work_status")
    db.session.commit()


def resolve_job_type(
    client: HousecallProClient, form: Form, sub: Submission, conn: HcpConnection
) -> str | None:
    """Return the HCP job type id for the service type: mapped, else same name, else default.

    Raises:
        SyncFailed: when no job type can be found, naming the service type.
    """
    mapping = next((s for s in form.service_types if s["name"] == sub.service_type), None)
    job_types = client.job_types()
    known = {jt["id"]: jt for jt in job_types}
    if mapping and mapping.get("job_type_id"):
        if mapping["job_type_id"] in known:
            return mapping["job_type_id"]
        raise SyncFailed(
            f"The HCP job type mapped to '{sub.service_type}' no longer exists in Housecall Pro. "
            "Choose another one in the form settings, then retry."
        )
    by_name = {(jt.get("name") or "").strip().lower(): jt["id"] for jt in job_types}
    if sub.service_type.strip().lower() in by_name:
        return by_name[sub.service_type.strip().lower()]
    if conn.default_job_type_id and conn.default_job_type_id in known:
        return conn.default_job_type_id
    raise SyncFailed(
        f"No HCP job type matches the service type '{sub.service_type}'. Map it to a job type "
        "in the form settings (or set a default job type), then retry."
    )


def resolve_lead_source(
    client: HousecallProClient, sub: Submission, conn: HcpConnection
) -> str | None:
    """Return an existing HCP lead source name: the UTM source if HCP knows it, else the default."""
    if sub.utm_source:
        names = {(ls.get("name") or "").lower(): ls.get("name") for ls in client.lead_sources()}
        if sub.utm_source.lower() in names:
            return names[sub.utm_source.lower()]
    return conn.default_lead_source or None


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
    return "waiting" if result.rowcount == 1 else "busy"


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

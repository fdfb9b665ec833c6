"""An abandoned request to HCP as a lead, exactly once; and a submission's link to that lead.

Like a submission's sync: a run claims the row with a lease (every later write is conditional
on it), finds or makes the customer the way the sync does (steps.find_customer under the
person's lock), then the address, then the lead; each HCP id is stored the moment it is known,
and each create is marked in `creates_sent` before its POST. After a lost answer the lead is
looked for among the customer's leads (our tags, lead source, made after our first POST, held
by nobody else: records.ensure_lead's rule) before anything is sent again. A draft submitted
meanwhile gets no lead; one submitted after its lead was sent is linked to it (`link_lead`).
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select, update

from .. import abandoned, submissions
from ..connection import connection_row, key_source, make_client, mark_disconnected
from ..extensions import claim_with_lease, db, rowcount
from ..hcp import matching, payloads
from ..hcp.client import HcpError, HousecallProClient
from ..hcp.errors import HcpTransientError
from ..hcp.types import ServiceRequest
from ..models import AbandonedRequest, Draft, Form, HcpConnection, Status, Submission
from ..timeutil import utcnow
from .lease import LeaseLost
from .records import CLOCK_ALLOWANCE, resolve_lead_source
from .steps import find_customer, person_lock

logger = logging.getLogger(__name__)

RETRY_CAP_SECONDS = 3600.0


def due_ids(*, now: datetime, limit: int) -> list[int]:
    """Return abandoned requests to send now: new or due again on forms that send them, and
    any whose run died holding it (a lead may exist: it is looked for, whatever the setting)."""
    sending_forms = select(Form.id).where(Form.abandoned_to_hcp.is_(True))
    live_draft = select(Draft.id).where(
        Draft.submitted_at.is_(None), Draft.erased_at.is_(None), Draft.expires_at > now
    )
    retry_due = and_(
        AbandonedRequest.lead_state == "retry", AbandonedRequest.next_attempt_at <= now
    )
    stmt = (
        select(AbandonedRequest.id)
        .where(
            or_(
                and_(
                    AbandonedRequest.form_id.in_(sending_forms),
                    AbandonedRequest.draft_id.in_(live_draft),
                    or_(AbandonedRequest.lead_state == "", retry_due),
                ),
                # A POST /leads may have made a lead: settle it, submitted or not.
                and_(
                    AbandonedRequest.creates_sent.contains("lead"),
                    AbandonedRequest.hcp_lead_id.is_(None),
                    retry_due,
                ),
                and_(
                    AbandonedRequest.lead_state == "sending",
                    AbandonedRequest.lease_until < now,
                ),
            )
        )
        .order_by(AbandonedRequest.id)
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def claim(row_id: int, *, now: datetime) -> str | None:
    """Take the row with a lease (a conditional update); return the lease token or None."""
    lease = timedelta(seconds=int(current_app.config["SYNC_LEASE_SECONDS"]))
    due = or_(
        AbandonedRequest.lead_state.in_(("", "retry")),
        and_(AbandonedRequest.lead_state == "sending", AbandonedRequest.lease_until < now),
    )
    return claim_with_lease(
        AbandonedRequest,
        row_id,
        due,
        until=now + lease,
        lead_state="sending",
        attempts=AbandonedRequest.attempts + 1,
    )


class _Run:
    """One claimed run: writes to the row only while its lease holds."""

    def __init__(self, row: AbandonedRequest, token: str) -> None:
        self.row = row
        self.token = token

    def save(self, **values: Any) -> None:
        """Write these columns and commit, if the lease is still ours.

        Raises:
            LeaseLost: when another run has taken the row over.
        """
        if values.get("lead_state", "sending") == "sending":
            lease = timedelta(seconds=int(current_app.config["SYNC_LEASE_SECONDS"]))
            values.setdefault("lease_until", utcnow() + lease)
        result = db.session.execute(
            update(AbandonedRequest)
            .where(
                AbandonedRequest.id == self.row.id,
                AbandonedRequest.lease_token == self.token,
                AbandonedRequest.lead_state == "sending",
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if rowcount(result) != 1:
            raise LeaseLost(f"abandoned request {self.row.id}: another run took it over")
        db.session.refresh(self.row)

    def mark_sent(self, step: str, **values: Any) -> None:
        """Record, before the POST goes out, that a create for this step may now exist."""
        steps = set(filter(None, self.row.creates_sent.split(","))) | {step}
        self.save(creates_sent=",".join(sorted(steps)), **values)

    def finish(self, state: str, message: str = "", *, retry_in: float | None = None) -> str:
        """Release the lease with the run's outcome."""
        values: dict[str, Any] = {
            "lead_state": state,
            "lease_until": None,
            "lease_token": None,
            "last_error": message[:2000],
        }
        if retry_in is not None:
            values["next_attempt_at"] = utcnow() + timedelta(seconds=retry_in)
        self.save(**values)
        return state


def send_lead(row_id: int) -> str:
    """Send one abandoned request to HCP as a lead (once); return the run's outcome."""
    now = utcnow()
    token = claim(row_id, now=now)
    if token is None:
        return "busy"
    row = db.session.get(AbandonedRequest, row_id)
    assert row is not None, "claimed just now"
    run = _Run(row, token)
    conn = connection_row()
    if conn.paused or conn.state == "disconnected" or key_source(conn) == "none":
        return run.finish("retry", "Waiting for the HCP connection", retry_in=600)
    try:
        client = make_client()
        if client.rate_limiter is not None:
            client.rate_limiter.max_wait = float(current_app.config["SYNC_RATE_LIMIT_WAIT_SECONDS"])
        return _run_steps(client, run, conn)
    except LeaseLost as exc:
        db.session.rollback()
        logger.warning("Abandoned lead %s stopped: %s", row_id, exc)
        return "lease lost"
    except HcpError as exc:
        db.session.rollback()
        if exc.kind == "auth":
            mark_disconnected(conn, f"HCP refused the API key ({exc.status}): {exc.message}")
            return run.finish("retry", f"HCP refused the API key ({exc.status})", retry_in=600)
        if exc.retryable:
            return run.finish("retry", f"HCP error: {exc}", retry_in=_backoff(row.attempts))
        return run.finish("failed", f"HCP answered {exc.status}: {exc.message}")
    except Exception as exc:  # a bug or a database hiccup: log it, try again later
        logger.exception("Unexpected error sending abandoned request %s", row_id)
        db.session.rollback()
        return run.finish("retry", f"internal error ({exc.__class__.__name__})", retry_in=300)


def _backoff(attempts: int) -> float:
    """Return the wait before the next try: capped exponential with full jitter."""
    base = float(current_app.config["SYNC_RETRY_BASE_SECONDS"])
    return max(1.0, random.uniform(0, min(RETRY_CAP_SECONDS, base * 2 ** max(0, attempts - 1))))


def _request_of(draft: Draft, form: Form, row: AbandonedRequest) -> Submission:
    """Return an unsaved Submission holding the draft's answers, for the sync's own steps."""
    sub = submissions.build_submission(draft, form, now=utcnow(), status=Status.PENDING)
    sub.reference = f"D{draft.id}"
    sub.creates_sent = row.creates_sent
    sub.hcp_customer_id = row.hcp_customer_id
    sub.hcp_address_id = row.hcp_address_id
    return sub


def _run_steps(client: HousecallProClient, run: _Run, conn: HcpConnection) -> str:
    """Customer, address, then the lead; each step does nothing when its id is stored."""
    row = run.row
    draft = db.session.get(Draft, row.draft_id)
    form = db.session.get(Form, row.form_id)
    assert draft is not None and form is not None, "a draft and its form outlive its row"
    if draft.erased_at is not None:
        return run.finish("skipped", "The draft expired before its lead was sent")
    submitted = draft.submitted_at is not None
    if submitted and "lead" not in row.creates_sent:
        return run.finish("skipped", "Submitted before its lead was sent: no lead")
    sub = _request_of(draft, form, row)
    lead_source = resolve_lead_source(client, sub, conn)
    tags = payloads.job_tags(
        ServiceRequest.of(sub),
        [*conn.default_tags, str(current_app.config["ABANDONED_LEAD_TAG"])],
    )
    if not submitted:
        with person_lock(sub):
            found = _ensure_customer(client, run, sub, conn, lead_source)
            _ensure_address(client, run, sub, found)
    customer_id = row.hcp_customer_id
    if "lead" in row.creates_sent and customer_id:
        lead = _find_our_lead(client, row, customer_id, tags, lead_source)
        if lead is not None:
            return _store_lead(run, lead["id"])
    if submitted:
        return run.finish("skipped", "Submitted before its lead was sent: no lead")
    db.session.refresh(draft)
    if draft.submitted_at is not None:  # submitted while this run made the customer
        return run.finish("skipped", "Submitted before its lead was sent: no lead")
    assert customer_id is not None, "the customer step stores it first"
    body = payloads.abandoned_lead_body(
        ServiceRequest.of(sub),
        customer_id=customer_id,
        address_id=row.hcp_address_id,
        lead_source=lead_source,
        tags=[*conn.default_tags, str(current_app.config["ABANDONED_LEAD_TAG"])],
        stopped_at=_stopped_at(abandoned.progress(form, draft)),
        filled_in=abandoned.filled_in(form, draft),
        resume_url=_resume_url(form, row),
    )
    run.mark_sent("lead", lead_sent_at=row.lead_sent_at or utcnow())
    created = client.create_lead(body)
    return _store_lead(run, created["id"])


def _stopped_at(where: abandoned.Progress) -> str:
    """Return where the person stopped, for the lead's note."""
    if where.number > where.total:
        return "the last page (every step done, never sent)"
    return f"step {where.number} of {where.total} ({where.title})"


def _store_lead(run: _Run, lead_id: str) -> str:
    """Store the lead's id with the row's final state."""
    run.save(
        hcp_lead_id=lead_id, lead_state="sent", lease_until=None, lease_token=None, last_error=""
    )
    logger.info("Abandoned request %s sent to HCP as lead %s", run.row.id, lead_id)
    return "sent"


def _resume_url(form: Form, row: AbandonedRequest) -> str:
    """Return the resume link: absolute when PUBLIC_URL is set, else its path."""
    base = str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    return base + abandoned.resume_path(form, row)


def _ensure_customer(
    client: HousecallProClient,
    run: _Run,
    sub: Submission,
    conn: HcpConnection,
    lead_source: str | None,
) -> dict[str, Any] | None:
    """Store the HCP customer: the one the sync's matching finds, else a new one."""
    if run.row.hcp_customer_id:
        return None
    customer, _rule, _candidate = find_customer(client, sub)
    _forget_wizard_answer(run.row.draft_id)
    if customer is not None:
        run.save(hcp_customer_id=customer["id"])
        return customer
    run.mark_sent("customer")
    created = client.create_customer(
        payloads.customer_body(
            ServiceRequest.of(sub), lead_source=lead_source, tags=list(conn.default_tags or [])
        )
    )
    address = matching.find_address(created.get("addresses") or [], ServiceRequest.of(sub))
    run.save(hcp_customer_id=created["id"], hcp_address_id=address["id"] if address else None)
    return created


def _forget_wizard_answer(draft_id: int) -> None:
    """Drop the wizard's HCP answer from the draft: once we may make a customer, a later
    submission's sync must search HCP again (it would find that customer), never reuse it."""
    draft = db.session.get(Draft, draft_id)
    if draft is None or "hcp" not in (draft.lookup or {}):
        return
    kept = {k: v for k, v in draft.lookup.items() if k != "hcp"}
    db.session.execute(
        update(Draft)
        .where(Draft.id == draft_id)
        .values(lookup=kept, updated_at=draft.updated_at)  # no activity of the person's
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.expire(draft)


def _ensure_address(
    client: HousecallProClient, run: _Run, sub: Submission, customer: dict[str, Any] | None
) -> None:
    """Store the service address when the draft has one: the customer's matching one, or new."""
    row = run.row
    if row.hcp_address_id or not (sub.street and sub.city and sub.state and sub.zip):
        return
    assert row.hcp_customer_id is not None, "the customer step stores it first"
    addresses = (customer or {}).get("addresses")
    if addresses is None or "address" in row.creates_sent:
        addresses = client.list_customer_addresses(row.hcp_customer_id)
    match = matching.find_address(addresses, ServiceRequest.of(sub))
    if match is not None:
        run.save(hcp_address_id=match["id"])
        return
    run.mark_sent("address")
    created = client.create_customer_address(
        row.hcp_customer_id, payloads.address_body(ServiceRequest.of(sub))
    )
    run.save(hcp_address_id=created["id"])


def _find_our_lead(
    client: HousecallProClient,
    row: AbandonedRequest,
    customer_id: str,
    tags: list[str],
    lead_source: str | None,
) -> dict[str, Any] | None:
    """Return the lead an earlier run's POST made (its answer lost), or None."""
    since = (row.lead_sent_at or row.detected_at) - CLOCK_ALLOWANCE
    held = set(
        db.session.scalars(
            select(AbandonedRequest.hcp_lead_id).where(
                AbandonedRequest.hcp_lead_id.is_not(None), AbandonedRequest.id != row.id
            )
        )
    )
    held |= set(
        db.session.scalars(
            select(Submission.hcp_lead_id).where(Submission.hcp_lead_id.is_not(None))
        )
    )
    ours = [
        lead
        for lead in client.list_leads(customer_id=customer_id)
        if lead.get("id") not in held
        and payloads.lead_looks_ours(lead, tags=tags, lead_source=lead_source, since=since)
    ]
    ours.sort(key=lambda lead: str(lead.get("created_at") or ""))
    return ours[0] if ours else None


def link_lead(sub: Submission) -> None:
    """Put the lead its draft became (while abandoned) on a submission, once it is known.

    Raises:
        HcpTransientError: while that lead is being sent (its id is not known yet): the
            submission's sync tries again shortly, so the link is never missed.
    """
    if sub.abandoned_lead_id or sub.draft_id is None:
        return
    row = db.session.scalar(
        select(AbandonedRequest).where(AbandonedRequest.draft_id == sub.draft_id)
    )
    if row is None:
        return
    if row.hcp_lead_id:
        sub.abandoned_lead_id = row.hcp_lead_id
        db.session.commit()
        return
    unsettled = "lead" in row.creates_sent and row.lead_state == "retry"
    if row.lead_state == "sending" or unsettled:
        raise HcpTransientError("the lead for this request's unfinished draft is being sent")

"""Apply what HCP says about a record to the submission it came from (newest state wins).

Events come at least once and in any order. Each figure group (the status, the money) carries
the time of the newest state applied, and an older state never replaces a newer one; invoices
are merged one by one, each with its own time. Webhook events and the reconcile (which reads
the record from HCP's API) go through the same `apply_record`, each naming its source.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, or_, select, update

from ..extensions import db, rowcount
from ..hcp.payloads import parse_time
from ..models import Submission, WebhookEvent
from . import figures

logger = logging.getLogger(__name__)

APPLIED = ("job", "estimate", "lead", "invoice", "appointment")


def find_submission(resource: str, record: Mapping[str, Any]) -> int | None:
    """Return the id of the submission a record belongs to: by its HCP id, else our marker."""
    record_id = str(record.get("id") or "")
    clauses: list[Any] = []
    if resource == "job" and record_id:
        clauses.append(Submission.hcp_job_id == record_id)
        if estimates := figures.estimate_ids(record):  # a job made from our estimate
            clauses.append(Submission.hcp_estimate_id.in_(estimates))
    elif resource == "estimate" and record_id:
        clauses.append(Submission.hcp_estimate_id == record_id)
    elif resource == "lead" and record_id:
        clauses.append(Submission.hcp_lead_id == record_id)
    elif job_id := figures.linked_job_id(resource, record):
        clauses.append(Submission.hcp_job_id == job_id)
    reference = figures.reference_in(record) if resource in ("job", "estimate") else None
    if reference:
        clauses.append(Submission.reference == reference)
    if not clauses:
        return None
    found = db.session.scalar(
        select(Submission.id).where(or_(*clauses)).order_by(Submission.id).limit(1)
    )
    return int(found) if found is not None else None


def lock(submission_id: int) -> Submission | None:
    """Return the submission, write-locked until the caller commits.

    The dummy UPDATE takes the row lock on PostgreSQL and SQLite's write lock (pysqlite sends
    BEGIN only before a write), so two workers applying events to one row take turns.
    """
    db.session.execute(
        update(Submission)
        .where(Submission.id == submission_id)
        .values(hcp_status=Submission.hcp_status)
        .execution_options(synchronize_session=False)
    )
    sub = db.session.get(Submission, submission_id, populate_existing=True)
    return sub


def apply_record(
    sub: Submission,
    resource: str,
    event: str,
    record: Mapping[str, Any],
    *,
    at: datetime,
    source: str,
) -> bool:
    """Apply one state of a record (as of `at`) to the submission; return True if it changed."""
    changed = _apply_status(sub, resource, event, record, at=at, source=source)
    changed = _apply_money(sub, resource, record, at=at, source=source) or changed
    if changed:
        db.session.flush()
    return changed


def _apply_status(
    sub: Submission,
    resource: str,
    event: str,
    record: Mapping[str, Any],
    *,
    at: datetime,
    source: str,
) -> bool:
    if resource == "appointment":
        # An appointment says the job has a visit; it never undoes a later stage.
        if event.endswith("discarded") or sub.hcp_status not in (None, "unscheduled"):
            return False
        status: str | None = "scheduled"
    else:
        status = figures.status_of(resource, event, record)
    if not status or not figures.supersedes(status, at, sub.hcp_status, sub.hcp_status_at):
        return False
    sub.hcp_status, sub.hcp_status_at, sub.hcp_status_source = status, at, source
    if resource == "job" and record.get("work_status"):
        sub.job_work_status = str(record["work_status"])[:32]
    if status == "completed" and sub.hcp_completed_at is None:
        sub.hcp_completed_at = figures.done_at(record, status, at)
    if status == "canceled" and sub.hcp_canceled_at is None:
        sub.hcp_canceled_at = figures.done_at(record, status, at)
    return True


def _apply_money(
    sub: Submission, resource: str, record: Mapping[str, Any], *, at: datetime, source: str
) -> bool:
    found = figures.money_entry(resource, record, at)
    if found is None:
        return False
    key, entry = found
    entries: dict[str, Any] = dict(sub.hcp_money or {})
    held = entries.get(key) or {}
    held_at = parse_time(held.get("at"))
    if held_at is not None and at < held_at:
        return False  # an older state of this invoice (or of the job's totals)
    if key == figures.JOB_KEY:
        sub.job_total_cents = int(entry["amount"])
        if int(entry["due"]) <= 0 < int(entry["amount"]):
            entry["paid_at"] = held.get("paid_at") or at.isoformat()
    entries[key] = {**entry, "at": at.isoformat(), "source": source}
    sub.hcp_money = entries  # a new dict: the JSON column sees the change
    invoiced, paid, paid_at = figures.totals(entries, completed=sub.hcp_status == "completed")
    sub.invoiced_cents, sub.paid_cents, sub.hcp_paid_at = invoiced, paid, paid_at
    if sub.hcp_money_at is None or at >= sub.hcp_money_at:
        sub.hcp_money_at, sub.hcp_money_source = at, source
    return True


def refresh_totals(sub: Submission) -> None:
    """Recompute the money figures (a job just completed: its totals now count as invoiced)."""
    if sub.hcp_money:
        invoiced, paid, paid_at = figures.totals(
            sub.hcp_money, completed=sub.hcp_status == "completed"
        )
        sub.invoiced_cents, sub.paid_cents, sub.hcp_paid_at = invoiced, paid, paid_at


def apply_event(event_id: int, *, now: datetime) -> str:
    """Apply one stored event to its submission; return the event's new state (flushes only)."""
    event = db.session.get(WebhookEvent, event_id)
    if event is None or event.state != "received":
        return event.state if event is not None else "missing"
    try:
        data = json.loads(event.body or "{}")
    except ValueError:
        data = {}
    record = data.get(event.resource) if isinstance(data, dict) else None
    if event.resource not in APPLIED or not isinstance(record, dict):
        return _finish(event, "ignored", now=now)
    sub_id = find_submission(event.resource, record)
    if sub_id is None:
        return _finish(event, "unmatched", now=now, keep_body=True)
    sub = lock(sub_id)
    if sub is None:
        return _finish(event, "unmatched", now=now, keep_body=True)
    at = event.occurred_at or event.received_at
    changed = apply_record(sub, event.resource, event.event, record, at=at, source="webhook")
    refresh_totals(sub)
    event.submission_id = sub.id
    return _finish(event, "applied" if changed else "stale", now=now)


def _finish(event: WebhookEvent, state: str, *, now: datetime, keep_body: bool = False) -> str:
    """Set the event's state; drop the raw body (personal data) unless kept for diagnosis."""
    event.state, event.applied_at = state, now
    if not keep_body:
        event.body = ""
    db.session.flush()
    logger.info("Webhook event %s (%s) %s", event.id, event.event, state)
    return state


def purge(*, now: datetime) -> int:
    """Drop every stored event older than WEBHOOK_KEEP_DAYS; return how many."""
    days = int(current_app.config["WEBHOOK_KEEP_DAYS"])
    result = db.session.execute(
        delete(WebhookEvent)
        .where(WebhookEvent.received_at < now - timedelta(days=days))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def waiting(*, older_than: datetime, limit: int = 500) -> list[int]:
    """Return events stored but not applied (their enqueue failed, or a worker died)."""
    return list(
        db.session.scalars(
            select(WebhookEvent.id)
            .where(WebhookEvent.state == "received", WebhookEvent.received_at < older_than)
            .order_by(WebhookEvent.id)
            .limit(limit)
        )
    )

"""What an HCP record says about the work: its status, its money and its dates (pure).

Statuses we keep: unscheduled, scheduled, in_progress, completed, canceled, deleted (jobs and
estimates); sent, approved, declined (estimates); open, won, lost (leads). Money is in cents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..hcp.payloads import parse_time

WORK_STATUS = {
    "needs scheduling": "unscheduled",
    "unscheduled": "unscheduled",
    "scheduled": "scheduled",
    "in progress": "in_progress",
    "complete rated": "completed",
    "complete unrated": "completed",
    "completed": "completed",
    "user canceled": "canceled",
    "pro canceled": "canceled",
    "canceled": "canceled",
}
EVENT_STATUS = {
    "job.created": None,
    "job.scheduled": "scheduled",
    "job.on_my_way": "in_progress",
    "job.started": "in_progress",
    "job.completed": "completed",
    "job.canceled": "canceled",
    "job.deleted": "deleted",
    "estimate.scheduled": "scheduled",
    "estimate.sent": "sent",
    "estimate.completed": "completed",
    "lead.converted": "won",
    "lead.lost": "lost",
}
# An equal timestamp lets only a later stage through (job.started and job.completed can share
# a second; whichever arrives first, completed wins).
RANK = {
    "open": 0,
    "unscheduled": 0,
    "sent": 1,
    "scheduled": 1,
    "in_progress": 2,
    "completed": 3,
    "approved": 3,
    "declined": 3,
    "won": 3,
    "lost": 3,
    "canceled": 4,
    "deleted": 5,
}
STATUS_LABELS = {
    "unscheduled": "Needs scheduling",
    "scheduled": "Scheduled",
    "in_progress": "In progress",
    "completed": "Completed",
    "canceled": "Canceled",
    "deleted": "Deleted in HCP",
    "sent": "Estimate sent",
    "approved": "Estimate approved",
    "declined": "Estimate declined",
    "open": "Lead open",
    "won": "Lead won",
    "lost": "Lead lost",
}
CLOSED = frozenset({"canceled", "deleted", "declined", "lost"})  # nothing more will happen
VOID_INVOICE = frozenset({"voided", "canceled"})
JOB_KEY = "_job"  # the job's own totals, beside its invoices
MARKER = re.compile(r"hcpform ref ([A-Z0-9][A-Z0-9-]{2,20})")


def status_of(resource: str, event: str, record: Mapping[str, Any]) -> str | None:
    """Return our status for a record in an event (None: the event says nothing about it)."""
    if resource == "job":
        if event == "job.deleted" or record.get("deleted_at"):
            return "deleted"
        return WORK_STATUS.get(str(record.get("work_status") or "")) or EVENT_STATUS.get(event)
    if resource == "estimate":
        approvals = [
            str(o.get("approval_status") or "").lower()
            for o in record.get("options") or []
            if isinstance(o, Mapping)
        ]
        if any(a in ("approved", "pro approved") for a in approvals):
            return "approved"
        if approvals and all(a in ("declined", "pro declined") for a in approvals):
            return "declined"
        work = WORK_STATUS.get(str(record.get("work_status") or ""))
        return EVENT_STATUS.get(event) or work
    if resource == "lead":
        status = str(record.get("status") or "").lower()
        if status in ("won", "lost", "open"):
            return status
        return EVENT_STATUS.get(event)
    return None


def supersedes(new: str, new_at: datetime, held: str | None, held_at: datetime | None) -> bool:
    """Return True when a status at `new_at` replaces the one held (newest wins)."""
    if held is None or held_at is None or new_at > held_at:
        return True
    return new_at == held_at and RANK.get(new, 0) >= RANK.get(held, 0)


def done_at(record: Mapping[str, Any], status: str, at: datetime) -> datetime:
    """Return when the work was completed or canceled: HCP's own time, else the event's."""
    stamps = record.get("work_timestamps") or {}
    if status == "completed" and isinstance(stamps, Mapping):
        return parse_time(stamps.get("completed_at")) or at
    if status == "canceled":
        return parse_time(record.get("canceled_at")) or at
    return at


def _cents(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(round(value))


def money_entry(
    resource: str, record: Mapping[str, Any], at: datetime
) -> tuple[str, dict[str, Any]] | None:
    """Return (key, entry) for the money a job or invoice record carries, or None."""
    if resource == "job":
        amount = _cents(record.get("total_amount"))
        if amount is None:
            return None
        due = _cents(record.get("outstanding_balance"))
        return JOB_KEY, {"amount": amount, "due": amount if due is None else due}
    if resource == "invoice" and record.get("id"):
        amount = _cents(record.get("amount"))
        if amount is None:
            return None
        due = _cents(record.get("due_amount"))
        status = str(record.get("status") or "").lower()
        if due is None:
            due = 0 if status == "paid" else amount
        paid_at = parse_time(record.get("paid_at"))
        if paid_at is None and due == 0 and amount > 0:
            paid_at = at
        entry = {"amount": amount, "due": due, "status": status}
        entry["paid_at"] = paid_at.isoformat() if paid_at else None
        return str(record["id"]), entry
    return None


def totals(
    entries: Mapping[str, Mapping[str, Any]], *, completed: bool
) -> tuple[int | None, int | None, datetime | None]:
    """Return (invoiced, paid, paid in full at) from the invoices, else from the job's totals.

    The job's totals count as invoiced once the job is completed (HCP invoices then).
    """
    invoices = [
        e for k, e in entries.items() if k != JOB_KEY and e.get("status") not in VOID_INVOICE
    ]
    if invoices:
        invoiced = sum(int(e["amount"]) for e in invoices)
        paid = sum(max(0, int(e["amount"]) - int(e["due"])) for e in invoices)
        stamps = [parse_time(e.get("paid_at")) for e in invoices]
        full = all(int(e["due"]) <= 0 for e in invoices) and paid > 0
        paid_at = max((s for s in stamps if s), default=None) if full else None
        return invoiced, paid, paid_at
    job = entries.get(JOB_KEY)
    if not job:
        return None, None, None
    job_paid = max(0, int(job["amount"]) - int(job["due"]))
    job_invoiced = int(job["amount"]) if completed else None
    job_paid_at = parse_time(job.get("paid_at")) if job_paid and int(job["due"]) <= 0 else None
    return job_invoiced, (job_paid if job_paid or completed else None), job_paid_at


def linked_job_id(resource: str, record: Mapping[str, Any]) -> str | None:
    """Return the job an invoice or appointment belongs to."""
    if resource in ("invoice", "appointment"):
        job = record.get("job")
        value = record.get("job_id") or (job.get("id") if isinstance(job, Mapping) else None)
        return str(value) if value else None
    return None


def estimate_ids(record: Mapping[str, Any]) -> list[str]:
    """Return the estimates a job was made from (so an approved estimate's job is ours too)."""
    ids = [record.get("original_estimate_id"), *(record.get("original_estimate_uuids") or [])]
    return [str(i) for i in ids if i]


def reference_in(record: Mapping[str, Any]) -> str | None:
    """Return our reference from the marker in a job's or an estimate's notes, if any."""
    notes: list[Any] = list(record.get("notes") or [])
    for option in record.get("options") or []:
        if isinstance(option, Mapping):
            notes += list(option.get("notes") or [])
    for note in notes:
        text = note.get("content") if isinstance(note, Mapping) else None
        found = MARKER.search(str(text or ""))
        if found:
            return found.group(1)
    return None

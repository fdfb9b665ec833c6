"""The sync's record step: the job, estimate or lead a request makes in HCP, exactly once.

Like the other steps, it does nothing when its id is stored, marks a create as sent before the
POST, and after a lost answer finds what it made before sending again (steps.py has the rules).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from .. import assignment, outbox
from ..extensions import db
from ..hcp import payloads
from ..hcp.client import HcpError, HousecallProClient
from ..models import Form, HcpCall, HcpConnection, Submission
from ..timeutil import utcnow
from .steps import SyncFailed, _mark_sent, _request

logger = logging.getLogger(__name__)


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
                outbox.queue_job_update(sub, now=utcnow())  # committed with the job's id
                db.session.commit()
                return
    customer_id, address_id = _customer_and_address(sub)
    window_label, time_zone = _note_context(sub, conn)
    ensure_assignment(client, sub, time_zone)
    body = payloads.job_body(
        _request(sub),
        customer_id=customer_id,
        address_id=address_id,
        job_type_id=job_type_id,
        lead_source=lead_source,
        tags=_record_tags(sub, conn),
        window_label=window_label,
        time_zone=time_zone,
        employee_ids=_assigned(sub),
    )
    _mark_sent(sub, "job")
    created = client.create_job(body)
    sub.hcp_job_id = created["id"]
    sub.job_work_status = created.get("work_status")
    outbox.queue_job_update(sub, now=utcnow())  # committed with the job's id
    db.session.commit()


def record_job_type(
    client: HousecallProClient, sub: Submission, conn: HcpConnection, kind: str
) -> str | None:
    """Return the job type the record carries: required for a job, optional for an estimate.

    A lead has no job type in HCP, so leads-only businesses need no job type mapping at all.

    Raises:
        SyncFailed: for a job whose service type has no HCP job type.
    """
    if kind == "lead":
        return None
    try:
        return resolve_job_type(client, sub.form, sub, conn)
    except SyncFailed:
        if kind == "job":
            raise
        return None  # an estimate without a job type is still an estimate


def ensure_record(
    client: HousecallProClient,
    sub: Submission,
    conn: HcpConnection,
    kind: str,
    job_type_id: str | None,
    lead_source: str | None,
) -> None:
    """Create what the service type asks for (job, estimate or lead) once, and store its id.

    A submission that already holds a record of any kind keeps it: a setting changed between
    two attempts never makes a second record.
    """
    if sub.hcp_job_id or sub.hcp_estimate_id or sub.hcp_lead_id:
        return
    if kind == "lead" and sub.abandoned_lead_id:
        # The unfinished draft already became this lead: the request is that lead, not a second.
        sub.hcp_lead_id = sub.abandoned_lead_id
        db.session.commit()
        return
    if kind == "estimate":
        ensure_estimate(client, sub, conn, job_type_id, lead_source)
    elif kind == "lead":
        ensure_lead(client, sub, conn, lead_source)
    else:
        ensure_job(client, sub, conn, job_type_id, lead_source)


def ensure_assignment(client: HousecallProClient, sub: Submission, time_zone: str) -> None:
    """Choose the pro once and store the choice before the record is sent.

    A resumed sync finds it stored and sends the same pro; "no pro" is stored the same way
    (the record then carries the `Needs assignment` tag).
    """
    if sub.assigned_at is not None:
        return
    if sub.schedule_kind == "booked" and sub.scheduled_start is not None:
        day = f"{sub.scheduled_start.astimezone(ZoneInfo(time_zone)):%Y%m%d}"
        with assignment.assignment_lock(client.fingerprint, day):
            _store_choice(sub, assignment.choose(client, sub, time_zone=time_zone))
    else:
        _store_choice(sub, assignment.choose(client, sub, time_zone=time_zone))


def _store_choice(sub: Submission, choice: assignment.Choice) -> None:
    sub.hcp_employee_id = choice.employee_id
    sub.hcp_employee_name = choice.name[:200]
    sub.assignment_note = choice.note[:300]
    sub.assigned_at = utcnow()
    db.session.commit()
    logger.info("Assignment for %s: %s", sub.reference, choice.employee_id or "needs assignment")


def _assigned(sub: Submission) -> list[str] | None:
    """Return the assigned pro's id as the record's assigned_employee_ids, or None."""
    return [sub.hcp_employee_id] if sub.hcp_employee_id else None


def _record_tags(sub: Submission, conn: HcpConnection) -> list[str]:
    """Return the extra tags of a job or estimate: the defaults, and `Needs assignment`."""
    tags = list(conn.default_tags or [])
    if not sub.hcp_employee_id:
        tags.append(payloads.NEEDS_ASSIGNMENT_TAG)
    return tags


DISPATCH_REFUSED = "Housecall Pro refused the dispatch"


def ensure_dispatch(client: HousecallProClient, sub: Submission) -> None:
    """Dispatch a job to its pro once, when the form says so (PUT: a repeat changes nothing)."""
    if not (sub.hcp_job_id and sub.hcp_employee_id) or sub.dispatched_at is not None:
        return
    if not sub.form.dispatch_jobs or DISPATCH_REFUSED in sub.assignment_note:
        return
    try:
        client.dispatch_job(sub.hcp_job_id, [sub.hcp_employee_id])
    except HcpError as exc:
        if exc.retryable:
            raise
        # The job exists and carries its pro: a refused dispatch (HCP's definition grants it to
        # application keys only) is noted for the office, never a failed request.
        note = f"{sub.assignment_note}; {DISPATCH_REFUSED} ({exc.status})"
        sub.assignment_note = note[:300]
        db.session.commit()
        return
    sub.dispatched_at = utcnow()
    db.session.commit()


def _customer_and_address(sub: Submission) -> tuple[str, str]:
    """Return the HCP customer and address ids every record is made for (stored by then)."""
    customer_id, address_id = sub.hcp_customer_id, sub.hcp_address_id
    assert customer_id is not None and address_id is not None, "run_steps stores them first"
    return customer_id, address_id


def _note_context(sub: Submission, conn: HcpConnection) -> tuple[str, str]:
    """Return the booking window's label and the time zone that the record's note names."""
    form = sub.form
    window = next((w for w in form.time_windows if w["id"] == sub.booking_window), None)
    return window["label"] if window else sub.booking_window, conn.time_zone or form.time_zone


def ensure_estimate(
    client: HousecallProClient,
    sub: Submission,
    conn: HcpConnection,
    job_type_id: str | None,
    lead_source: str | None,
) -> None:
    """Store the estimate id; after a create whose answer was lost, find it by our reference.

    The note we send shows in the estimate's options' notes, so listing the customer's
    estimates (GET /estimates?customer_id=) finds the one carrying "hcpform ref <reference>".
    """
    if sub.hcp_estimate_id:
        return
    customer_id, address_id = _customer_and_address(sub)
    window_label, time_zone = _note_context(sub, conn)
    if "estimate" in sub.creates_sent:
        for estimate in client.list_estimates(customer_id=customer_id):
            if payloads.estimate_has_marker(estimate, sub.reference):
                sub.hcp_estimate_id = estimate["id"]
                db.session.commit()
                return
    ensure_assignment(client, sub, time_zone)
    body = payloads.estimate_body(
        _request(sub),
        customer_id=customer_id,
        address_id=address_id,
        job_type_id=job_type_id,
        lead_source=lead_source,
        tags=_record_tags(sub, conn),
        window_label=window_label,
        time_zone=time_zone,
        employee_ids=_assigned(sub),
    )
    _mark_sent(sub, "estimate")
    created = client.create_estimate(body)
    sub.hcp_estimate_id = created["id"]
    sub.job_work_status = created.get("work_status")
    db.session.commit()


# HCP's clock and ours may differ a little: a lead made just "before" our send time still counts.
CLOCK_ALLOWANCE = timedelta(minutes=2)


def ensure_lead(
    client: HousecallProClient, sub: Submission, conn: HcpConnection, lead_source: str | None
) -> None:
    """Store the lead id; after a create whose answer was lost, find that lead without notes.

    HCP's Lead has no notes field readable through the API and GET /leads has no text search,
    so our reference cannot be read back. The rule instead: among the customer's leads
    (GET /leads?customer_id=), the earliest one that carries every tag we send and our lead
    source, was created at or after our first POST /leads for this submission (its recorded
    call, less its duration; else the submission's own creation) less CLOCK_ALLOWANCE, and is
    held by no other submission. A lead the office made by hand for this customer in those
    minutes with the same tags and source would be taken for ours: an accepted, narrow risk.
    """
    if sub.hcp_lead_id:
        return
    customer_id, address_id = _customer_and_address(sub)
    window_label, time_zone = _note_context(sub, conn)
    tags = payloads.job_tags(_request(sub), list(conn.default_tags or []))
    if "lead" in sub.creates_sent:
        since = _lead_sent_since(sub) - CLOCK_ALLOWANCE
        held = set(
            db.session.scalars(
                select(Submission.hcp_lead_id).where(
                    Submission.hcp_customer_id == sub.hcp_customer_id,
                    Submission.hcp_lead_id.is_not(None),
                    Submission.id != sub.id,
                )
            )
        )
        ours = [
            lead
            for lead in client.list_leads(customer_id=customer_id)
            if lead.get("id") not in held
            and payloads.lead_looks_ours(lead, tags=tags, lead_source=lead_source, since=since)
        ]
        if ours:
            ours.sort(key=lambda lead: str(lead.get("created_at") or ""))
            sub.hcp_lead_id = ours[0]["id"]
            db.session.commit()
            return
    body = payloads.lead_body(
        _request(sub),
        customer_id=customer_id,
        address_id=address_id,
        lead_source=lead_source,
        tags=list(conn.default_tags or []),
        window_label=window_label,
        time_zone=time_zone,
    )
    _mark_sent(sub, "lead")
    created = client.create_lead(body)
    sub.hcp_lead_id = created["id"]
    db.session.commit()


def _lead_sent_since(sub: Submission) -> datetime:
    """Return when our first POST /leads for this submission went out (as well as we know)."""
    call = db.session.scalar(
        select(HcpCall)
        .where(HcpCall.submission_id == sub.id, HcpCall.method == "POST", HcpCall.path == "/leads")
        .order_by(HcpCall.id)
        .limit(1)
    )
    if call is None:  # the worker died mid-call, before recording it
        return sub.created_at
    return call.created_at - timedelta(milliseconds=call.duration_ms)


def created_message(sub: Submission) -> str:
    """Return the "synced" line naming what was created in HCP."""
    if sub.hcp_estimate_id:
        return f"Estimate {sub.hcp_estimate_id} created in HCP"
    if sub.hcp_lead_id:
        return f"Lead {sub.hcp_lead_id} created in HCP"
    return f"Job {sub.hcp_job_id} created in HCP"


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
    emergency_type = form.emergency_job_type_id if sub.urgency == "emergency" else ""
    if emergency_type:
        if emergency_type in known:
            return emergency_type
        # An emergency must not wait on a stale setting: the service type's job type it is.
        logger.warning("%s: the emergency job type is no longer in HCP", sub.reference)
    if mapping and mapping.get("job_type_id"):
        mapped: str = mapping["job_type_id"]
        if mapped in known:
            return mapped
        raise SyncFailed(
            f"The HCP job type mapped to '{sub.service_type}' no longer exists in Housecall Pro. "
            "Choose another one in the form settings, then retry."
        )
    by_name: dict[str, str] = {(jt.get("name") or "").strip().lower(): jt["id"] for jt in job_types}
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

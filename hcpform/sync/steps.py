"""The sync's steps: customer → address → job, estimate or lead, each idempotent and stored at once.

Each step does nothing when its id is already stored, and after a create whose answer was lost
(timeout, dropped connection, worker killed) looks for what it made before sending it again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import func, or_, select

from .. import formdefs
from ..extensions import db
from ..hcp import payloads
from ..hcp.client import HousecallProClient
from ..hcp.errors import HcpTransientError
from ..models import Draft, Form, HcpCall, HcpConnection, Submission
from ..people import shared_answer
from ..timeutil import utcnow

logger = logging.getLogger(__name__)


class SyncFailed(Exception):
    """A permanent problem on our side (e.g. a missing mapping); the message is for a person."""


def run_steps(client: HousecallProClient, sub: Submission, conn: HcpConnection) -> None:
    """Run the steps in order; each one does nothing when its id is already stored."""
    missing = formdefs.missing_required_keys(sub.form.definition)
    if missing:
        raise SyncFailed(formdefs.missing_mappings_message(missing))
    kind = formdefs.record_kind(sub.form.service_types, sub.service_type)
    job_type_id = record_job_type(client, sub, conn, kind)
    lead_source = resolve_lead_source(client, sub, conn)
    with person_lock(sub):
        found = ensure_customer(client, sub, conn, lead_source)
        ensure_address(client, sub, found)
    ensure_record(client, sub, conn, kind, job_type_id, lead_source)


@contextmanager
def person_lock(sub: Submission) -> Iterator[None]:
    """Hold this person's lock (by phone and by email) while their customer and address are made.

    Two submissions of one new person synced at the same moment by two workers would otherwise
    both find no customer, and both create one. The Redis keys are HMACs: no phone or email.

    Raises:
        HcpTransientError: when another run holds it too long (the sync is retried later).
    """
    from ..extensions import get_redis
    from ..validation import phone_digits

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
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """Look the person up by phone, then by email; return (match, rule, possible duplicate id).

    A match is the mobile number, or a home/work number or the email together with the last
    name (never a name alone, never an email alone). A customer that shares the email or a
    number without matching is returned as the possible duplicate, so that the office can merge.

    The wizard already asked HCP the same (people.lookup_customer): its answer is used instead
    of searching again while fresh and made for this phone, email and last name
    (`_reuse_wizard_answer`).
    """
    reused = _reuse_wizard_answer(sub)
    if reused is not None:
        return reused
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


def _reuse_wizard_answer(
    sub: Submission,
) -> tuple[dict[str, Any] | None, str | None, str | None] | None:
    """Return find_customer's answer from the wizard's lookup when it may stand, else None.

    Never after our own customer create was sent (the lookup predates it). A match is checked
    again against the submission's values; a "no match" is not reused once another submission
    of the same phone or email has got an HCP customer since the lookup (it may be this person).
    """
    if "customer" in sub.creates_sent or sub.draft_id is None:
        return None
    draft = db.session.get(Draft, sub.draft_id)
    answer = shared_answer(
        draft.lookup if draft is not None else None,
        phone=sub.phone,
        email=sub.email or "",
        last_name=sub.last_name,
        now=utcnow(),
    )
    if answer is None:
        return None
    customer = answer.get("customer")
    if isinstance(customer, dict) and customer.get("id"):
        rule = payloads.submission_matches(customer, _request(sub))
        if not rule:
            return None
        logger.info("🏠 Customer lookup result: the wizard's answer of %s reused", answer["at"])
        return customer, rule, None
    since = datetime.fromisoformat(answer["at"])
    same_person = [Submission.phone == sub.phone]
    if sub.email:
        same_person.append(func.lower(Submission.email) == sub.email.strip().lower())
    newer = db.session.scalar(
        select(func.count())
        .select_from(Submission)
        .where(
            Submission.id != sub.id,
            or_(*same_person),
            Submission.hcp_customer_id.is_not(None),
            Submission.updated_at >= since,
        )
    )
    if newer:
        return None
    logger.info("🏠 Customer lookup result: the wizard's answer of %s reused", answer["at"])
    return None, None, answer.get("candidate")


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
    customer_id = sub.hcp_customer_id
    assert customer_id is not None, "run_steps stores the customer first"
    addresses = (customer or {}).get("addresses")
    if addresses is None or "address" in sub.creates_sent:
        addresses = client.list_customer_addresses(customer_id)
    match = payloads.find_address(addresses, _request(sub))
    if match is not None:
        sub.hcp_address_id = match["id"]
        sub.address_reused = "address" not in sub.creates_sent
        logger.info("📍 Address validation result: reusing address %s", match["id"])
        db.session.commit()
        return
    _mark_sent(sub, "address")
    created = client.create_customer_address(customer_id, payloads.address_body(_request(sub)))
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
    customer_id, address_id = sub.hcp_customer_id, sub.hcp_address_id
    assert customer_id is not None and address_id is not None, "run_steps stores them first"
    body = payloads.job_body(
        _request(sub),
        customer_id=customer_id,
        address_id=address_id,
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
    if kind == "estimate":
        ensure_estimate(client, sub, conn, job_type_id, lead_source)
    elif kind == "lead":
        ensure_lead(client, sub, conn, lead_source)
    else:
        ensure_job(client, sub, conn, job_type_id, lead_source)


def _note_context(sub: Submission, conn: HcpConnection) -> dict[str, str]:
    """Return the booking window's label and the time zone that the record's note names."""
    form = sub.form
    window = next((w for w in form.time_windows if w["id"] == sub.booking_window), None)
    return {
        "window_label": window["label"] if window else sub.booking_window,
        "time_zone": conn.time_zone or form.time_zone,
    }


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
    customer_id, address_id = sub.hcp_customer_id, sub.hcp_address_id
    assert customer_id is not None and address_id is not None, "run_steps stores them first"
    if "estimate" in sub.creates_sent:
        for estimate in client.list_estimates(customer_id=customer_id):
            if payloads.estimate_has_marker(estimate, sub.reference):
                sub.hcp_estimate_id = estimate["id"]
                db.session.commit()
                return
    body = payloads.estimate_body(
        _request(sub),
        customer_id=customer_id,
        address_id=address_id,
        job_type_id=job_type_id,
        lead_source=lead_source,
        tags=list(conn.default_tags or []),
        **_note_context(sub, conn),
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
    customer_id, address_id = sub.hcp_customer_id, sub.hcp_address_id
    assert customer_id is not None and address_id is not None, "run_steps stores them first"
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
        **_note_context(sub, conn),
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

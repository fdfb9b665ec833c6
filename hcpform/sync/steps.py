"""The sync's first steps: the person's customer and service address, under the person's lock.

Each step does nothing when its id is already stored, and after a create whose answer was lost
(timeout, dropped connection, worker killed) looks for what it made before sending it again.
The record (job, estimate or lead) comes after, in records.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import func, or_, select

from ..extensions import db
from ..hcp import matching, payloads
from ..hcp.client import HousecallProClient
from ..hcp.errors import HcpTransientError
from ..hcp.types import ServiceRequest
from ..models import Draft, HcpConnection, Submission
from ..people import shared_answer
from ..timeutil import utcnow

logger = logging.getLogger(__name__)


class SyncFailed(Exception):
    """A permanent problem on our side (e.g. a missing mapping); the message is for a person."""


@contextmanager
def person_lock(sub: Submission) -> Iterator[None]:
    """Hold this person's lock (by phone and by email) while their customer and address are made.

    Two submissions of one new person synced at the same moment by two workers would otherwise
    both find no customer, and both create one. The Redis keys are HMACs: no phone or email.

    Raises:
        HcpTransientError: when another run holds it too long (the sync is retried later).
    """
    from ..extensions import get_redis

    secret = str(current_app.config["SECRET_KEY"]).encode()
    values = {matching.phone_e164(sub.phone), (sub.email or "").strip().lower()} - {""}
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


def _request(sub: Submission) -> ServiceRequest:
    """Return the submission's values as the plain request the payload builders take."""
    return ServiceRequest.of(sub)


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
    for query in (matching.phone_query(sub.phone), sub.email):
        if not query:
            continue
        result = client.search_customers(query, page_size=50)
        for customer in result.get("customers", []):
            rule = matching.submission_matches(customer, _request(sub))
            if rule:
                return customer, rule, None
            if candidate is None and matching.possible_duplicate(customer, _request(sub)):
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
        rule = matching.submission_matches(customer, _request(sub))
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
        differences = {} if ours else matching.typed_differences(customer, _request(sub))
        sub.typed_differences = matching.differences_note(differences)
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
    address = matching.find_address(created.get("addresses") or [], _request(sub))
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
    match = matching.find_address(addresses, _request(sub))
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

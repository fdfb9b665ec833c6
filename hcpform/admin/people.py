"""A person's data on request (GDPR/CCPA): find it by email or phone, export it, erase it.

Erasing covers this database only. Housecall Pro keeps its own copy (customer, address, job),
which the business deletes in HCP itself; the admin page says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from .. import formdefs, outbox, photos, validation
from ..extensions import db, rowcount
from ..models import (
    AbandonedRequest,
    Draft,
    Form,
    HcpCall,
    OutboxMessage,
    OutOfAreaRequest,
    Status,
    Submission,
    SyncAttempt,
)
from .audit import person_tag

ERASED = "Erased"
# Columns never exported: credentials, not personal data.
SECRET_COLUMNS = {"token", "lease_token"}
# Submission columns that hold what the person typed; blanked on erasure.
PERSONAL_TEXT = (
    "email", "phone", "street", "street_line_2", "company", "description",
    "special_instructions", "referrer", "landing_url", "click_id", "utm_term", "utm_content",
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    """Whom to look for: a normalised email or an E.164 phone."""

    email: str = ""
    phone: str = ""

    @property
    def tag(self) -> str:
        """Return the tombstone kept in the audit log instead of the value."""
        return person_tag(self.email or self.phone)


def identify(text: str) -> Person:
    """Return the person an email or phone typed by an admin designates.

    Raises:
        validation.Invalid: when it is neither an email nor a phone number.
    """
    text = (text or "").strip()
    if "@" in text:
        return Person(email=validation.parse_email(text).lower())
    try:
        return Person(phone=validation.parse_phone(text))
    except validation.Invalid as exc:
        raise validation.Invalid("Enter an email address or a phone number.") from exc


@dataclass
class Found:
    """Everything stored about a person."""

    submissions: list[Submission] = field(default_factory=list)
    drafts: list[Draft] = field(default_factory=list)
    out_of_area: list[OutOfAreaRequest] = field(default_factory=list)
    calls: list[HcpCall] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Return True when nothing was found."""
        return not (self.submissions or self.drafts or self.out_of_area)


def _answer_names(key: str) -> set[str]:
    """Return the field names that hold this HCP key in any form (drafts store answers by name)."""
    names = {key}
    for definition in db.session.scalars(select(Form.definition)):
        names.update(
            f["name"] for _, f in formdefs.iter_fields(definition) if f.get("hcp_key") == key
        )
    return names


def find(person: Person) -> Found:
    """Return the submissions, drafts, out-of-area requests and HCP calls about this person."""
    if person.email:
        sub_match = func.lower(Submission.email) == person.email
        draft_match = [
            func.lower(Draft.answers[name].as_string()) == person.email
            for name in _answer_names("customer_email")
        ]
    else:
        sub_match = Submission.phone == person.phone
        draft_match = [
            Draft.answers[name].as_string() == person.phone
            for name in _answer_names("customer_phone")
        ] + [Draft.lookup["phone"].as_string() == person.phone]
    subs = list(db.session.scalars(select(Submission).where(sub_match).order_by(Submission.id)))
    draft_ids = [s.draft_id for s in subs if s.draft_id is not None]
    if draft_ids:
        draft_match.append(Draft.id.in_(draft_ids))
    drafts = list(db.session.scalars(select(Draft).where(or_(*draft_match)).order_by(Draft.id)))
    oar: list[OutOfAreaRequest] = []
    if person.email:
        oar = list(
            db.session.scalars(
                select(OutOfAreaRequest)
                .where(func.lower(OutOfAreaRequest.email) == person.email)
                .order_by(OutOfAreaRequest.id)
            )
        )
    calls: list[HcpCall] = []
    if subs:
        calls = list(
            db.session.scalars(
                select(HcpCall)
                .where(HcpCall.submission_id.in_([s.id for s in subs]))
                .order_by(HcpCall.id)
            )
        )
    return Found(subs, drafts, oar, calls)


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _row(obj: Any) -> dict[str, Any]:
    return {
        col.key: _plain(getattr(obj, col.key))
        for col in obj.__table__.columns
        if col.key not in SECRET_COLUMNS
    }


def _abandoned(drafts: list[Draft]) -> list[AbandonedRequest]:
    """Return the abandoned-request rows of these drafts."""
    if not drafts:
        return []
    return list(
        db.session.scalars(
            select(AbandonedRequest)
            .where(AbandonedRequest.draft_id.in_([d.id for d in drafts]))
            .order_by(AbandonedRequest.id)
        )
    )


def export(person: Person, found: Found, *, now: datetime) -> dict[str, Any]:
    """Return everything stored about the person as JSON-ready data."""
    attempts: dict[int, list[dict[str, Any]]] = {}
    if found.submissions:
        for attempt in db.session.scalars(
            select(SyncAttempt)
            .where(SyncAttempt.submission_id.in_([s.id for s in found.submissions]))
            .order_by(SyncAttempt.id)
        ):
            attempts.setdefault(attempt.submission_id, []).append(_row(attempt))
    return {
        "generated_at": now.isoformat(),
        "searched_for": {"email": person.email} if person.email else {"phone": person.phone},
        "note": (
            "This is the data the request form keeps. Housecall Pro holds its own copy of the "
            "customer, address and job, which is exported and deleted in Housecall Pro."
        ),
        "submissions": [
            {**_row(s), "sync_attempts": attempts.get(s.id, [])} for s in found.submissions
        ],
        "drafts": [_row(d) for d in found.drafts],
        # Unfinished requests: their resume link's token is a secret, left out like the key.
        "abandoned_requests": [
            {k: v for k, v in _row(a).items() if k not in ("resume_token", "lease_token")}
            for a in _abandoned(found.drafts)
        ],
        "out_of_area_requests": [_row(o) for o in found.out_of_area],
        "hcp_calls": [_row(c) for c in found.calls],
        "photos": [
            _row(p)
            for p in photos.of_people(
                submission_ids=[s.id for s in found.submissions],
                draft_ids=[d.id for d in found.drafts],
            )
        ],
        "emails": [
            {k: v for k, v in _row(m).items() if k != "lease_token"}
            for s in found.submissions
            for m in outbox.for_submission(s.id)
        ],
    }


def erase(found: Found, *, now: datetime) -> dict[str, int]:
    """Anonymise the person's submissions; delete their drafts, photos and out-of-area requests.

    Sync records keep their ids and statuses, but HCP call messages are blanked. A submission
    not yet synced becomes "handled manually", so nothing erased is ever sent to HCP.
    The caller commits.
    """
    sub_ids = [s.id for s in found.submissions]
    emails = 0
    for sub in found.submissions:
        sub.first_name = ERASED
        sub.last_name = ERASED
        for name in PERSONAL_TEXT:
            setattr(sub, name, "")
        sub.answers = {}
        sub.draft_id = None
        if sub.status != Status.SYNCED:
            sub.status = Status.MANUAL
            sub.next_attempt_at = None
        sub.manual_note = f"Personal data erased on request on {now:%Y-%m-%d}."
        sub.next_follow_up = None  # no follow-up of an erased request
        sub.updated_at = now
    db.session.flush()
    if sub_ids:
        db.session.execute(
            update(HcpCall).where(HcpCall.submission_id.in_(sub_ids)).values(message="")
        )
        # Their emails (sent or not) go: the rows hold an address and render from the answers.
        emails = rowcount(
            db.session.execute(
                delete(OutboxMessage).where(OutboxMessage.submission_id.in_(sub_ids))
            )
        )
    draft_ids = [d.id for d in found.drafts]
    photo_count = photos.erase(submission_ids=sub_ids, draft_ids=draft_ids)  # rows, then files
    if draft_ids:
        # A draft may belong to a submission made under other details: unlink it first.
        db.session.execute(
            update(Submission).where(Submission.draft_id.in_(draft_ids)).values(draft_id=None)
        )
        db.session.execute(delete(AbandonedRequest).where(AbandonedRequest.draft_id.in_(draft_ids)))
        db.session.execute(delete(Draft).where(Draft.id.in_(draft_ids)))
    oar_ids = [o.id for o in found.out_of_area]
    if oar_ids:
        db.session.execute(delete(OutOfAreaRequest).where(OutOfAreaRequest.id.in_(oar_ids)))
    return {
        "submissions": len(sub_ids),
        "drafts": len(draft_ids),
        "out_of_area_requests": len(oar_ids),
        "hcp_calls": len(found.calls),
        "photos": photo_count,
        "emails": emails,
    }

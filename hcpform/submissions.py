"""Domain operations on drafts and submissions. They add and flush; the caller commits."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from . import availability, formdefs, outbox, photos, preferences, validation
from .extensions import db, rowcount
from .models import Draft, Form, FunnelCount, OutOfAreaRequest, Status, Submission
from .timeutil import add_months

# The draft answer that holds "repeat this visit" (ticked on the step that picks the time).
REPEAT_ANSWER = "_repeat"
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U/V confusion
ATTRIBUTION_LIMIT = 1000


def new_token() -> str:
    """Return an opaque, unguessable draft token (192 bits)."""
    return secrets.token_urlsafe(24)


def make_reference() -> str:
    """Return a short human reference like HCP-7K2Q9."""
    return "HCP-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(5))


def draft_ttl() -> timedelta:
    """Return how long a draft lives after its last change."""
    return timedelta(days=int(current_app.config["DRAFT_TTL_DAYS"]))


def load_draft(form: Form, token: str | None, *, now: datetime) -> Draft | None:
    """Return the live draft with this token for this form, or None."""
    if not token or len(token) > 64:
        return None
    draft = db.session.scalar(select(Draft).where(Draft.token == token))
    if draft is None or draft.form_id != form.id or draft.expires_at <= now:
        return None
    return draft


def start_draft(
    form: Form,
    *,
    now: datetime,
    source: str,
    attribution: dict[str, str],
    prefill: dict[str, str],
) -> Draft:
    """Add a new draft carrying the first page's attribution and allowed prefills."""
    clean_attr = {}
    for key, value in attribution.items():
        try:  # attribution is a nicety: a value we can't keep is dropped, not an error
            text = validation.clean_text(value, max_length=ATTRIBUTION_LIMIT)
        except validation.Invalid:
            continue
        if text:
            clean_attr[key] = text
    draft = Draft(
        token=new_token(),
        form_id=form.id,
        answers=dict(prefill),
        completed_steps=[],
        furthest_step=0,
        attribution=clean_attr,
        lookup={},
        source=source,
        started_at=now,
        expires_at=now + draft_ttl(),
    )
    db.session.add(draft)
    db.session.flush()
    return draft


def in_service_area(form: Form, zip_code: str) -> bool:
    """Return True when the form serves this ZIP (every ZIP when no list is configured)."""
    return not form.service_area_zips or zip_code[:5] in set(form.service_area_zips)


def contact_of(form: Form, answers: dict[str, Any]) -> tuple[str, str]:
    """Return the (phone, email) a draft's answers hold; saved answers are already valid."""
    names = {
        f["hcp_key"]: f["name"]
        for _, f in formdefs.iter_fields(form.definition)
        if f.get("hcp_key") in ("customer_phone", "customer_email")
    }
    phone = str(answers.get(names.get("customer_phone", "customer_phone")) or "")
    email = str(answers.get(names.get("customer_email", "customer_email")) or "")
    return phone, email


@dataclass
class StepResult:
    """What saving a step decided: go on, or stop at the out-of-area page."""

    out_of_area: bool = False


def save_step(
    draft: Draft, form: Form, step_slug: str, answers: dict[str, Any], *, now: datetime
) -> StepResult:
    """Store a step's normalised answers on the draft and mark the step completed."""
    merged = dict(draft.answers or {})
    merged.update(answers)
    zip_code = merged.get("zip")
    if "zip" in answers and zip_code:
        _, info = validation.parse_zip(zip_code)
        if not in_service_area(form, zip_code):
            draft.answers = merged
            draft.updated_at = now
            return StepResult(out_of_area=True)
        # City and state the contact step shows until the person types their own.
        merged["_prefill"] = {"city": info.city, "state": info.state}
    if "_marketing_consent" in answers:  # the time it was first ticked, until it is unticked
        ticked = bool(merged.get("_marketing_consent"))
        since = merged.get("_marketing_consent_at") or now.isoformat()
        merged["_marketing_consent_at"] = since if ticked else None
    draft.answers = merged
    if "_contact_consent" in answers:
        consent = bool(merged.get("_contact_consent")) and any(contact_of(form, merged))
        draft.contact_consent_at = (draft.contact_consent_at or now) if consent else None
    slugs = formdefs.step_slugs(form.definition)
    completed = [s for s in slugs if s in set(draft.completed_steps or []) | {step_slug}]
    draft.completed_steps = completed
    draft.furthest_step = max(draft.furthest_step or 0, len(completed))
    draft.updated_at = now
    # Never sooner than it was: an abandoned draft's resume link keeps its longer life.
    draft.expires_at = max(draft.expires_at, now + draft_ttl())
    return StepResult()


def forget_window(draft: Draft, form: Form, step_slug: str, *, now: datetime) -> None:
    """Clear the window a draft chose and reopen its step; every other answer stays."""
    date_name, time_name = formdefs.booking_fields(formdefs.get_step(form.definition, step_slug))
    answers = dict(draft.answers or {})
    for name in (date_name, time_name, "_schedule_kind", "_window_label", "_window_when"):
        if name:
            answers.pop(name, None)
    draft.answers = answers
    draft.completed_steps = [s for s in draft.completed_steps or [] if s != step_slug]
    draft.updated_at = now


def as_preference(draft: Draft) -> None:
    """Keep the draft's window as a preferred time (HCP could not confirm it was still open)."""
    draft.answers = {**(draft.answers or {}), "_schedule_kind": availability.PREFERENCE}


def record_out_of_area(form: Form, zip_code: str, email: str, *, now: datetime) -> None:
    """Keep an out-of-area request (with an email when given) for expansion planning."""
    db.session.add(
        OutOfAreaRequest(form_id=form.id, zip=zip_code[:10], email=email, created_at=now)
    )


def count_event(form: Form, event: str, *, now: datetime) -> None:
    """Add one to today's counter of a funnel event (e.g. a first-page view)."""
    day = now.date()

    def bump() -> int:
        return rowcount(
            db.session.execute(
                update(FunnelCount)
                .where(
                    FunnelCount.form_id == form.id,
                    FunnelCount.day == day,
                    FunnelCount.event == event,
                )
                .values(count=FunnelCount.count + 1)
            )
        )

    if bump() == 0:
        try:
            with db.session.begin_nested():
                db.session.add(FunnelCount(form_id=form.id, day=day, event=event, count=1))
        except IntegrityError:  # another request created today's row first
            bump()


def existing_submission(draft: Draft) -> Submission | None:
    """Return the submission already made from this draft, if any."""
    return db.session.scalar(select(Submission).where(Submission.draft_id == draft.id))


def build_submission(draft: Draft, form: Form, *, now: datetime, status: str) -> Submission:
    """Return a new Submission holding the draft's normalised answers (not yet added)."""
    a = dict(draft.answers or {})
    by_key = {
        f["hcp_key"]: f["name"]
        for _, f in formdefs.iter_fields(form.definition)
        if f.get("hcp_key")
    }

    def key(hcp_key: str, default: str = "") -> str:
        return str(a.get(by_key.get(hcp_key, hcp_key), default) or default)

    booking_date = date.fromisoformat(key("booking_date")) if key("booking_date") else None
    window_id = key("booking_time")
    window = next((w for w in form.time_windows if w["id"] == window_id), None)
    start = end = None
    if booking_date and window:
        start, end = validation.window_bounds(booking_date, window, form.time_zone)
    hcp_window = availability.parse_window_id(window_id) if window is None else None
    if hcp_window is not None:
        # One of HCP's windows: its times are the window's; the label is what the notes show.
        start, end = hcp_window.start, hcp_window.end
        window_id = str(a.get("_window_label") or "")[:32]
    kind = availability.BOOKED if a.get("_schedule_kind") == availability.BOOKED else "preference"
    first_time = key("isFirstTimeClient")
    # Asked on the step that picks the time, and checked again: the service type may have
    # changed since, or stopped repeating in the form's settings.
    repeat = formdefs.repeat_frequency(form.service_types, key("booking_type"))
    repeat = repeat if a.get(REPEAT_ANSWER) and repeat else ""
    attr = draft.attribution or {}
    method = str(a.get("_contact_method") or "")
    marketing_at = a.get("_marketing_consent_at") if a.get("_marketing_consent") else None
    public_answers = {k: v for k, v in a.items() if not k.startswith("_")}
    return Submission(
        reference=make_reference(),
        form_id=form.id,
        draft_id=draft.id,
        status=status,
        created_at=now,
        first_name=key("customer_fname"),
        last_name=key("customer_lname"),
        phone=key("customer_phone"),
        email=key("customer_email"),
        street=key("street"),
        street_line_2=str(a.get("street_line_2", "") or ""),
        city=key("city"),
        state=key("state"),
        zip=key("zip"),
        country=key("country", "US") or "US",
        customer_type=key("customerType", "residential"),
        company=str(a.get("company", "") or ""),
        is_first_time_client=None if not first_time else first_time == "true",
        service_type=key("booking_type"),
        urgency=str(a.get("urgency", "") or ""),
        description=key("booking_reason"),
        special_instructions=str(a.get("special_instructions", "") or ""),
        booking_date=booking_date,
        booking_window=window_id,
        scheduled_start=start,
        scheduled_end=end,
        schedule_kind=kind if start else "preference",
        repeat_every=repeat,
        next_follow_up=first_follow_up(
            repeat, booking_date or validation.today_in(form.time_zone, now)
        ),
        asap=bool(a.get("_asap")),
        terms_version_id=form.current_terms.id if form.current_terms else None,
        answers=public_answers,
        language=str(a.get("_lang") or form.language or "en")[:8],
        contact_method=method if method in preferences.METHODS else "",
        marketing_consent=bool(marketing_at),
        marketing_consent_at=datetime.fromisoformat(marketing_at) if marketing_at else None,
        marketing_consent_version=preferences.consent_version() if marketing_at else "",
        utm_source=attr.get("utm_source", "")[:200],
        utm_medium=attr.get("utm_medium", "")[:200],
        utm_campaign=attr.get("utm_campaign", "")[:200],
        utm_term=attr.get("utm_term", "")[:200],
        utm_content=attr.get("utm_content", "")[:200],
        click_id=(attr.get("gclid") or attr.get("gbraid") or attr.get("wbraid") or "")[:300],
        referrer=attr.get("referrer", "")[:1000],
        landing_url=attr.get("landing_url", "")[:1000],
        source=draft.source,
    )


def first_follow_up(frequency: str, visit_day: date) -> date | None:
    """Return the day the first follow-up of a repeating visit falls due (None: no repeat)."""
    months = formdefs.REPEAT_MONTHS.get(frequency)
    return add_months(visit_day, months) if months else None


def spam_reason(draft: Draft, *, honeypot: str, now: datetime) -> str:
    """Return why a submission looks automated, or '' when it looks human."""
    if honeypot:
        return "hidden field filled in"
    elapsed = (now - draft.started_at).total_seconds()
    if elapsed < float(current_app.config["SPAM_MIN_SECONDS"]):
        return f"sent {elapsed:.1f} s after the first step"
    return ""


def submit(draft: Draft, form: Form, *, now: datetime, honeypot: str = "") -> Submission:
    """Turn a complete draft into one submission; a second call returns the same submission.

    Raises:
        IntegrityError: only if the unique reference collided twice (practically never).
    """
    found = existing_submission(draft)
    if found is not None:
        return found
    reason = spam_reason(draft, honeypot=honeypot, now=now)
    status = Status.QUARANTINED if reason else Status.PENDING
    for _ in range(3):
        submission = build_submission(draft, form, now=now, status=status)
        submission.spam_reason = reason
        try:
            with db.session.begin_nested():
                db.session.add(submission)
        except IntegrityError:
            # A double-click already made it (unique draft_id), or the reference collided.
            found = existing_submission(draft)
            if found is not None:
                return found
            continue
        draft.submitted_at = now
        draft.updated_at = now
        photos.hand_over(draft, submission)
        if status == Status.PENDING:  # in this transaction: committed with the submission
            outbox.queue_submitted(submission, form, now=now)
        return submission
    raise IntegrityError("submission", {}, Exception("could not pick a unique reference"))

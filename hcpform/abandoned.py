"""Abandoned requests: drafts left idle with a way to reach the person and their consent.

A draft is abandoned when the contact step was saved with a valid phone or email and the
"you may contact me if I don't finish" box ticked (`Draft.contact_consent_at`), it was never
submitted, and nothing changed on it for its form's `abandoned_after_minutes`. `detect` gives
each one an `AbandonedRequest` row with its own resume token and keeps the draft (and so the
resume link) ABANDONED_KEEP_DAYS after its last change; `erase_expired` erases the personal
answers of every draft once it expires. Sending one to HCP as a lead is sync/abandoned.py's.
These functions flush or commit their own small batches; they never call HCP.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, exists, select, update
from sqlalchemy.exc import IntegrityError

from . import formdefs, photos, validation
from .extensions import db
from .models import AbandonedRequest, Draft, Form
from .timeutil import utcnow

logger = logging.getLogger(__name__)

# What an expired draft keeps: how far it got and where it came from, nothing personal.
KEPT_ATTRIBUTION = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
BATCH = 500


def keep_for() -> timedelta:
    """Return how long an abandoned draft (and its resume link) lives after its last change."""
    return timedelta(days=int(current_app.config["ABANDONED_KEEP_DAYS"]))


def detect(*, now: datetime) -> int:
    """Give every newly abandoned draft its row and resume token; commit; return how many."""
    found = 0
    for form in db.session.scalars(select(Form).order_by(Form.id)):
        cutoff = now - timedelta(minutes=max(1, int(form.abandoned_after_minutes or 60)))
        drafts = db.session.scalars(
            select(Draft)
            .where(
                Draft.form_id == form.id,
                Draft.contact_consent_at.is_not(None),
                Draft.submitted_at.is_(None),
                Draft.erased_at.is_(None),
                Draft.expires_at > now,
                Draft.updated_at <= cutoff,
                ~exists().where(AbandonedRequest.draft_id == Draft.id),
            )
            .order_by(Draft.id)
            .limit(BATCH)
        ).all()
        for draft in drafts:
            found += _mark_abandoned(draft, now=now)
    return found


def _mark_abandoned(draft: Draft, *, now: datetime) -> int:
    """Add the draft's row (once, even with two sweeps at once) and keep the draft longer."""
    try:
        with db.session.begin_nested():
            db.session.add(
                AbandonedRequest(
                    draft_id=draft.id,
                    form_id=draft.form_id,
                    detected_at=now,
                    resume_token=secrets.token_urlsafe(24),
                    lead_state="",
                    creates_sent="",
                    attempts=0,
                    last_error="",
                )
            )
    except IntegrityError:  # another sweep marked it first
        db.session.rollback()
        return 0
    keep_until = max(draft.expires_at, draft.updated_at + keep_for())
    # updated_at is the person's last activity: written back as it is, never bumped here.
    db.session.execute(
        update(Draft)
        .where(Draft.id == draft.id)
        .values(expires_at=keep_until, updated_at=draft.updated_at)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    logger.info("Draft %s is an abandoned request", draft.id)
    return 1


def erase_expired(*, now: datetime) -> int:
    """Erase the personal answers of every draft past its expiry; commit; return how many.

    The row stays (the funnel counts it) with its steps, times and campaign; its answers, the
    returning-customer lookup, any landing page or referrer, and the photos it never sent are
    gone.
    """
    erased = 0
    while True:
        drafts = db.session.scalars(
            select(Draft)
            .where(Draft.expires_at <= now, Draft.erased_at.is_(None))
            .order_by(Draft.id)
            .limit(BATCH)
        ).all()
        if not drafts:
            return erased
        for draft in drafts:
            kept = {k: v for k, v in (draft.attribution or {}).items() if k in KEPT_ATTRIBUTION}
            db.session.execute(
                update(Draft)
                .where(Draft.id == draft.id, Draft.erased_at.is_(None))
                .values(
                    answers={},
                    lookup={},
                    attribution=kept,
                    erased_at=now,
                    updated_at=draft.updated_at,
                )
                .execution_options(synchronize_session=False)
            )
        photos.erase(submission_ids=[], draft_ids=[d.id for d in drafts], unsent_only=True)
        db.session.commit()
        db.session.expire_all()
        erased += len(drafts)


def listed(*, now: datetime, form_id: int | None = None) -> Select[AbandonedRequest]:
    """Return the query of abandoned requests still open: not submitted, not expired."""
    stmt = (
        select(AbandonedRequest)
        .join(Draft, Draft.id == AbandonedRequest.draft_id)
        .where(Draft.submitted_at.is_(None), Draft.erased_at.is_(None), Draft.expires_at > now)
        .order_by(Draft.updated_at.desc(), AbandonedRequest.id.desc())
    )
    if form_id is not None:
        stmt = stmt.where(AbandonedRequest.form_id == form_id)
    return stmt


@dataclass(frozen=True)
class Progress:
    """How far a draft got: the step it stopped at (1-based), of how many, and its title."""

    number: int
    total: int
    title: str

    @property
    def label(self) -> str:
        """Return e.g. "Step 5 of 6: About you"."""
        if self.number > self.total:
            return "Checking the answers (every step done)"
        return f"Step {self.number} of {self.total}: {self.title}"


def progress(form: Form, draft: Draft) -> Progress:
    """Return the step the person would land on: the first one not yet completed."""
    steps = form.definition.get("steps", [])
    done = set(draft.completed_steps or [])
    for i, step in enumerate(steps, start=1):
        if step["slug"] not in done:
            return Progress(i, len(steps), str(step.get("title") or step["slug"]))
    return Progress(len(steps) + 1, len(steps), "Review")


def answer(form: Form, draft: Draft, hcp_key: str) -> str:
    """Return the draft's answer for the field mapped to this HCP key ('' when none)."""
    answers = draft.answers or {}
    for _, field in formdefs.iter_fields(form.definition):
        if field.get("hcp_key") == hcp_key and answers.get(field["name"]) not in (None, ""):
            return str(answers[field["name"]])
    return str(answers.get(hcp_key) or "")


def filled_in(form: Form, draft: Draft) -> list[tuple[str, str]]:
    """Return (label, value) of every answer given so far, as the review page words them."""
    answers = draft.answers or {}
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _, field in formdefs.iter_fields(form.definition):
        name = field["name"]
        value: Any = answers.get(name)
        if name in seen or value in (None, "", False) or field["type"] == "terms":
            continue
        seen.add(name)
        if field["type"] in ("select", "radio"):
            value = dict(formdefs.choices_for(field, form)).get(str(value), value)
        elif field["type"] == "tel":
            value = validation.format_phone(str(value))
        rows.append((str(field["label"]).replace(" (optional)", ""), str(value)))
    return rows


def resume_path(form: Form, row: AbandonedRequest) -> str:
    """Return the resume link's path (the wizard's /f/<slug>/resume/<token>)."""
    return f"/f/{form.slug}/resume/{row.resume_token}"


def find_for_resume(form: Form, token: str, *, now: datetime) -> Draft | None:
    """Return the live draft a resume token opens for this form, or None."""
    if not token or len(token) > 64:
        return None
    row = db.session.scalar(select(AbandonedRequest).where(AbandonedRequest.resume_token == token))
    if row is None or row.form_id != form.id:
        return None
    draft = db.session.get(Draft, row.draft_id)
    if draft is None or draft.erased_at is not None or draft.expires_at <= now:
        return None
    return draft


def age_text(since: datetime, *, now: datetime | None = None) -> str:
    """Return a short age like "45 min", "3 h" or "2 days"."""
    seconds = max(0.0, ((now or utcnow()) - since).total_seconds())
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"

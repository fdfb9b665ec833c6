"""Recurring maintenance: the follow-up requests of a visit that repeats, made when they fall due.

A request whose homeowner asked for the visit to repeat keeps the day its next follow-up falls
due (`Submission.next_follow_up`: the visit's day, or the submit day for a request with no date,
plus the frequency). The sweep (jobs.sweep) calls `create_due_follow_ups`: each due one becomes
a new pending submission that copies the person, the address and the service, points at the
original (`follow_up_of`), and is then synced like any other (an unscheduled job tagged
"Recurring maintenance"). Exactly once: a sweep first moves the original's next day on with a
conditional update (only one sweep can), in the same transaction as the insert, and the
database refuses a second follow-up of one original for one day (uq_submission_follow_up).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from . import formdefs, validation
from .extensions import db, rowcount
from .models import Status, Submission
from .submissions import make_reference
from .timeutil import add_months

logger = logging.getLogger(__name__)
BATCH = 200  # originals looked at per sweep; the rest wait for the next one
# Copied from the original onto each follow-up: who, where and what.
COPIED = (
    "form_id", "first_name", "last_name", "phone", "email", "street", "street_line_2", "city",
    "state", "zip", "country", "customer_type", "company", "service_type", "description",
    "special_instructions", "language", "source",
)  # fmt: skip


def visit_day(original: Submission) -> date:
    """Return the day a series counts from: the visit's (booked or preferred) or the submit day."""
    if original.booking_date is not None:
        return original.booking_date
    return validation.today_in(original.form.time_zone, original.created_at)


def following_due(original: Submission, due: date) -> date:
    """Return the due day after `due`, counted from the visit day (Jan 31 → Feb 28 → Mar 31)."""
    months = formdefs.REPEAT_MONTHS[original.repeat_every]
    start = visit_day(original)
    elapsed = (due.year - start.year) * 12 + due.month - start.month
    return add_months(start, (elapsed // months + 1) * months)


def build_follow_up(original: Submission, due: date, *, now: datetime) -> Submission:
    """Return a new pending submission for the follow-up of `original` due on `due` (not added)."""
    values = {name: getattr(original, name) for name in COPIED}
    return Submission(
        **values,
        reference=make_reference(),
        status=Status.PENDING,
        created_at=now,
        is_first_time_client=False,
        # Maintenance: never an emergency, whatever the first visit was.
        urgency="flexible" if original.urgency == "emergency" else original.urgency,
        answers={},
        schedule_kind="preference",  # no date: an unscheduled job, "needs scheduling"
        follow_up_of=original.id,
        follow_up_due=due,
        terms_version_id=original.terms_version_id,
    )


def create_due_follow_ups(now: datetime) -> list[int]:
    """Create each follow-up that has fallen due (in the form's time zone); return their ids.

    Safe to run twice or in two workers at once: see the module's docstring.
    """
    horizon = now.date() + timedelta(days=1)  # zones east of UTC are a day ahead
    ids = list(
        db.session.scalars(
            select(Submission.id)
            .where(
                Submission.next_follow_up <= horizon,
                Submission.repeat_every != "",
                Submission.follow_up_of.is_(None),
                Submission.status != Status.QUARANTINED,
            )
            .order_by(Submission.next_follow_up, Submission.id)
            .limit(BATCH)
        )
    )
    created: list[int] = []
    for sid in ids:
        follow_up = _create_one(sid, now)
        if follow_up is not None:
            created.append(follow_up)
    return created


def _create_one(sid: int, now: datetime) -> int | None:
    """Create the due follow-up of one original, unless another sweep did; return its id."""
    original = db.session.get(Submission, sid)
    due = original.next_follow_up if original is not None else None
    if original is None or due is None or original.repeat_every not in formdefs.REPEAT_MONTHS:
        db.session.rollback()
        return None
    today = validation.today_in(original.form.time_zone, now)
    if due > today:
        db.session.rollback()
        return None
    later = following_due(original, due)
    while later <= today:  # sweeps stopped for a while: one follow-up, not one per missed day
        later = following_due(original, later)
    claimed = db.session.execute(
        update(Submission)
        .where(Submission.id == sid, Submission.next_follow_up == due)
        .values(next_follow_up=later)
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) != 1:  # another sweep moved it on first: its follow-up stands
        db.session.rollback()
        return None
    follow_up = build_follow_up(original, due, now=now)
    db.session.add(follow_up)
    try:
        db.session.commit()
    except IntegrityError:  # made already for this day (or a reference collided): next sweep
        db.session.rollback()
        return None
    logger.info(
        "Follow-up %s of submission %s created (due %s)", follow_up.reference, sid, due.isoformat()
    )
    return follow_up.id


def stop_repeating(original: Submission, *, now: datetime) -> bool:
    """End a series: no follow-up is made after this (the caller commits); False if none ran."""
    if original.next_follow_up is None:
        return False
    original.next_follow_up = None
    original.repeat_stopped_at = now
    original.updated_at = now
    return True


def follow_ups(original: Submission) -> list[Submission]:
    """Return the follow-ups made for a request, oldest first."""
    return list(
        db.session.scalars(
            select(Submission)
            .where(Submission.follow_up_of == original.id)
            .order_by(Submission.follow_up_due)
        )
    )

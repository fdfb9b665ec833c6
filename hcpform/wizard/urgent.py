"""Step 6 for an emergency: the soonest window first, a call link, "As soon as possible".

Urgency "Emergency" switches the step to emergency mode; the form's keywords in the description
only show a gentle hint (choose Emergency, or call), never change the urgency.

"As soon as possible" is a window-less choice. At submit it books the earliest window still
open today or tomorrow (checked with HCP under the window's lock, like any booked window); when
there is none, the request is saved unscheduled and its job tagged ASAP, for the office to call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .. import availability, emergency, formdefs, submissions
from ..extensions import db
from ..i18n import weekday_day_month
from ..models import Draft, Form, Submission
from .slots import service_type_of

URGENCY_FIELD = "urgency"


@dataclass(frozen=True)
class Urgent:
    """What step 6 shows about urgency: emergency mode, or a hint; the call link; gas."""

    mode: bool  # the homeowner chose Emergency: soonest window first, call link, ASAP
    hint: bool  # the description sounds urgent, but the urgency is not Emergency
    gas: bool  # gas is mentioned: leave the house and call 911 first
    matched: list[str] = field(default_factory=list)
    soonest: str = ""  # the earliest window open today or tomorrow, if any
    soonest_when: str = ""
    urgency_step: str = ""  # the step that asks how urgent it is


def emergency_mode(draft: Draft | None) -> bool:
    """Return True when the draft's urgency is Emergency."""
    answers = (draft.answers or {}) if draft is not None else {}
    return answers.get(URGENCY_FIELD) == emergency.EMERGENCY


def context(
    form: Form, draft: Draft | None, slots: availability.Availability | None, *, now: datetime
) -> Urgent | None:
    """Return what the step that picks the time shows about urgency (None on other steps)."""
    if slots is None or draft is None:
        return None
    answers = draft.answers or {}
    mode = emergency_mode(draft)
    text = emergency.description_of(form, answers)
    matched = emergency.matched_keywords(text, list(form.emergency_keywords or []))
    soonest = emergency.soonest_windows(slots, now=now)[:1] if mode else []
    when = ""
    if soonest:
        when = emergency.when_label(
            soonest[0][2], soonest[0][1], now=now, time_zone=slots.time_zone
        )
    return Urgent(
        mode=mode,
        hint=bool(matched) and not mode,
        gas=(mode or bool(matched)) and emergency.mentions_gas(text, matched),
        matched=matched,
        soonest=soonest[0][0] if soonest else "",
        soonest_when=when,
        urgency_step=next(
            (
                st["slug"]
                for st, f in formdefs.iter_fields(form.definition)
                if f["name"] == URGENCY_FIELD
            ),
            formdefs.step_slugs(form.definition)[0],
        ),  # fmt: skip
    )


def wants_asap(form: Form, draft: Draft) -> bool:
    """Return True when the draft chose "As soon as possible" on step 6."""
    return emergency.chosen_time(form, draft.answers or {}) == emergency.ASAP


def submit_asap(form: Form, draft: Draft, *, now: datetime, honeypot: str) -> Submission:
    """Book the earliest window still open today or tomorrow and submit; else submit unscheduled.

    Each candidate is re-checked with HCP under its lock (the submission is committed inside it,
    as for any booked window); one taken meanwhile makes the next one the candidate.
    """
    service = service_type_of(form, draft)
    slots = availability.open_windows(form, service, now=now)
    for wid, label, day in emergency.soonest_windows(slots, now=now)[:3]:
        window = availability.parse_window_id(wid)
        if window is None:
            continue
        with availability.window_lock(window) as locked:
            if locked and availability.still_open(form, service, window, now=now) is True:
                when = weekday_day_month(day) + ", " + label
                emergency.book_asap(draft, form, window, day=day, label=label, when=when)
                submission = submissions.submit(draft, form, now=now, honeypot=honeypot)
                db.session.commit()
                return submission
    submission = submissions.submit(draft, form, now=now, honeypot=honeypot)
    db.session.commit()
    return submission

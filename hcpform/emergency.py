"""Emergencies: words that sound urgent, the soonest open window, and the office's alert list.

Urgency "Emergency" (step 2) is what makes a request an emergency. The form's keywords are a
hint only: a description that mentions one (whole words or phrases, any case, any script) makes
step 6 suggest choosing Emergency or calling, never changes the urgency by itself.

A saved emergency is a WARNING log line (reference, service type and ZIP prefix; nothing
personal), an email to the form's office addresses with URGENT in its subject when mail is on
(queued with the submission by outbox.py, sent at once by a worker), and a banner on the admin
dashboard listing the open ones, oldest first, until someone acknowledges each.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from . import availability, formdefs
from .extensions import db, rowcount
from .i18n import gettext, weekday_day_month
from .models import Draft, Form, Status, Submission
from .redact import redact

logger = logging.getLogger(__name__)

EMERGENCY = "emergency"
ASAP = "asap"  # step 6's window-less choice: the earliest open window today or tomorrow
ASAP_TAG = "ASAP"
MAX_KEYWORDS = 50
MAX_KEYWORD_LENGTH = 60
# Not open: handled by hand (manual) or held as spam (quarantined, never sent to the office).
CLOSED = (Status.MANUAL, Status.QUARANTINED)
_SPACES = re.compile(r"\s+")
_GAS = re.compile(r"(?<!\w)gas(?!\w)")


def fold(text: str) -> str:
    """Return text as keywords compare it: NFKC, case-folded, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", str(text or "")).casefold()
    return _SPACES.sub(" ", folded).strip()


def parse_keywords(text: str | None) -> tuple[list[str], list[str]]:
    """Return (the keywords typed, one per line or comma-separated, unique; the problems)."""
    found: list[str] = []
    problems: list[str] = []
    for raw in re.split(r"[\n,;]+", text or ""):
        word = _SPACES.sub(" ", unicodedata.normalize("NFKC", raw)).strip()
        if not word:
            continue
        if not word.isprintable() or not any(c.isalnum() for c in word):
            problems.append(f"“{word[:20]}” is not a word or phrase")
        elif len(word) > MAX_KEYWORD_LENGTH:
            problems.append(f"“{word[:20]}…” is longer than {MAX_KEYWORD_LENGTH} characters")
        elif fold(word) not in {fold(w) for w in found}:
            found.append(word)
    if len(found) > MAX_KEYWORDS:
        problems.append(f"Use at most {MAX_KEYWORDS} words or phrases")
    return found, problems


def _pattern(keyword: str) -> re.Pattern[str]:
    """Return a regex matching a keyword as whole words, any spacing between its words."""
    words = [re.escape(w) for w in fold(keyword).split(" ") if w]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


def matched_keywords(text: str, keywords: list[str]) -> list[str]:
    """Return the keywords the text mentions (whole words or phrases, case-insensitive)."""
    folded = fold(text)
    if not folded:
        return []
    return [k for k in keywords or [] if fold(k) and _pattern(k).search(folded)]


def mentions_gas(text: str, matched: list[str]) -> bool:
    """Return True when the text or a matched keyword mentions gas."""
    return any(_GAS.search(fold(t)) for t in (text, *matched))


def description_of(form: Form, answers: dict[str, Any]) -> str:
    """Return the answer describing the problem (the field mapped to booking_reason)."""
    name = next(
        (f["name"] for _, f in formdefs.iter_fields(form.definition)
         if f.get("hcp_key") == "booking_reason"),
        "booking_reason",
    )  # fmt: skip
    value = answers.get(name)
    return value if isinstance(value, str) else ""


def _schedule_fields(form: Form) -> tuple[str | None, str | None]:
    """Return the names of the date and time fields of the step that picks the time."""
    for step in form.definition.get("steps", []):
        names = formdefs.booking_fields(step)
        if all(names):
            return names
    return None, None


def chosen_time(form: Form, answers: dict[str, Any]) -> str:
    """Return the time a draft chose on step 6: a window id, a form window's id, or "asap"."""
    _, time_name = _schedule_fields(form)
    return str(answers.get(time_name) or "") if time_name else ""


def book_asap(
    draft: Draft, form: Form, window: availability.Window, *, day: date, label: str, when: str
) -> None:
    """Put an "As soon as possible" draft in the earliest open window (checked by the caller)."""
    date_name, time_name = _schedule_fields(form)
    if not (date_name and time_name):
        return
    draft.answers = {
        **(draft.answers or {}),
        date_name: day.isoformat(),
        time_name: window.id,
        "_schedule_kind": availability.BOOKED,
        "_window_label": label,
        "_window_when": when,
        "_asap": "1",
    }


def soonest_windows(
    slots: availability.Availability | None, *, now: datetime
) -> list[tuple[str, str, date]]:
    """Return the open windows of today and tomorrow (company time): (id, label, day), in order."""
    if slots is None or slots.kind != availability.BOOKED:
        return []
    today = now.astimezone(ZoneInfo(slots.time_zone)).date()
    return [
        (wid, label, day.day)
        for day in slots.days
        if day.day <= today + timedelta(days=1)
        for wid, label in day.windows
    ]


def when_label(day: date, label: str, *, now: datetime, time_zone: str) -> str:
    """Return "Today, 2–4 pm" or "Tomorrow, 8–10 am" (else the day's heading)."""
    today = now.astimezone(ZoneInfo(time_zone)).date()
    names = {today: gettext("Today"), today + timedelta(days=1): gettext("Tomorrow")}
    return f"{names.get(day, weekday_day_month(day))}, {label}"


def alert_office(sub: Submission) -> None:
    """Log a new emergency (a WARNING line; nothing personal); its email is in the outbox."""
    if sub.urgency != EMERGENCY or sub.status == Status.QUARANTINED:
        return
    when = "as soon as possible" if sub.asap else (sub.booking_window or "no time chosen")
    if sub.asap and sub.scheduled_start:
        when = f"as soon as possible, booked {sub.scheduled_start:%Y-%m-%d %H:%M} UTC"
    logger.warning(
        "🚨 Emergency request %s: %s, ZIP %s…, %s",
        sub.reference,
        redact(sub.service_type)[:100],
        (sub.zip or "")[:3],
        when,
    )


def is_open() -> Any:
    """Return the SQL condition of an open emergency: not acknowledged, not handled, not spam."""
    return (
        (Submission.urgency == EMERGENCY)
        & Submission.emergency_acknowledged_at.is_(None)
        & Submission.status.not_in(CLOSED)
    )


def open_emergencies(limit: int = 20) -> tuple[list[Submission], int]:
    """Return the oldest open emergencies (the longest waiting first) and how many are open."""
    total = db.session.scalar(select(func.count()).select_from(Submission).where(is_open()))
    if not total:  # the usual case: answered from the index alone, no row read
        return [], 0
    ids = list(
        db.session.scalars(
            select(Submission.id)
            .where(is_open())
            .order_by(Submission.created_at, Submission.id)
            .limit(limit)
        )
    )
    found = {s.id: s for s in db.session.scalars(select(Submission).where(Submission.id.in_(ids)))}
    return [found[i] for i in ids if i in found], int(total)


def acknowledge(sub: Submission, *, by: str, now: datetime) -> bool:
    """Mark an emergency as seen by the office; return False when it was not open any more."""
    done = db.session.execute(
        update(Submission)
        .where(Submission.id == sub.id, is_open())
        .values(emergency_acknowledged_at=now, emergency_acknowledged_by=by[:254])
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    db.session.refresh(sub)
    return rowcount(done) == 1


def age_text(created: datetime, now: datetime) -> str:
    """Return how long ago: "just now", "12 min ago", "3 h 5 min ago", "2 days ago"."""
    minutes = max(0, int((now - created).total_seconds() // 60))
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {rest} min ago" if rest else f"{hours} h ago"
    days = hours // 24
    return "1 day ago" if days == 1 else f"{days} days ago"

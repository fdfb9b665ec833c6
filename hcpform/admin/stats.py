"""The admin's reads: dashboard figures as SQL aggregates, the filtered list, the timeline.

Every figure is computed by the database (COUNT … FILTER, percentile_cont on PostgreSQL, an
ORDER BY … OFFSET probe on SQLite); no function here loads a table's rows into Python.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select

from .. import marketing, validation
from ..extensions import db
from ..models import (
    Draft,
    Form,
    FunnelCount,
    HcpCall,
    OutOfAreaRequest,
    Status,
    Submission,
    SyncAttempt,
)

REFERENCE_RE = re.compile(r"^HCP-[0-9A-Z]{5}$")
PERIODS = {1: "24 hours", 7: "7 days", 30: "30 days", 90: "90 days"}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _dialect() -> str:
    return db.session.get_bind().dialect.name


# ---------------------------------------------------------------- dashboard


def status_counts(form_id: int | None = None) -> dict[str, int]:
    """Return how many submissions are in each status now (every status, zeros included)."""
    stmt = select(Submission.status, func.count()).group_by(Submission.status)
    if form_id is not None:
        stmt = stmt.where(Submission.form_id == form_id)
    counts = {str(s): 0 for s in Status}
    counts.update({status: n for status, n in db.session.execute(stmt)})
    return counts


@dataclass
class SyncFigures:
    """Outcomes of the submissions received in a period."""

    received: int = 0
    synced: int = 0
    failed: int = 0
    matched: int = 0  # HCP customer found by phone or email (a returning customer)
    customers: int = 0  # submissions whose customer is known (matched or created)

    @property
    def success_rate(self) -> float | None:
        """Synced among those that reached an outcome (synced or failed)."""
        return _rate(self.synced, self.synced + self.failed)

    @property
    def duplicate_rate(self) -> float | None:
        """Share of customers that already existed in HCP (so were not created again)."""
        return _rate(self.matched, self.customers)


def sync_figures(since: datetime, form_id: int | None = None) -> SyncFigures:
    """Return received, synced, failed and duplicate-customer counts since a time, in one query."""
    stmt = select(
        func.count(),
        func.count().filter(Submission.status == Status.SYNCED),
        func.count().filter(Submission.status == Status.FAILED),
        func.count().filter(Submission.customer_matched_by.in_(("phone", "email"))),
        func.count().filter(Submission.customer_matched_by.is_not(None)),
    ).where(Submission.created_at >= since)
    if form_id is not None:
        stmt = stmt.where(Submission.form_id == form_id)
    return SyncFigures(*db.session.execute(stmt).one())


@dataclass
class CallHealth:
    """HCP API calls in a period: how many, how many failed, and latency percentiles (ms)."""

    label: str
    calls: int = 0
    errors: int = 0
    p50: float | None = None
    p95: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Failed calls among all calls."""
        return _rate(self.errors, self.calls)


def call_health(since: datetime, label: str) -> CallHealth:
    """Return the HCP call figures since a time (percentiles computed by the database)."""
    where = HcpCall.created_at >= since
    if _dialect() == "postgresql":
        calls, errors, p50, p95 = db.session.execute(
            select(
                func.count(),
                func.count().filter(HcpCall.ok.is_(False)),
                func.percentile_cont(0.5).within_group(HcpCall.duration_ms),
                func.percentile_cont(0.95).within_group(HcpCall.duration_ms),
            ).where(where)
        ).one()
        return CallHealth(label, calls, errors, _float(p50), _float(p95))
    calls, errors = db.session.execute(
        select(func.count(), func.count().filter(HcpCall.ok.is_(False))).where(where)
    ).one()
    health = CallHealth(label, calls, errors)
    if calls:
        health.p50 = _percentile_by_offset(where, calls, 0.5)
        health.p95 = _percentile_by_offset(where, calls, 0.95)
    return health


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _percentile_by_offset(where: Any, count: int, fraction: float) -> float:
    """Return percentile_cont on SQLite: the two neighbouring values by ORDER BY/OFFSET."""
    position = fraction * (count - 1)
    low = math.floor(position)
    values = db.session.scalars(
        select(HcpCall.duration_ms).where(where).order_by(HcpCall.duration_ms).offset(low).limit(2)
    ).all()
    if len(values) == 1:
        return float(values[0])
    return values[0] + (values[1] - values[0]) * (position - low)


@dataclass
class Stage:
    """One stage of the funnel and how many were lost since the stage before."""

    label: str
    count: int
    lost: int | None = None
    lost_rate: float | None = None


def funnel(since: datetime, form: Form, form_id: int | None = None) -> list[Stage]:
    """Return the funnel: first-page views, each step completed, submitted, job created."""
    titles = [s.get("title") or s["slug"] for s in form.definition.get("steps", [])]
    draft_filter = [Draft.started_at >= since]
    if form_id is not None:
        draft_filter.append(Draft.form_id == form_id)
    row = db.session.execute(
        select(
            *[func.count().filter(Draft.furthest_step >= k) for k in range(1, len(titles) + 1)],
            func.count().filter(Draft.submitted_at.is_not(None)),
        ).where(*draft_filter)
    ).one()
    jobs = db.session.scalar(
        select(func.count())
        .select_from(Submission)
        .join(Draft, Submission.draft_id == Draft.id)
        .where(*draft_filter, Submission.hcp_job_id.is_not(None))
    )
    views_stmt = select(func.coalesce(func.sum(FunnelCount.count), 0)).where(
        FunnelCount.event == "start", FunnelCount.day >= since.date()
    )
    if form_id is not None:
        views_stmt = views_stmt.where(FunnelCount.form_id == form_id)
    stages = [Stage("Opened the form (first page views)", int(db.session.scalar(views_stmt) or 0))]
    for number, (title, count) in enumerate(zip(titles, row[:-1], strict=True), start=1):
        stages.append(Stage(f"Step {number} done: {title}", count))
    stages.append(Stage("Submitted", row[-1]))
    stages.append(Stage("Job created in HCP", jobs or 0))
    for before, stage in zip(stages, stages[1:], strict=False):
        if before.count >= stage.count:
            stage.lost = before.count - stage.count
            stage.lost_rate = _rate(stage.lost, before.count)
    return stages


def out_of_area(
    since: datetime, form_id: int | None = None, limit: int = 20
) -> list[tuple[str, int]]:
    """Return the ZIPs most asked for outside the service area, with their counts."""
    n = func.count().label("n")
    stmt = (
        select(OutOfAreaRequest.zip, n)
        .where(OutOfAreaRequest.created_at >= since)
        .group_by(OutOfAreaRequest.zip)
        .order_by(n.desc(), OutOfAreaRequest.zip)
        .limit(limit)
    )
    if form_id is not None:
        stmt = stmt.where(OutOfAreaRequest.form_id == form_id)
    return [(z, c) for z, c in db.session.execute(stmt)]


@dataclass
class Dashboard:
    """Everything the dashboard shows."""

    days: int
    statuses: dict[str, int]
    sync: SyncFigures
    health: list[CallHealth]
    stages: list[Stage]
    zips: list[tuple[str, int]]
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.total = sum(self.statuses.values())


def dashboard(now: datetime, days: int, form: Form, form_id: int | None = None) -> Dashboard:
    """Return the dashboard's figures for the last `days` days."""
    since = now - timedelta(days=days)
    return Dashboard(
        days=days,
        statuses=status_counts(form_id),
        sync=sync_figures(since, form_id),
        health=[
            call_health(now - timedelta(hours=24), "Last 24 hours"),
            call_health(now - timedelta(days=7), "Last 7 days"),
        ],
        stages=funnel(since, form, form_id),
        zips=out_of_area(since, form_id),
    )


# ---------------------------------------------------------------- submissions list


def service_type_names() -> list[str]:
    """Return every service type any form offers, for the filter."""
    names: set[str] = set()
    for types in db.session.scalars(select(Form.service_types)):
        names.update(s["name"] for s in types or [])
    return sorted(names)


def local_day_start(day: date, tz_name: str) -> datetime:
    """Return the aware start of a day in the business's time zone."""
    return datetime.combine(day, time.min, ZoneInfo(tz_name))


def search_clause(text: str) -> Any:
    """Return the WHERE clause for a search by reference, phone, email or name.

    A reference or a phone number (normalised to E.164 when what was typed parses as one) is
    looked up by its index; an email by its index, or by a substring when only part of it was
    typed; anything else matches first and last names by substring.
    """
    text = text.strip()
    if REFERENCE_RE.match(text.upper()):
        return Submission.reference == text.upper()
    if not re.search(r"[A-Za-z@]", text):
        try:
            return Submission.phone == validation.parse_phone(text)
        except validation.Invalid:
            digits = re.sub(r"\D", "", text)
            return Submission.phone.contains(digits) if digits else Submission.id.is_(None)
    if "@" in text:
        try:
            email = validation.parse_email(text)
        except validation.Invalid:
            return Submission.email.icontains(text, autoescape=True)
        return Submission.email.in_({email, email.lower(), text})
    words = text.split()[:4]
    return and_(
        *[
            or_(
                Submission.first_name.icontains(w, autoescape=True),
                Submission.last_name.icontains(w, autoescape=True),
            )
            for w in words
        ]
    )


def submissions_query(filters: dict[str, Any], tz_name: str) -> Select[Submission]:
    """Return the list's SELECT for these filters, newest first."""
    stmt = select(Submission).order_by(Submission.created_at.desc(), Submission.id.desc())
    if filters.get("status"):
        stmt = stmt.where(Submission.status == filters["status"])
    if filters.get("form"):
        stmt = stmt.join(Form, Form.id == Submission.form_id).where(Form.slug == filters["form"])
    for name in ("service_type", "urgency", "customer_type"):
        if filters.get(name):
            stmt = stmt.where(getattr(Submission, name) == filters[name])
    if filters.get("date_from"):
        stmt = stmt.where(Submission.created_at >= local_day_start(filters["date_from"], tz_name))
    if filters.get("date_to"):
        end = local_day_start(filters["date_to"] + timedelta(days=1), tz_name)
        stmt = stmt.where(Submission.created_at < end)
    if filters.get("q"):
        stmt = stmt.where(search_clause(filters["q"]))
    for name in ("source", "medium", "campaign"):
        if name in filters:  # "(none)": no value; compared lowercased, as the reports group
            value = marketing.from_shown(filters[name])
            column = getattr(Submission, f"utm_{name}")
            stmt = stmt.where(func.lower(func.coalesce(column, "")) == value)
    if filters.get("stage"):
        stmt = stmt.where(Submission.status != Status.QUARANTINED)
        if filters["stage"] in ("job", "completed"):
            stmt = stmt.where(Submission.hcp_job_id.is_not(None))
        if filters["stage"] == "completed":
            stmt = stmt.where(Submission.hcp_status == "completed")
        elif filters["stage"] == "paid":
            stmt = stmt.where(Submission.paid_cents > 0)
    if filters.get("outcome") == "paid":
        stmt = stmt.where(Submission.paid_cents > 0)
    elif filters.get("outcome"):
        stmt = stmt.where(Submission.hcp_status == filters["outcome"])
    return stmt


# ---------------------------------------------------------------- one submission


@dataclass
class Event:
    """One line of a submission's sync timeline."""

    at: datetime
    kind: str  # attempt | call
    title: str
    status: str
    duration_ms: int | None
    message: str
    ok: bool | None = None


def timeline(submission_id: int, limit: int = 500) -> list[Event]:
    """Return the sync attempts and HCP calls of a submission, oldest first."""
    events: list[Event] = []
    for attempt in db.session.scalars(
        select(SyncAttempt)
        .where(SyncAttempt.submission_id == submission_id)
        .order_by(SyncAttempt.id)
    ):
        duration = None
        if attempt.finished_at:
            duration = int((attempt.finished_at - attempt.started_at).total_seconds() * 1000)
        events.append(
            Event(
                attempt.started_at,
                "attempt",
                f"Attempt {attempt.number}" + (f" on {attempt.worker}" if attempt.worker else ""),
                attempt.outcome,
                duration,
                attempt.message,
                attempt.outcome == Status.SYNCED,
            )
        )
    calls = db.session.scalars(
        select(HcpCall)
        .where(HcpCall.submission_id == submission_id)
        .order_by(HcpCall.id.desc())
        .limit(limit)
    ).all()
    for call in reversed(calls):
        events.append(
            Event(
                call.created_at,
                "call",
                f"{call.method} {call.path}",
                str(call.status) if call.status is not None else "no answer",
                call.duration_ms,
                call.message,
                call.ok,
            )
        )
    events.sort(key=lambda e: (e.at, e.kind != "attempt"))
    return events


def answer_groups(sub: Submission) -> list[tuple[str, list[tuple[str, str]]]]:
    """Return every answer as (step title, [(question, answer)]), labels resolved from the form."""
    from ..formdefs import choices_for

    answers = dict(sub.answers or {})
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    known = set()
    for step in sub.form.definition.get("steps", []):
        rows = []
        for fdef in step.get("fields", []):
            known.add(fdef["name"])
            if fdef["name"] not in answers:
                continue
            value = answers[fdef["name"]]
            if fdef.get("options"):
                value = dict(choices_for(fdef, sub.form)).get(str(value), value)
            elif fdef.get("type") == "tel" and value:
                value = validation.format_phone(str(value))
            rows.append((fdef.get("label") or fdef["name"], _text(value)))
        if rows:
            groups.append((step.get("title") or step["slug"], rows))
    others = [(name, _text(answers[name])) for name in sorted(set(answers) - known)]
    if others:
        groups.append(("Other answers", others))
    return groups


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)

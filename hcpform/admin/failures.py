"""Failure patterns: failed and retried sync attempts grouped by cause, with their rows.

A cause is the HCP error class (from the status HCP answered, or no answer) and the shape of
the message, with numbers, ids, emails and quoted values replaced by placeholders: 14 attempts
that failed on "job type jt_81f2 not found" and "job type jt_0c4a not found" are one line.
The newest MAX_ATTEMPTS attempts of the period are read (their outcome, message and time only).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import abort, render_template, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import select

from .. import marketing
from ..extensions import db
from ..hcp.errors import AUTH, PERMANENT, kind_for_status
from ..models import Submission, SyncAttempt
from ..timeutil import utcnow
from . import bp, charts, stats
from .filters import admin_tz

OUTCOMES = ("retry", "failed", "timeout")
MAX_ATTEMPTS = 5000
KIND_LABELS = {
    "transient": "HCP unavailable or slow (retried)",
    AUTH: "API key refused",
    PERMANENT: "HCP refused the request",
    "timeout": "Attempt took too long",
    "other": "Other error",
}
STATUS_RE = re.compile(r"(?:HCP answered |HCP error \(|last: |HCP )(\d{3}|no answer|no response)")
WRAPPERS = (
    re.compile(r"^HCP error \((?:\d{3}|no answer): (?P<m>.*)\); retrying in [\d.]+ s$", re.S),
    re.compile(r"^HCP answered \d{3}: (?P<m>.*)$", re.S),
    re.compile(r"^HCP kept failing for [\d.]+ h; last: (?:\d{3}|no answer): (?P<m>.*)$", re.S),
)
PLACEHOLDERS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\bHCP-[0-9A-Z]{5}\b"), "<reference>"),
    # ids like jt_81f2a, job_3c9, cus_1b2c3d or a long hex/base62 token with a digit in it
    (re.compile(r"\b[a-z]{1,12}_[0-9A-Za-z]+\b"), "<id>"),
    (re.compile(r"\b(?=[0-9A-Za-z]*\d)(?=[0-9A-Za-z]*[A-Za-z])[0-9A-Za-z]{12,}\b"), "<id>"),
    (re.compile(r"'[^']{1,200}'|\"[^\"]{1,200}\""), "<value>"),
    (re.compile(r"\d+(?:[.,]\d+)*"), "<n>"),
)


def cause_of(outcome: str, message: str) -> tuple[str, str]:
    """Return (error class label, message shape) of one failed or retried attempt."""
    text = " ".join((message or "").split())
    if outcome == "timeout":
        kind, status = "timeout", ""
    else:
        match = STATUS_RE.search(text)
        status = match.group(1) if match else ""
        if status.isdigit():
            kind = kind_for_status(int(status))
        elif status:
            kind = "transient"
        else:
            kind = "other"
    core = text
    for wrapper in WRAPPERS:
        found = wrapper.match(text)
        if found:
            core = found.group("m")
            break
    for pattern, placeholder in PLACEHOLDERS:
        core = pattern.sub(placeholder, core)
    label = KIND_LABELS[kind] + (f" ({status})" if status.isdigit() else "")
    return label, core[:300] or "(no message)"


def cause_key(label: str, shape: str) -> str:
    """Return a short stable key for a cause (used in links)."""
    return hashlib.sha256(f"{label}\n{shape}".encode()).hexdigest()[:16]


@dataclass
class Pattern:
    """One cause and the attempts that had it."""

    key: str
    label: str
    shape: str
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    submissions: set[int] = field(default_factory=set)
    outcomes: dict[str, int] = field(default_factory=dict)


def patterns(since: datetime) -> list[Pattern]:
    """Return the causes of failed and retried attempts since a time, most frequent first."""
    found: dict[str, Pattern] = {}
    rows = db.session.execute(
        select(
            SyncAttempt.submission_id, SyncAttempt.outcome, SyncAttempt.message,
            SyncAttempt.started_at,
        )
        .where(SyncAttempt.outcome.in_(OUTCOMES), SyncAttempt.started_at >= since)
        .order_by(SyncAttempt.id.desc())
        .limit(MAX_ATTEMPTS)
    )  # fmt: skip
    for submission_id, outcome, message, started_at in rows:
        label, shape = cause_of(outcome, message)
        key = cause_key(label, shape)
        pattern = found.setdefault(key, Pattern(key, label, shape))
        pattern.count += 1
        pattern.submissions.add(submission_id)
        pattern.outcomes[outcome] = pattern.outcomes.get(outcome, 0) + 1
        if pattern.first is None or started_at < pattern.first:
            pattern.first = started_at
        if pattern.last is None or started_at > pattern.last:
            pattern.last = started_at
    return sorted(found.values(), key=lambda p: (-p.count, p.label, p.shape))


@dataclass
class SyncHealth:
    """The dashboard's failure patterns and its latency and error-rate charts."""

    patterns: list[Pattern]
    days: list[marketing.CallDay]
    latency_chart: Markup
    error_chart: Markup


def sync_health(now: datetime, days: int) -> SyncHealth:
    """Return the failure patterns and the per-day HCP call charts of the last `days` days."""
    tz = admin_tz()
    today = now.astimezone(ZoneInfo(tz)).date()
    period = marketing.Period(today - timedelta(days=max(days, 2) - 1), today)
    call_days = marketing.call_days(period, tz)
    labels = [f"{d.day:%b %d}" for d in call_days]
    return SyncHealth(
        patterns=patterns(now - timedelta(days=days)),
        days=call_days,
        latency_chart=charts.line_chart(
            "HCP call latency per day",
            "Average duration of the calls to Housecall Pro each day, in milliseconds. "
            "The numbers are in the table below the charts.",
            labels,
            [("Average latency (ms)", [_round(d.average_ms) for d in call_days])],
            formatter=lambda v: f"{v:,.0f} ms",
        ),
        error_chart=charts.line_chart(
            "HCP call error rate per day",
            "Share of the calls to Housecall Pro that failed each day, in percent. "
            "The numbers are in the table below the charts.",
            labels,
            [("Error rate (%)", [_percent(d.error_rate) for d in call_days])],
            formatter=lambda v: f"{v:.1f}%",
        ),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


@bp.get("/failures")
def failures() -> ResponseReturnValue:
    """List the failed and retried attempts of one cause (?cause=key), or every cause."""
    days = request.args.get("days", 7, type=int)
    if days not in stats.PERIODS:
        days = 7
    since = utcnow() - timedelta(days=days)
    found = patterns(since)
    key = request.args.get("cause", "")
    chosen = next((p for p in found if p.key == key), None)
    if key and chosen is None:
        abort(404)
    attempts: list[tuple[SyncAttempt, Submission]] = []
    if chosen is not None:
        rows = db.session.execute(
            select(SyncAttempt, Submission)
            .join(Submission, Submission.id == SyncAttempt.submission_id)
            .where(
                SyncAttempt.outcome.in_(OUTCOMES),
                SyncAttempt.started_at >= since,
                SyncAttempt.submission_id.in_(sorted(chosen.submissions)),
            )
            .order_by(SyncAttempt.id.desc())
            .limit(MAX_ATTEMPTS)
        )
        attempts = [(a, s) for a, s in rows if cause_key(*cause_of(a.outcome, a.message)) == key][
            :500
        ]
    return render_template(
        "admin/failures.html",
        patterns=found,
        chosen=chosen,
        attempts=attempts,
        days=days,
        periods=stats.PERIODS,
    )

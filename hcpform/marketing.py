"""Campaign figures: visits, started wizards, requests, jobs and revenue per source and campaign.

Figures follow the requests received in a period (by the business's local days) and what has
become of them since: a job completed next month still counts for the month its request came
in. Visits are first-page views counted by the wizard (CampaignVisit), started wizards are
drafts, and spam (quarantined requests) is never a lead. Sources, mediums and campaigns are the
UTM values, compared lowercased; "" (shown as NONE) means none was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError

from . import adspend, validation
from .extensions import db, rowcount
from .models import CampaignVisit, Draft, Form, HcpCall, Status, Submission

NONE = "(none)"
DIMENSIONS = ("source", "medium", "campaign")
VALUE_LIMIT = 200
# Past this many rows of one form and day, new combinations count under OTHER: a crawler
# inventing campaign names can't grow the table without bound.
DAILY_COMBINATIONS = 500
OTHER = "(other)"

Key = tuple[str, ...]


def clean_value(value: str | None) -> str:
    """Return a UTM value as the reports compare it: trimmed, lowercased, at most 200 chars."""
    try:
        text = validation.clean_text(value or "", max_length=10_000)
    except validation.Invalid:
        return ""
    return text.lower()[:VALUE_LIMIT]


def shown(value: str) -> str:
    """Return a dimension's value as the reports show it (NONE for "")."""
    return value or NONE


def from_shown(value: str) -> str:
    """Return the stored value a shown one stands for (NONE is "")."""
    return "" if value == NONE else clean_value(value)


# ---------------------------------------------------------------- counting visits


def count_visit(form: Form, utm: Mapping[str, str], *, now: datetime) -> None:
    """Add one to today's first-page views of this form for the visit's campaign.

    One UPDATE in the usual case; the first view of a combination that day inserts its row.
    """
    day = validation.today_in(form.time_zone, now)
    key = [clean_value(utm.get(f"utm_{name}")) for name in DIMENSIONS]

    def bump(values: list[str]) -> int:
        return rowcount(
            db.session.execute(
                update(CampaignVisit)
                .where(
                    CampaignVisit.form_id == form.id,
                    CampaignVisit.day == day,
                    CampaignVisit.source == values[0],
                    CampaignVisit.medium == values[1],
                    CampaignVisit.campaign == values[2],
                )
                .values(count=CampaignVisit.count + 1)
            )
        )

    if bump(key):
        return
    rows = db.session.scalar(
        select(func.count())
        .select_from(CampaignVisit)
        .where(CampaignVisit.form_id == form.id, CampaignVisit.day == day)
    )
    if (rows or 0) >= DAILY_COMBINATIONS:
        key = [OTHER, OTHER, OTHER]
        if bump(key):
            return
    try:
        with db.session.begin_nested():
            db.session.add(
                CampaignVisit(
                    form_id=form.id, day=day, source=key[0], medium=key[1], campaign=key[2], count=1
                )
            )
    except IntegrityError:  # another request made the row first
        bump(key)


# ---------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """Local days from `start` to `end`, both included."""

    start: date
    end: date
    label: str = ""

    @property
    def days(self) -> int:
        """Return how many days the period has."""
        return (self.end - self.start).days + 1

    def bounds(self, tz_name: str) -> tuple[datetime, datetime]:
        """Return the period as aware [start, end) times in a time zone."""
        zone = ZoneInfo(tz_name)
        begin = datetime.combine(self.start, time.min, zone)
        end = datetime.combine(self.end + timedelta(days=1), time.min, zone)
        return begin, end

    def each_day(self) -> list[date]:
        """Return every day of the period."""
        return [self.start + timedelta(days=n) for n in range(self.days)]


def month_start(day: date) -> date:
    """Return the first day of a day's month."""
    return day.replace(day=1)


def preset_period(name: str, today: date) -> Period:
    """Return a named period ending today: this_month, last_month, last_30 or last_90."""
    if name == "last_month":
        end = month_start(today) - timedelta(days=1)
        return Period(month_start(end), end, f"Last month ({end:%B %Y})")
    if name == "last_30":
        return Period(today - timedelta(days=29), today, "Last 30 days")
    if name == "last_90":
        return Period(today - timedelta(days=89), today, "Last 90 days")
    return Period(month_start(today), today, f"This month ({today:%B %Y})")


# ---------------------------------------------------------------- the figures


@dataclass
class Row:
    """One line of a report: a source (or source, medium, campaign) and its figures."""

    key: Key
    visits: int = 0
    started: int = 0
    leads: int = 0  # requests received (spam left out)
    jobs: int = 0  # of those, jobs created in HCP
    completed: int = 0  # of those jobs, completed in HCP
    revenue_cents: int = 0  # paid on them so far
    spend_cents: int | None = None  # None: no spend entered for this source and period

    def add(self, other: Row) -> None:
        """Add another row's figures to this one (for the totals)."""
        for name in ("visits", "started", "leads", "jobs", "completed", "revenue_cents"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.spend_cents is not None:
            self.spend_cents = (self.spend_cents or 0) + other.spend_cents

    @property
    def start_rate(self) -> float | None:
        """Started wizards among visits."""
        return ratio(self.started, self.visits)

    @property
    def lead_rate(self) -> float | None:
        """Requests among started wizards."""
        return ratio(self.leads, self.started)

    @property
    def visit_rate(self) -> float | None:
        """Requests among visits."""
        return ratio(self.leads, self.visits)

    @property
    def job_rate(self) -> float | None:
        """Jobs created among requests."""
        return ratio(self.jobs, self.leads)

    @property
    def completion_rate(self) -> float | None:
        """Jobs completed among jobs created."""
        return ratio(self.completed, self.jobs)

    @property
    def cost_per_lead(self) -> int | None:
        """Spend per request, in cents."""
        return cents_ratio(self.spend_cents, self.leads)

    @property
    def cost_per_job(self) -> int | None:
        """Spend per completed job (customer acquisition cost), in cents."""
        return cents_ratio(self.spend_cents, self.completed)

    @property
    def roas(self) -> float | None:
        """Revenue paid per dollar spent."""
        if self.spend_cents is None:
            return None
        return ratio(self.revenue_cents, self.spend_cents)


def ratio(part: int, whole: int | None) -> float | None:
    """Return part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


def cents_ratio(cents: int | None, count: int) -> int | None:
    """Return cents / count rounded to a cent, or None (no spend, or nothing to divide by)."""
    if cents is None or not count:
        return None
    return (2 * cents + count) // (2 * count)  # round half up, in integers


@dataclass
class Report:
    """A table of rows and its totals."""

    dimensions: tuple[str, ...]
    rows: list[Row]
    total: Row = field(default_factory=lambda: Row(("Total",)))


def _draft_value(name: str) -> ColumnElement[str]:
    return func.lower(func.coalesce(Draft.attribution[f"utm_{name}"].as_string(), ""))


def _submission_value(name: str) -> ColumnElement[str]:
    return func.lower(func.coalesce(getattr(Submission, f"utm_{name}"), ""))


def _key(values: Iterable[Any]) -> Key:
    return tuple(clean_value(str(v or "")) for v in values)


def report(
    period: Period, tz_name: str, dimensions: tuple[str, ...], form_id: int | None = None
) -> Report:
    """Return the figures per source (or per source, medium and campaign) for a period."""
    begin, end = period.bounds(tz_name)
    rows: dict[Key, Row] = {}

    def row(key: Key) -> Row:
        return rows.setdefault(key, Row(key))

    visit_cols = [getattr(CampaignVisit, name) for name in dimensions]
    visits = select(*visit_cols, func.sum(CampaignVisit.count)).where(
        CampaignVisit.day >= period.start, CampaignVisit.day <= period.end
    )
    draft_cols = [_draft_value(name) for name in dimensions]
    drafts = select(*draft_cols, func.count()).where(
        Draft.started_at >= begin, Draft.started_at < end
    )
    sub_cols = [_submission_value(name) for name in dimensions]
    job = Submission.hcp_job_id.is_not(None)
    subs = select(
        *sub_cols,
        func.count(),
        func.count().filter(job),
        func.count().filter(job, Submission.hcp_status == "completed"),
        func.coalesce(func.sum(Submission.paid_cents), 0),
    ).where(*lead_filter(begin, end))
    if form_id is not None:
        visits = visits.where(CampaignVisit.form_id == form_id)
        drafts = drafts.where(Draft.form_id == form_id)
        subs = subs.where(Submission.form_id == form_id)
    n = len(dimensions)
    for values in db.session.execute(visits.group_by(*visit_cols)):
        row(_key(values[:n])).visits += int(values[n] or 0)
    for values in db.session.execute(drafts.group_by(*draft_cols)):
        row(_key(values[:n])).started += int(values[n])
    for values in db.session.execute(subs.group_by(*sub_cols)):
        target = row(_key(values[:n]))
        target.leads += int(values[n])
        target.jobs += int(values[n + 1])
        target.completed += int(values[n + 2])
        target.revenue_cents += int(values[n + 3] or 0)
    # Spend is entered per source for every form: it is not split between forms.
    with_spend = dimensions == ("source",) and form_id is None
    spend = adspend.spend_in(period.start, period.end) if with_spend else {}
    for source, cents in spend.items():
        row((source,)).spend_cents = cents
    result = Report(dimensions, sorted(rows.values(), key=_order))
    for line in result.rows:
        result.total.add(line)
    if not spend:
        result.total.spend_cents = None
    return result


def _order(row: Row) -> tuple[int, int, int, Key]:
    return (-row.revenue_cents, -row.leads, -row.visits, row.key)


def lead_filter(begin: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """Return the WHERE clauses of the requests (leads) received between two times."""
    return [
        Submission.created_at >= begin,
        Submission.created_at < end,
        Submission.status != Status.QUARANTINED,
    ]


# ---------------------------------------------------------------- per day


def hour_bucket(column: Any) -> ColumnElement[str]:
    """Return a column's UTC hour as text "YYYY-MM-DD HH" (SQLite or PostgreSQL)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)


def local_day(bucket: str, zone: ZoneInfo) -> date:
    """Return the local day of a UTC hour bucket."""
    hour = datetime.strptime(bucket, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return hour.astimezone(zone).date()


@dataclass
class Daily:
    """Requests received, jobs created and jobs completed, per local day of a period."""

    days: list[date]
    leads: dict[date, int]
    jobs: dict[date, int]
    completed: dict[date, int]


def _per_day(column: Any, where: list[Any], zone: ZoneInfo) -> dict[date, int]:
    bucket = hour_bucket(column)
    counts: dict[date, int] = {}
    for hour, count in db.session.execute(
        select(bucket, func.count()).where(*where).group_by(bucket)
    ):
        if hour:
            day = local_day(str(hour), zone)
            counts[day] = counts.get(day, 0) + int(count)
    return counts


def daily(period: Period, tz_name: str, form_id: int | None = None) -> Daily:
    """Return requests per day (received), jobs created (synced) and completed per day."""
    begin, end = period.bounds(tz_name)
    zone = ZoneInfo(tz_name)
    base = [Submission.status != Status.QUARANTINED]
    if form_id is not None:
        base.append(Submission.form_id == form_id)
    synced = [Submission.synced_at >= begin, Submission.synced_at < end]
    done = [Submission.hcp_completed_at >= begin, Submission.hcp_completed_at < end]
    job = Submission.hcp_job_id.is_not(None)
    return Daily(
        days=period.each_day(),
        leads=_per_day(Submission.created_at, [*base, *lead_filter(begin, end)], zone),
        jobs=_per_day(Submission.synced_at, [*base, *synced, job], zone),
        completed=_per_day(
            Submission.hcp_completed_at,
            [*base, *done, job, Submission.hcp_status == "completed"],
            zone,
        ),
    )


@dataclass
class CallDay:
    """HCP calls of one local day: how many, how many failed, their average duration."""

    day: date
    calls: int = 0
    errors: int = 0
    total_ms: int = 0

    @property
    def error_rate(self) -> float | None:
        """Failed calls among calls."""
        return ratio(self.errors, self.calls)

    @property
    def average_ms(self) -> float | None:
        """Average call duration in milliseconds."""
        return self.total_ms / self.calls if self.calls else None


def call_days(period: Period, tz_name: str) -> list[CallDay]:
    """Return the HCP calls per local day of a period (the sync's latency and errors)."""
    begin, end = period.bounds(tz_name)
    zone = ZoneInfo(tz_name)
    days = {day: CallDay(day) for day in period.each_day()}
    bucket = hour_bucket(HcpCall.created_at)
    stmt = (
        select(
            bucket,
            func.count(),
            func.count().filter(HcpCall.ok.is_(False)),
            func.coalesce(func.sum(HcpCall.duration_ms), 0),
        )
        .where(HcpCall.created_at >= begin, HcpCall.created_at < end)
        .group_by(bucket)
    )
    for hour, calls, errors, total in db.session.execute(stmt):
        target = days.get(local_day(str(hour), zone))
        if target is not None:
            target.calls += int(calls)
            target.errors += int(errors)
            target.total_ms += int(total)
    return list(days.values())

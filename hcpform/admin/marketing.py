"""Marketing: visits, requests, jobs and revenue per source and campaign, ad spend, charts."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from flask import Response, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import delete, select

from .. import adspend, marketing, validation
from ..extensions import db
from ..marketing import Period, Report, Row
from ..models import AdSpend, Form
from ..timeutil import utcnow
from . import bp, charts
from .audit import record
from .filters import admin_tz, money
from .forms_marketing import (
    CSV_MAX_BYTES,
    DeleteSpendForm,
    MarketingFilterForm,
    SpendForm,
    SpendImportForm,
)
from .submissions import neutralise

TABLES = ("sources", "campaigns", "daily", "spend")
ROWS_SHOWN = 50  # per table on the page (the CSV files have every row): the page stays light


def filter_form(forms: list[Form]) -> MarketingFilterForm:
    """Return the page's filter form, read from the query string, with the forms to choose."""
    form = MarketingFilterForm(formdata=request.args)
    form.form.choices = [("", "All forms")] + [(f.slug, f.name) for f in forms]
    return form


def today() -> date:
    """Return today in the admin's time zone."""
    return validation.today_in(admin_tz(), utcnow())


class Context:
    """What the page and its CSV files read: the period, the form and the figures."""

    def __init__(self) -> None:
        self.forms = list(db.session.scalars(select(Form).order_by(Form.id)))
        self.filters = filter_form(self.forms)
        self.period: Period = self.filters.chosen(today())
        chosen = next((f for f in self.forms if f.slug == self.filters.form.data), None)
        self.form = chosen
        self.form_id = chosen.id if chosen else None
        self.tz = admin_tz()

    def report(self, dimensions: tuple[str, ...]) -> Report:
        """Return the figures grouped by these dimensions."""
        return marketing.report(self.period, self.tz, dimensions, self.form_id)

    def args(self) -> dict[str, str]:
        """Return the query values that reproduce this period and form."""
        period = self.filters.period
        values = {"period": "this_month" if period.errors else period.data or "this_month"}
        if values["period"] == "custom" and not self.filters.has_errors:
            values["date_from"] = self.period.start.isoformat()
            values["date_to"] = self.period.end.isoformat()
        if self.form is not None:
            values["form"] = self.form.slug
        return values

    def link(self, row: Row, dimensions: tuple[str, ...], stage: str) -> str:
        """Return the submissions list filtered to the requests behind one figure."""
        values: dict[str, Any] = {
            "date_from": self.period.start.isoformat(),
            "date_to": self.period.end.isoformat(),
            "stage": stage,
        }
        if row.key != ("Total",):
            values.update(
                {
                    dim: marketing.shown(value)
                    for dim, value in zip(dimensions, row.key, strict=True)
                }
            )
        if self.form is not None:
            values["form"] = self.form.slug
        return url_for("admin.submissions", **values)


@bp.get("/marketing")
def marketing_page() -> ResponseReturnValue:
    """Show the figures per source and campaign for a period, the charts and the ad spend."""
    ctx = Context()
    sources = ctx.report(("source",))
    campaigns = ctx.report(marketing.DIMENSIONS)
    daily = marketing.daily(ctx.period, ctx.tz, ctx.form_id)
    total = sources.total
    funnel = [
        ("Visits (first page)", total.visits),
        ("Started the form", total.started),
        ("Requests", total.leads),
        ("Jobs created", total.jobs),
        ("Jobs completed", total.completed),
    ]
    return render_template(
        "admin/marketing.html",
        ctx=ctx,
        filters=ctx.filters,
        period=ctx.period,
        sources=sources,
        campaigns=campaigns,
        daily=daily,
        funnel=funnel,
        charts=page_charts(ctx.period, sources, daily, funnel),
        spend=adspend.entries(),
        spend_form=SpendForm(),
        import_form=SpendImportForm(),
        shown=marketing.shown,
        csv_args=ctx.args(),
        limit=ROWS_SHOWN,
    ), (400 if ctx.filters.has_errors else 200)


def page_charts(
    period: Period, sources: Report, daily: marketing.Daily, funnel: list[tuple[str, int]]
) -> dict[str, Markup]:
    """Return the page's charts as inline SVG."""
    labels = [f"{d:%b %d}" for d in daily.days]
    paid = [r for r in sources.rows if r.revenue_cents][:12]
    return {
        "daily": charts.line_chart(
            "Requests and jobs per day",
            f"Requests received, jobs created in Housecall Pro and jobs completed each day "
            f"({period.label}). The numbers are in the table below the chart.",
            labels,
            [
                ("Requests", [daily.leads.get(d, 0) for d in daily.days]),
                ("Jobs created", [daily.jobs.get(d, 0) for d in daily.days]),
                ("Jobs completed", [daily.completed.get(d, 0) for d in daily.days]),
            ],
            whole=True,
        ),
        "funnel": charts.bar_chart(
            "From visit to completed job",
            f"How many people reached each stage ({period.label}): "
            + ", ".join(f"{label} {count}" for label, count in funnel)
            + ".",
            [label for label, _ in funnel],
            [count for _, count in funnel],
            series_name="People",
            formatter=lambda v: f"{v:,.0f}",
        ),
        "revenue": charts.bar_chart(
            "Revenue paid by source",
            f"Revenue paid on the requests received ({period.label}), by source: "
            + (
                ", ".join(f"{marketing.shown(r.key[0])} {money(r.revenue_cents)}" for r in paid)
                or "none"
            )
            + ".",
            [marketing.shown(r.key[0]) for r in paid],
            [r.revenue_cents / 100 for r in paid],
            series_name="Revenue paid",
            formatter=lambda v: f"${v:,.0f}",
        ),
    }


# ---------------------------------------------------------------- CSV


def _dollars(cents: int | None) -> str:
    return "" if cents is None else f"{cents / 100:.2f}"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def report_lines(report: Report) -> Iterable[list[Any]]:
    """Yield a report's CSV lines: the header, each row, then the totals."""
    spend = report.dimensions == ("source",)
    header = [*report.dimensions, "visits", "started", "requests", "jobs_created"]
    header += ["jobs_completed", "revenue_paid", "visit_to_start", "start_to_request"]
    header += ["request_to_job", "job_to_completed"]
    if spend:
        header += ["ad_spend", "cost_per_lead", "cost_per_completed_job", "return_on_ad_spend"]
    yield header
    for row in [*report.rows, report.total]:
        if row is report.total:
            key = ["Total"] + [""] * (len(report.dimensions) - 1)
        else:
            key = [marketing.shown(v) for v in row.key]
        line = [*key, row.visits, row.started, row.leads, row.jobs, row.completed]
        line += [_dollars(row.revenue_cents), _rate(row.start_rate), _rate(row.lead_rate)]
        line += [_rate(row.job_rate), _rate(row.completion_rate)]
        if spend:
            line += [_dollars(row.spend_cents), _dollars(row.cost_per_lead)]
            line += [_dollars(row.cost_per_job), "" if row.roas is None else f"{row.roas:.2f}"]
        yield line


def daily_lines(daily: marketing.Daily) -> Iterable[list[Any]]:
    """Yield the per-day CSV lines."""
    yield ["day", "requests", "jobs_created", "jobs_completed"]
    for day in daily.days:
        yield [day.isoformat(), daily.leads.get(day, 0), daily.jobs.get(day, 0),
               daily.completed.get(day, 0)]  # fmt: skip


def spend_lines(entries: list[AdSpend]) -> Iterable[list[Any]]:
    """Yield the ad spend CSV lines (the import's own format)."""
    yield list(adspend.CSV_HEADER)
    for entry in entries:
        yield [f"{entry.month:%Y-%m}", entry.source, _dollars(entry.amount_cents)]


def csv_response(lines: Iterable[list[Any]], name: str) -> Response:
    """Return CSV lines as a download, every cell neutralised against formula injection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for line in lines:
        writer.writerow([neutralise(cell) for cell in line])
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/marketing.csv")
def marketing_csv() -> ResponseReturnValue:
    """Download one of the page's tables as CSV (?table=sources|campaigns|daily|spend)."""
    table = request.args.get("table", "sources")
    if table not in TABLES:
        table = "sources"
    ctx = Context()
    period = ctx.period
    makers: dict[str, Callable[[], Iterable[list[Any]]]] = {
        "sources": lambda: report_lines(ctx.report(("source",))),
        "campaigns": lambda: report_lines(ctx.report(marketing.DIMENSIONS)),
        "daily": lambda: daily_lines(marketing.daily(period, ctx.tz, ctx.form_id)),
        "spend": lambda: spend_lines(adspend.entries(limit=100_000)),
    }
    record("export", target=f"marketing {table} CSV", detail=f"{period.start} to {period.end}")
    db.session.commit()
    name = f"marketing-{table}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"
    return csv_response(makers[table](), name)


# ---------------------------------------------------------------- ad spend


def _back() -> ResponseReturnValue:
    kept: dict[str, Any] = {
        k: v for k, v in request.args.items() if k in ("period", "date_from", "date_to", "form")
    }
    return redirect(url_for("admin.marketing_page", **kept) + "#spend-h", code=303)


@bp.post("/marketing/spend")
def save_spend() -> ResponseReturnValue:
    """Set one source's spend for one month."""
    form = SpendForm()
    if not form.validate_on_submit():
        for field in (form.month, form.source, form.amount):
            for message in field.errors:
                flash(f"{field.label.text}: {message}", "error")
        if "csrf_token" in form.errors:
            flash("The page had expired: enter the spend again.", "error")
        return _back()
    line = form.line()
    adspend.save(line, by=g.admin.email, now=utcnow())
    record(
        "ad spend",
        target=f"{line.source} {line.month:%Y-%m}",
        detail=money(line.amount_cents),
    )
    db.session.commit()
    flash(f"Saved: {money(line.amount_cents)} on {line.source} in {line.month:%B %Y}.", "success")
    return _back()


@bp.post("/marketing/spend/import")
def import_spend() -> ResponseReturnValue:
    """Import spend lines from a CSV file: all of them, or none when a line is wrong."""
    form = SpendImportForm()
    if not form.validate_on_submit():
        for message in form.file.errors or ["The page had expired: choose the file again."]:
            flash(str(message), "error")
        return _back()
    raw = form.file.data.read(CSV_MAX_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        flash("The file is not UTF-8 text: save it as CSV (UTF-8) and try again.", "error")
        return _back()
    lines, errors = adspend.parse_csv(text)
    if errors:
        flash("Nothing was imported. Fix these lines and import the file again:", "error")
        for message in errors[:50]:
            flash(message, "error")
        if len(errors) > 50:
            flash(f"… and {len(errors) - 50} more lines with problems.", "error")
        return _back()
    now = utcnow()
    for line in lines:
        adspend.save(line, by=g.admin.email, now=now)
    record("ad spend import", target=f"{len(lines)} lines")
    db.session.commit()
    flash(f"Imported {len(lines)} spend lines.", "success")
    return _back()


@bp.post("/marketing/spend/delete")
def delete_spend() -> ResponseReturnValue:
    """Remove one month's spend for a source."""
    form = DeleteSpendForm()
    spend_id = request.form.get("spend_id", type=int)
    if not form.validate_on_submit() or spend_id is None:
        flash("The page had expired: try again.", "error")
        return _back()
    entry = db.session.get(AdSpend, spend_id)
    if entry is None:
        flash("That spend was already removed.", "info")
        return _back()
    label = f"{entry.source} {entry.month:%Y-%m}"
    db.session.execute(delete(AdSpend).where(AdSpend.id == spend_id))
    record("ad spend removed", target=label)
    db.session.commit()
    flash(f"Removed the spend of {label}.", "success")
    return _back()

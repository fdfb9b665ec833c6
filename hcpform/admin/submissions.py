"""Submissions: the filtered list, its CSV export, one submission, and the actions on them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from .. import outbox, recurring
from ..extensions import db
from ..models import Form, Status, Submission
from ..timeutil import utcnow
from . import actions, bp, emergencies, stats
from .audit import record
from .filters import admin_time, admin_tz
from .forms import STATUS_LABELS, ManualForm, SelectedForm, SubmissionFilterForm

PER_PAGE = 50
CSV_COLUMNS = (
    "reference", "created_at", "status", "form", "first_name", "last_name", "phone", "email",
    "street", "street_line_2", "city", "state", "zip", "customer_type", "company",
    "service_type", "urgency", "booking_date", "booking_window", "description",
    "special_instructions", "source", "utm_source", "utm_medium", "utm_campaign", "utm_term",
    "utm_content", "click_id", "referrer", "landing_url", "hcp_customer_id", "hcp_job_id",
    "customer_matched_by", "attempts", "last_error", "manual_note", "hcp_record",
    "hcp_estimate_id", "hcp_lead_id", "hcp_status", "hcp_completed_at", "invoiced_cents",
    "paid_cents", "hcp_paid_at",
)  # fmt: skip
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> str:
    """Return a CSV cell that spreadsheets will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def filter_form() -> SubmissionFilterForm:
    """Return the list's filter form, read from the query string, with its live choices."""
    form = SubmissionFilterForm(formdata=request.args)
    form.form.choices = [("", "Any form")] + [
        (slug, name)
        for slug, name in db.session.execute(select(Form.slug, Form.name).order_by(Form.id))
    ]
    form.service_type.choices = [("", "Any service")] + [(n, n) for n in stats.service_type_names()]
    return form


def _page_url(page: int) -> str:
    args: dict[str, Any] = request.args.to_dict()
    args["page"] = str(page)
    return url_for("admin.submissions", **args)


@bp.get("/submissions")
def submissions() -> ResponseReturnValue:
    """List submissions, filtered and searched, newest first, 50 a page."""
    form = filter_form()
    filters = form.values()
    page = form.page.data if form.page.data and not form.page.errors else 1
    pagination = db.paginate(
        stats.submissions_query(filters, admin_tz()),
        page=page,
        per_page=PER_PAGE,
        max_per_page=PER_PAGE,
        error_out=False,
    )
    failed = db.session.scalar(
        select(func.count()).select_from(Submission).where(Submission.status == Status.FAILED)
    )
    export_args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "admin/submissions.html",
        form=form,
        pagination=pagination,
        page_url=_page_url,
        failed=failed,
        filtered=bool(filters),
        open_filters=bool(set(filters) - {"q"}),
        export_url=url_for("admin.submissions_csv", **export_args),
        selected_form=SelectedForm(),
        open_emergencies=None if filters or page > 1 else emergencies.banner(),
    )


@bp.get("/submissions.csv")
def submissions_csv() -> ResponseReturnValue:
    """Download the filtered list as CSV (every matching row, streamed)."""
    form = filter_form()
    filters = form.values()
    described = ", ".join(f"{k}={'…' if k == 'q' else v}" for k, v in sorted(filters.items()))
    record("export", target="submissions CSV", detail=described or "all submissions")
    db.session.commit()
    stmt = stats.submissions_query(filters, admin_tz()).execution_options(yield_per=500)

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        slugs = dict(db.session.execute(select(Form.id, Form.slug)).all())
        for sub in db.session.scalars(stmt):
            values = {c: getattr(sub, c, "") for c in CSV_COLUMNS}
            values["form"] = slugs.get(sub.form_id, "")
            values["hcp_record"] = sub.hcp_record[0] if sub.hcp_record else ""
            values["created_at"] = admin_time(sub.created_at, "%Y-%m-%d %H:%M:%S %Z")
            writer.writerow([neutralise(values[c]) for c in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    name = f"submissions-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/submissions/<int:sub_id>")
def submission(sub_id: int) -> ResponseReturnValue:
    """Show every answer, the attribution, the sync timeline, the HCP links and the actions."""
    sub = db.get_or_404(Submission, sub_id)
    return render_template(
        "admin/submission.html",
        sub=sub,
        answers=stats.answer_groups(sub),
        events=sorted(
            [*stats.timeline(sub.id), *assignment_events(sub)], key=lambda e: (e.at, e.kind)
        ),
        manual_form=ManualForm(),
        hcp_web=current_app.config["HCP_WEB_URL"].rstrip("/"),
        statuses=STATUS_LABELS,
        retryable=sub.status in actions.RETRYABLE or sub.status == Status.SYNCING,
        manual_allowed=sub.status in actions.MANUAL_FROM,
        follow_ups=recurring.follow_ups(sub) if sub.repeat_every else [],
        emails=outbox.for_submission(sub.id),
        mail_on=outbox.mail_on(),
    )


def assignment_events(sub: Submission) -> list[stats.Event]:
    """Return the timeline lines of who does the work: the pro chosen (or none), the dispatch."""
    events = []
    if sub.assigned_at is not None:
        if sub.hcp_employee_id:
            title = f"Assigned to {sub.hcp_employee_name or sub.hcp_employee_id}"
            who = f" ({sub.hcp_employee_id})" if sub.hcp_employee_name else ""
            events.append(
                stats.Event(sub.assigned_at, "assignment", title + who, "assigned", None,
                            sub.assignment_note, True)
            )  # fmt: skip
        else:
            events.append(
                stats.Event(sub.assigned_at, "assignment", "Needs assignment", "unassigned",
                            None, sub.assignment_note, None)
            )  # fmt: skip
    if sub.dispatched_at is not None:
        events.append(
            stats.Event(sub.dispatched_at, "assignment",
                        f"Dispatched to {sub.hcp_employee_name or sub.hcp_employee_id}",
                        "dispatched", None, "", True)
        )  # fmt: skip
    return events


def _back(sub_id: int) -> ResponseReturnValue:
    return redirect(url_for("admin.submission", sub_id=sub_id), code=303)


def _act(
    sub_id: int,
    do: Callable[[Submission], None],
    *,
    audit: str,
    done: str,
    detail: str = "",
    then: str | None = None,
) -> ResponseReturnValue:
    """Run one action on a submission: refuse it with the reason, or audit, commit and say so."""
    sub = db.get_or_404(Submission, sub_id)
    reference = sub.reference  # still readable after a delete
    try:
        do(sub)
    except actions.ActionRefused as exc:
        flash(str(exc), "error")
        return _back(sub_id)
    record(audit, target=reference, detail=detail)
    db.session.commit()
    flash(done.format(ref=reference), "success")
    return redirect(then, code=303) if then else _back(sub_id)


@bp.post("/submissions/<int:sub_id>/retry")
def retry(sub_id: int) -> ResponseReturnValue:
    """Send one submission to the queue again now."""
    return _act(
        sub_id,
        lambda sub: actions.retry(sub, now=utcnow()),
        audit="retry",
        done="{ref} is queued and will be sent to Housecall Pro in a moment.",
    )


@bp.post("/submissions/<int:sub_id>/manual")
def mark_manual(sub_id: int) -> ResponseReturnValue:
    """Mark one submission as handled by hand in HCP, with a note."""
    db.get_or_404(Submission, sub_id)  # an unknown id is a 404 before the note is checked
    form = ManualForm()
    if not form.validate_on_submit():
        flash(" ".join(form.note.errors) or "Write a short note.", "error")
        return _back(sub_id)
    return _act(
        sub_id,
        lambda sub: actions.mark_manual(sub, (form.note.data or "").strip(), now=utcnow()),
        audit="manual",
        done="{ref} is marked as handled manually; the sync leaves it alone.",
    )


@bp.post("/submissions/<int:sub_id>/release")
def release(sub_id: int) -> ResponseReturnValue:
    """Send a quarantined submission to HCP after all."""
    return _act(
        sub_id,
        lambda sub: actions.release(sub, now=utcnow()),
        audit="release",
        done="{ref} is released and queued for Housecall Pro.",
    )


@bp.post("/submissions/<int:sub_id>/delete")
def delete(sub_id: int) -> ResponseReturnValue:
    """Delete a quarantined submission (spam)."""
    return _act(
        sub_id,
        actions.delete_quarantined,
        audit="delete",
        detail="quarantined submission deleted",
        done="{ref} is deleted.",
        then=url_for("admin.submissions", status=Status.QUARANTINED),
    )


@bp.post("/submissions/<int:sub_id>/stop-repeating")
def stop_repeating(sub_id: int) -> ResponseReturnValue:
    """End a repeating visit's series: no more follow-up requests are made for it."""

    def stop(sub: Submission) -> None:
        if not recurring.stop_repeating(sub, now=utcnow()):
            raise actions.ActionRefused(f"{sub.reference} does not repeat (any more).")

    return _act(
        sub_id,
        stop,
        audit="stop repeating",
        done="{ref} no longer repeats: no more follow-up requests will be made for it.",
    )


@bp.post("/submissions/retry")
def bulk_retry() -> ResponseReturnValue:
    """Retry the ticked submissions, or (all_failed=1) the failed ones."""
    form = SelectedForm()
    form.validate()
    everything = request.form.get("all_failed") == "1"
    ids = None if everything else [i for i in (form.ids.data or []) if isinstance(i, int)]
    if ids == []:
        flash("Tick the submissions to retry first.", "error")
        return redirect(url_for("admin.submissions"), code=303)
    retried = actions.retry_many(ids, now=utcnow())
    record(
        "bulk retry",
        target=f"{len(retried)} submissions",
        detail="all failed" if everything else f"ids {', '.join(map(str, retried[:50]))}",
    )
    db.session.commit()
    flash(f"{len(retried)} submissions are queued again.", "success")
    if everything and len(retried) == actions.BULK_LIMIT:
        flash(f"Up to {actions.BULK_LIMIT} are retried at a time: click again for more.", "info")
    return redirect(
        url_for("admin.submissions", status=request.form.get("status") or None), code=303
    )

"""Abandoned requests: the list (furthest step, age, service, ZIP, masked contact, lead) and
each form's settings (idle minutes, send to HCP as a lead)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from .. import abandoned, submissions
from ..extensions import db
from ..models import Form
from ..redact import redact
from ..timeutil import utcnow
from . import bp
from .audit import record
from .forms_leads import AbandonedSettingsForm

PER_PAGE = 50


def _row(form: Form, row: Any, draft: Any) -> dict[str, Any]:
    """Return what the list shows of one abandoned request (contact masked)."""
    phone, email = submissions.contact_of(form, draft.answers or {})
    return {
        "row": row,
        "draft": draft,
        "form": form,
        "progress": abandoned.progress(form, draft).label,
        "age": abandoned.age_text(draft.updated_at),
        "service": abandoned.answer(form, draft, "booking_type"),
        "zip": abandoned.answer(form, draft, "zip"),
        "contact": " · ".join(redact(v) for v in (phone, email) if v),
        "resume_url": url_for(
            "wizard.resume", slug=form.slug, token=row.resume_token, _external=True
        ),
    }


@bp.get("/abandoned")
def abandoned_list() -> ResponseReturnValue:
    """List open abandoned requests, most recently active first."""
    forms = list(db.session.scalars(select(Form).order_by(Form.id)))
    by_id = {f.id: f for f in forms}
    form_id = request.args.get("form", type=int)
    stmt = abandoned.listed(now=utcnow(), form_id=form_id if form_id in by_id else None)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    pagination = db.paginate(
        stmt, page=page, per_page=PER_PAGE, max_per_page=PER_PAGE, error_out=False
    )
    rows = [_row(by_id[r.form_id], r, r.draft) for r in pagination.items]
    settings = {
        f.id: AbandonedSettingsForm(
            formdata=None,
            prefix=f"f{f.id}",
            data={
                "abandoned_after_minutes": f.abandoned_after_minutes,
                "abandoned_to_hcp": f.abandoned_to_hcp,
            },
        )
        for f in forms
    }
    return render_template(
        "admin/abandoned.html",
        rows=rows,
        pagination=pagination,
        forms=forms,
        form_id=form_id,
        settings=settings,
        page_url=lambda n: url_for("admin.abandoned_list", form=form_id, page=n),
        hcp_web=current_app.config["HCP_WEB_URL"],
    )


@bp.post("/abandoned/settings/<int:form_id>")
def abandoned_settings(form_id: int) -> ResponseReturnValue:
    """Save one form's abandoned-request settings."""
    form = db.session.get(Form, form_id)
    if form is None:
        abort(404)
    wt = AbandonedSettingsForm(prefix=f"f{form.id}")
    if not wt.validate():
        for errors in wt.errors.values():
            for message in errors:
                flash(f"{form.name}: {message}", "error")
        return redirect(url_for("admin.abandoned_list"), code=303)
    form.abandoned_after_minutes = int(wt.abandoned_after_minutes.data or 60)
    form.abandoned_to_hcp = bool(wt.abandoned_to_hcp.data)
    record(
        "abandoned settings",
        target=f"form {form.slug}",
        detail=f"after {form.abandoned_after_minutes} min; to HCP: {form.abandoned_to_hcp}",
    )
    db.session.commit()
    flash(f"Saved the abandoned-request settings of {form.name}.", "success")
    return redirect(url_for("admin.abandoned_list"), code=303)

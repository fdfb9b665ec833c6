"""The dashboard: sync health, HCP latency, the funnel and out-of-area demand."""

from __future__ import annotations

from flask import abort, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from ..connection import connection_row, key_source
from ..extensions import db
from ..models import Form
from ..timeutil import utcnow
from . import bp, emergencies, failures, stats


@bp.get("/")
def dashboard() -> ResponseReturnValue:
    """Show the figures for a period (?days=1|7|30|90) and, optionally, one form (?form=slug)."""
    days = request.args.get("days", 7, type=int)
    if days not in stats.PERIODS:
        days = 7
    forms = list(db.session.scalars(select(Form).order_by(Form.id)))
    if not forms:
        abort(404)
    slug = request.args.get("form", "")
    chosen = next((f for f in forms if f.slug == slug), None)
    figures = stats.dashboard(utcnow(), days, chosen or forms[0], chosen.id if chosen else None)
    conn = connection_row()
    return render_template(
        "admin/dashboard.html",
        figures=figures,
        periods=stats.PERIODS,
        forms=forms,
        chosen=chosen,
        conn=conn,
        key_source=key_source(conn),
        open_emergencies=emergencies.banner(),
        sync_health=failures.sync_health(utcnow(), days),
    )

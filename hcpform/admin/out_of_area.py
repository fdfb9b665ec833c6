"""Out-of-area requests: the list filtered by ZIP and period, its CSV export, and demand by
ZIP with the distance from the nearest served ZIP (offline coordinates, no map)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, func, select

from .. import zipgeo
from ..extensions import db
from ..models import Form, OutOfAreaRequest
from ..timeutil import utcnow
from . import bp
from .audit import record
from .filters import admin_time, admin_tz
from .forms_leads import OutOfAreaFilterForm
from .stats import local_day_start
from .submissions import neutralise

PER_PAGE = 100
CSV_COLUMNS = (
    "created_at", "form", "zip", "place", "email", "nearest_served_zip", "miles",
)  # fmt: skip
DEMAND_COLUMNS = (
    "zip", "place", "form", "requests", "with_email", "first", "last", "nearest_served_zip",
    "miles",
)  # fmt: skip


@dataclass
class Demand:
    """Requests from one ZIP (for one form), and how far it is from the area served."""

    zip: str
    place: str
    form: Form
    requests: int
    with_email: int
    first: datetime
    last: datetime
    nearest: str
    miles: float | None


def _filters() -> tuple[OutOfAreaFilterForm, list[Any]]:
    """Return the filter form (from the query string) and the conditions it asks for."""
    wt = OutOfAreaFilterForm(formdata=request.args)
    conditions: list[Any] = []
    if not wt.validate():
        return wt, conditions
    tz = admin_tz()
    if wt.zip.data:
        conditions.append(OutOfAreaRequest.zip.startswith(wt.zip.data, autoescape=True))
    if wt.since.data:
        conditions.append(OutOfAreaRequest.created_at >= local_day_start(wt.since.data, tz))
    if wt.until.data:
        end = local_day_start(wt.until.data + timedelta(days=1), tz)
        conditions.append(OutOfAreaRequest.created_at < end)
    return wt, conditions


def _query(conditions: list[Any]) -> Select[OutOfAreaRequest]:
    return (
        select(OutOfAreaRequest)
        .where(*conditions)
        .order_by(OutOfAreaRequest.created_at.desc(), OutOfAreaRequest.id.desc())
    )


def _nearest(form: Form | None, zip_code: str) -> tuple[str, float | None]:
    """Return the nearest ZIP the form serves and the distance in miles (or blanks)."""
    found = zipgeo.nearest(zip_code, form.service_area_zips if form else [])
    return (found[0], round(found[1], 1)) if found else ("", None)


def demand(conditions: list[Any], forms: dict[int, Form]) -> list[Demand]:
    """Return requests grouped by ZIP and form, most requested first."""
    zip5 = func.substr(OutOfAreaRequest.zip, 1, 5)
    rows = db.session.execute(
        select(
            zip5,
            OutOfAreaRequest.form_id,
            func.count(),
            func.count(func.nullif(OutOfAreaRequest.email, "")),
            func.min(OutOfAreaRequest.created_at),
            func.max(OutOfAreaRequest.created_at),
        )
        .where(*conditions)
        .group_by(zip5, OutOfAreaRequest.form_id)
        .order_by(func.count().desc(), zip5)
    ).all()
    table = []
    for code, form_id, count, with_email, first, last in rows:
        form = forms[form_id]
        nearest, miles = _nearest(form, code)
        table.append(
            Demand(code, zipgeo.place(code), form, count, with_email, first, last, nearest, miles)
        )
    return table


@bp.get("/out-of-area")
def out_of_area() -> ResponseReturnValue:
    """List out-of-area requests (filtered) and the demand by ZIP."""
    wt, conditions = _filters()
    forms = {f.id: f for f in db.session.scalars(select(Form))}
    page = max(1, request.args.get("page", 1, type=int) or 1)
    pagination = db.paginate(
        _query(conditions), page=page, per_page=PER_PAGE, max_per_page=PER_PAGE, error_out=False
    )
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "admin/out_of_area.html",
        wt=wt,
        pagination=pagination,
        forms=forms,
        demand=demand(conditions, forms),
        place=zipgeo.place,
        page_url=lambda n: url_for("admin.out_of_area", **args, page=n),
        export_url=url_for("admin.out_of_area_csv", **args),
        demand_url=url_for("admin.out_of_area_csv", **args, table="demand"),
    )


@bp.get("/out-of-area.csv")
def out_of_area_csv() -> ResponseReturnValue:
    """Download the filtered requests, or the demand by ZIP (?table=demand), as CSV."""
    _wt, conditions = _filters()
    forms = {f.id: f for f in db.session.scalars(select(Form))}
    by_zip = request.args.get("table") == "demand"
    record("export", target="out-of-area CSV", detail="demand by ZIP" if by_zip else "requests")
    db.session.commit()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if by_zip:
        writer.writerow(DEMAND_COLUMNS)
        for d in demand(conditions, forms):
            writer.writerow(
                neutralise(v)
                for v in (
                    d.zip, d.place, d.form.slug, d.requests, d.with_email,
                    admin_time(d.first), admin_time(d.last), d.nearest,
                    "" if d.miles is None else f"{d.miles:.1f}",
                )
            )  # fmt: skip
    else:
        writer.writerow(CSV_COLUMNS)
        for oar in db.session.scalars(_query(conditions)):
            form = forms.get(oar.form_id)
            nearest, miles = _nearest(form, oar.zip)
            writer.writerow(
                neutralise(v)
                for v in (
                    admin_time(oar.created_at, "%Y-%m-%d %H:%M:%S %Z"), form.slug if form else "",
                    oar.zip, zipgeo.place(oar.zip), oar.email, nearest,
                    "" if miles is None else f"{miles:.1f}",
                )
            )  # fmt: skip
    name = f"out-of-area{'-demand' if by_zip else ''}-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

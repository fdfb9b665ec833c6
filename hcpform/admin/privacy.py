"""Privacy requests (find, export, erase a person's data) and the read-only audit log."""

from __future__ import annotations

import json

from flask import Response, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from .. import validation
from ..extensions import db
from ..models import AuditEntry
from ..timeutil import utcnow
from . import bp, people
from .audit import record
from .forms import EraseForm, PersonForm

AUDIT_PER_PAGE = 50


def _person(wt: PersonForm) -> people.Person | None:
    """Return the person the form names, or None with the reason on the field."""
    if not wt.validate_on_submit():
        return None
    try:
        return people.identify(wt.who.data or "")
    except validation.Invalid as exc:
        wt.who.errors = [*wt.who.errors, str(exc)]
        return None


def _hcp_web() -> str:
    url: str = current_app.config["HCP_WEB_URL"]
    return url.rstrip("/")


def _page(wt: PersonForm, status: int | None = None, **ctx: object) -> ResponseReturnValue:
    status = status or (400 if wt.errors else 200)
    return render_template("admin/privacy.html", wt=wt, hcp_web=_hcp_web(), **ctx), status


@bp.route("/privacy", methods=["GET", "POST"])
def privacy() -> ResponseReturnValue:
    """Find what is stored about a person (POSTed, so no personal data goes in a URL)."""
    wt = PersonForm()
    person = _person(wt) if request.method == "POST" else None
    if person is None:
        return _page(wt)
    found = people.find(person)
    record("privacy search", target=person.tag)
    db.session.commit()
    erase_form = EraseForm(formdata=None, who=wt.who.data)
    return _page(wt, found=found, erase_form=erase_form)


@bp.post("/privacy/export")
def privacy_export() -> ResponseReturnValue:
    """Download everything stored about the person as JSON."""
    wt = PersonForm()
    person = _person(wt)
    if person is None:
        return _page(wt)
    now = utcnow()
    found = people.find(person)
    data = people.export(person, found, now=now)
    record(
        "export",
        target=person.tag,
        detail=f"{len(found.submissions)} submissions, {len(found.drafts)} drafts, "
        f"{len(found.out_of_area)} out-of-area requests, {len(found.calls)} HCP calls",
    )
    db.session.commit()
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False, default=str),
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="personal-data-{now:%Y%m%d-%H%M}.json"'
        },
    )


@bp.post("/privacy/erase")
def privacy_erase() -> ResponseReturnValue:
    """Anonymise the person's submissions, delete their drafts and out-of-area requests."""
    wt = EraseForm()
    person = _person(wt)
    if person is None:
        found = None
        if not wt.who.errors:  # only the confirmation is missing: show the findings again
            try:
                found = people.find(people.identify(wt.who.data or ""))
            except validation.Invalid as exc:
                wt.who.errors = [*wt.who.errors, str(exc)]
        search = PersonForm(formdata=None, who=wt.who.data)
        search.who.errors = list(wt.who.errors)  # say why beside the search box
        return _page(search, 400, found=found, erase_form=wt)
    found = people.find(person)
    hcp_customers = sorted({s.hcp_customer_id for s in found.submissions if s.hcp_customer_id})
    counts = people.erase(found, now=utcnow())
    record("erase", target=person.tag, detail=", ".join(f"{v} {k}" for k, v in counts.items()))
    db.session.commit()
    return render_template(
        "admin/privacy_erased.html", counts=counts, hcp_customers=hcp_customers, hcp_web=_hcp_web()
    )


@bp.get("/audit")
def audit() -> ResponseReturnValue:
    """Show the audit log, newest first (read-only: there is no route to change it)."""
    action = request.args.get("action", "")[:64]
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc())
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    pagination = db.paginate(
        stmt, page=page, per_page=AUDIT_PER_PAGE, max_per_page=AUDIT_PER_PAGE, error_out=False
    )
    actions = db.session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))

    def page_url(number: int) -> str:
        return url_for("admin.audit", page=number, action=action or None)

    return render_template(
        "admin/audit.html",
        pagination=pagination,
        action=action,
        actions=list(actions),
        page_url=page_url,
    )

"""Form settings and field mapping; new forms from the HousecallPro template.

The wizard reads the Form row on every request, so a saved change is live at once.
"""

from __future__ import annotations

from typing import Any, cast

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from .. import assignment, formdefs
from ..extensions import db
from ..models import Form, Submission
from ..timeutil import utcnow
from ..validation import format_phone
from . import bp, settings
from .audit import record
from .form_editor import (
    FormSettingsForm,
    NewFormForm,
    format_time_windows,
    mapping_form,
)

SIMPLE_FIELDS = (
    "name", "published", "sync_enabled", "submissions_per_hour", "booking_horizon_days",
    "business_name", "brand_color", "logo_url", "scheduling_mode", "booking_days",
    "lead_time_minutes", "use_service_zones", "dispatch_jobs", "emergency_job_type_id",
    "contact_method_default",
)  # fmt: skip
# Settings of a service type the page does not edit; a save keeps them (by the type's name).


def _form_or_404(slug: str) -> Form:
    form: Form = db.one_or_404(select(Form).where(Form.slug == slug))
    return form


@bp.get("/forms")
def forms() -> ResponseReturnValue:
    """List the forms with their state."""
    rows = db.session.scalars(select(Form).order_by(Form.id)).all()
    counts = dict(
        db.session.execute(
            select(Submission.form_id, func.count()).group_by(Submission.form_id)
        ).all()
    )
    return render_template(
        "admin/forms.html",
        rows=[(f, counts.get(f.id, 0), settings.publish_problem(f.definition)) for f in rows],
    )


@bp.route("/forms/new", methods=["GET", "POST"])
def new_form() -> ResponseReturnValue:
    """Create a form from the HousecallPro Service Request Template."""
    wt = NewFormForm()
    if wt.validate_on_submit():
        try:
            created = settings.create_form(wt.slug.data or "", (wt.name.data or "").strip())
        except ValueError as exc:
            # The stubs say Sequence; after validation WTForms keeps a list, which the page reads.
            cast("list[str]", wt.slug.errors).append(str(exc))
        else:
            record("form created", target=created.slug, detail=formdefs.TEMPLATE_NAME)
            db.session.commit()
            flash(
                "Form created from the template. Review its settings, then publish it.", "success"
            )
            return redirect(url_for("admin.form_settings", slug=created.slug), code=303)
    status = 400 if wt.errors else 200
    return render_template("admin/form_new.html", wt=wt, template=formdefs.TEMPLATE_NAME), status


def _initial(form: Form, lists: settings.HcpLists) -> dict[str, Any]:
    """Return the settings form's values for a Form row (plus one blank service-type row)."""
    data: dict[str, Any] = {name: getattr(form, name) for name in SIMPLE_FIELDS}
    data["service_types"] = [
        {
            "name": s["name"],
            "job_type_id": s.get("job_type_id") or "",
            "creates": formdefs.record_kind(form.service_types, s["name"]),
            "duration_minutes": str(s.get("duration_minutes") or ""),
            "employee_ids": list(s.get("employee_ids") or []),
            "repeats": formdefs.repeat_frequency(form.service_types, s["name"]),
        }
        for s in form.service_types
    ] + [{"name": "", "job_type_id": "", "creates": "job", "employee_ids": [], "repeats": ""}]
    data["service_area_zips"] = ", ".join(form.service_area_zips or [])
    data["time_windows"] = format_time_windows(form.time_windows or [])
    data["closed_weekdays"] = list(form.closed_weekdays or [])
    data["closed_dates"] = "\n".join(form.closed_dates or [])
    data["allowed_domains"] = "\n".join(form.allowed_domains or [])
    data["business_phone"] = format_phone(form.business_phone) if form.business_phone else ""
    data["terms"] = form.current_terms.text if form.current_terms else ""
    data["territories"] = assignment.format_territories(
        form.territories or {}, lists.employees, readable=not lists.problem
    )
    data["emergency_keywords"] = "\n".join(form.emergency_keywords or [])
    data["office_emails"] = ", ".join(form.office_emails or [])
    return data


def _employee_choices(lists: settings.HcpLists, chosen: list[str]) -> list[tuple[str, str]]:
    """Return HCP's employees by name, then any chosen id HCP no longer has, marked as such."""
    choices = []
    for e in sorted(lists.employees, key=lambda e: assignment.employee_name(e).casefold()):
        name = assignment.employee_name(e)
        choices.append(
            (str(e["id"]), name if assignment.bookable(e) else f"{name} (not booked online)")
        )
    known = {c[0] for c in choices}
    note = "can't check now" if lists.problem else "no longer in HCP"
    choices += [(i, f"{i} ({note})") for i in chosen if i not in known]
    return choices


def employee_warnings(form: Form, lists: settings.HcpLists) -> list[str]:
    """Return a warning for each pro a form's rules name that HCP no longer has."""
    if lists.problem:
        return []
    ids = {str(e["id"]) for e in lists.employees}
    gone = [
        (s["name"], i)
        for s in form.service_types
        for i in s.get("employee_ids") or []
        if i not in ids
    ] + [("Territories", i) for i in form.territories or {} if i not in ids]
    return [
        f"{where} names the pro {employee_id}, who is no longer in Housecall Pro. "
        "Untick or remove them."
        for where, employee_id in gone
    ]


def _job_type_choices(form: Form, lists: settings.HcpLists) -> list[tuple[str, str]]:
    choices = [("", "Match by name, else the default job type")]
    choices += [(jt["id"], jt.get("name") or jt["id"]) for jt in lists.job_types]
    known = dict(choices)
    for service in form.service_types:
        jt = service.get("job_type_id")
        if jt and jt not in known:
            note = "can't check now" if lists.problem else "no longer in HCP"
            choices.append((jt, f"{jt} ({note})"))
            known[jt] = jt
    return choices


def emergency_job_type_choices(form: Form, choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the emergency job type's choices: the service type's own, or one of HCP's."""
    ours = [("", "The service type's job type (no special emergency type)")] + choices[1:]
    if form.emergency_job_type_id and form.emergency_job_type_id not in dict(ours):
        ours.append((form.emergency_job_type_id, f"{form.emergency_job_type_id} (not in HCP now)"))
    return ours


def job_type_warnings(form: Form, lists: settings.HcpLists) -> list[str]:
    """Return a warning for each service type mapped to a job type HCP no longer has."""
    if lists.problem:
        return []
    return [
        f"The HCP job type mapped to '{s['name']}' no longer exists in Housecall Pro. "
        "Choose another one, or submissions of this service type will fail."
        for s in form.service_types
        if s.get("job_type_id") and s["job_type_id"] not in lists.job_type_ids
    ]


@bp.route("/forms/<slug>", methods=["GET", "POST"])
def form_settings(slug: str) -> ResponseReturnValue:
    """Edit a form's settings (not its field mapping)."""
    form = _form_or_404(slug)
    lists = settings.hcp_lists()
    wt = FormSettingsForm(data=_initial(form, lists))
    choices = _job_type_choices(form, lists)
    # Ids HCP no longer has stay choices only where they are stored (never from the POST).
    stored = list(dict.fromkeys(i for s in form.service_types for i in s.get("employee_ids") or []))
    pros = _employee_choices(lists, stored)
    for entry in wt.service_types:
        entry.form.job_type_id.choices = choices
        entry.form.employee_ids.choices = pros
    wt.employees, wt.employees_readable = lists.employees, not lists.problem
    wt.stored_territories = dict(form.territories or {})
    wt.emergency_job_type_id.choices = emergency_job_type_choices(form, choices)
    if wt.validate_on_submit():
        problem = settings.publish_problem(form.definition) if wt.published.data else ""
        if problem:
            cast("list[str]", wt.published.errors).append(
                problem + ". Map them in Field mapping first."
            )
        else:
            values = {name: wt[name].data for name in SIMPLE_FIELDS} | wt.cleaned
            values["service_types"] = keep_other_settings(form, values["service_types"])
            values["name"] = values["name"].strip()
            changed = settings.apply_form_settings(form, values, wt.terms.data or "", now=utcnow())
            record("form saved", target=form.slug, detail=", ".join(changed) or "no change")
            db.session.commit()
            flash("Saved. The live form uses these settings now.", "success")
            return redirect(url_for("admin.form_settings", slug=form.slug), code=303)
    return (
        render_template(
            "admin/form_settings.html",
            form_row=form,
            wt=wt,
            lists=lists,
            warnings=job_type_warnings(form, lists) + employee_warnings(form, lists),
            problem=settings.publish_problem(form.definition),
        ),
        400 if wt.errors else 200,
    )


def keep_other_settings(form: Form, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the edited service types keeping each one's settings this page does not show.

    "creates" and "repeats" are stored only when not the default (a job; no repeat), and a
    visit length or a list of pros only when set, so old rows stay as they were.
    """
    old = {s.get("name"): s for s in form.service_types or []}
    merged = [{**old.get(e["name"], {}), **e} for e in entries]
    unset: dict[str, tuple[Any, ...]] = {
        "creates": ("job", None),
        "repeats": ("", None),
        "duration_minutes": (None,),
        "employee_ids": ([],),
    }
    return [{k: v for k, v in m.items() if v not in unset.get(k, ())} for m in merged]


@bp.post("/forms/<slug>/leads-only")
def form_leads_only(slug: str) -> ResponseReturnValue:
    """Make every service type of the form create an HCP lead (a business that triages by phone)."""
    form = _form_or_404(slug)
    form.service_types = [{**s, "creates": "lead"} for s in form.service_types or []]
    record("form saved", target=form.slug, detail="leads only: every service type creates a lead")
    db.session.commit()
    flash("Every service type of this form now creates a lead in Housecall Pro.", "success")
    return redirect(url_for("admin.form_settings", slug=form.slug), code=303)


@bp.route("/forms/<slug>/fields", methods=["GET", "POST"])
def form_fields(slug: str) -> ResponseReturnValue:
    """Map each wizard field to a Housecall Pro key."""
    form = _form_or_404(slug)
    fields = list(formdefs.iter_fields(form.definition))
    wt = mapping_form(form.definition)
    errors: list[str] = []
    if wt.validate_on_submit():
        chosen = [wt[f"key_{i}"].data or None for i in range(len(fields))]
        errors = settings.mapping_errors(form.definition, chosen, published=form.published)
        if not errors:
            changes = settings.apply_mapping(form, chosen)
            record("mapping saved", target=form.slug, detail="; ".join(changes) or "no change")
            db.session.commit()
            flash("Field mapping saved.", "success")
            return redirect(url_for("admin.form_fields", slug=form.slug), code=303)
    rows = [(step, fdef, wt[f"key_{i}"]) for i, (step, fdef) in enumerate(fields)]
    return (
        render_template(
            "admin/form_fields.html",
            form_row=form,
            wt=wt,
            rows=rows,
            mapping_errors=errors,
            problem=settings.publish_problem(form.definition),
            required=formdefs.REQUIRED_HCP_KEYS,
        ),
        400 if errors or wt.errors else 200,
    )

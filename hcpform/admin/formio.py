"""A form's definition and settings as JSON ("hcpform-form/1"): export, import, duplicate.

Used by the admin (download, upload, duplicate) and by `flask --app hcpform form export|import`.
An import is checked by the settings page's own WTForms (so it refuses what that page refuses,
with the same messages), by the field mapping's rules, and by the slug rule of a new form; on any
refusal the session is rolled back and nothing changes. The format is described in docs/forms.md.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from .. import assignment, formdefs
from ..extensions import db
from ..models import Form
from ..timeutil import utcnow
from . import settings
from .audit import record
from .form_editor import FormSettingsForm, NewFormForm, format_time_windows, window_id
from .forms_leads import AbandonedSettingsForm
from .forms_settings import SIMPLE_FIELDS, keep_other_settings

FORMAT = "hcpform-form/1"
# Every key of the file, in the order it is written, with the JSON type each value must have.
KEYS: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "slug": (str,),
    "name": (str,),
    "definition": (dict,),
    "terms": (str,),
    "service_types": (list,),
    "service_area_zips": (list,),
    "time_windows": (list,),
    "closed_weekdays": (list,),
    "closed_dates": (list,),
    "booking_horizon_days": (int,),
    "scheduling_mode": (str,),
    "booking_days": (int,),
    "lead_time_minutes": (int,),
    "time_zone": (str,),
    "territories": (dict,),
    "use_service_zones": (bool,),
    "dispatch_jobs": (bool,),
    "emergency_keywords": (list,),
    "emergency_job_type_id": (str,),
    "contact_method_default": (str,),
    "office_emails": (list,),
    "allowed_domains": (list,),
    "business_name": (str,),
    "business_phone": (str,),
    "brand_color": (str,),
    "logo_url": (str,),
    "language": (str,),
    "sync_enabled": (bool,),
    "submissions_per_hour": (int,),
    "abandoned_after_minutes": (int,),
    "abandoned_to_hcp": (bool,),
}
REQUIRED = ("format", "slug", "name", "definition")
SERVICE_TYPE_KEYS = (
    "name",
    "job_type_id",
    "creates",
    "duration_minutes",
    "employee_ids",
    "repeats",
)
WINDOW_KEYS = ("id", "label", "start", "end")
# A service type's values and their JSON types (null is always allowed: the page's default).
ENTRY_TYPES: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("name", (str,), "a text"),
    ("job_type_id", (str,), "a text"),
    ("creates", (str,), "a text"),
    ("duration_minutes", (int,), "a whole number"),
    ("employee_ids", (list,), "a list"),
    ("repeats", (str,), "a text"),
)
LANGUAGE_RE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
# The settings page's plain settings ("published" is the import's --publish, not the file's).
PLAIN = tuple(name for name in SIMPLE_FIELDS if name != "published")


class ImportRefused(ValueError):
    """An import that was refused; `errors` names each problem ("key: message")."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class ImportResult:
    """What an import did: the form, whether it was created, and what changed."""

    form: Form
    created: bool
    changes: list[str] = field(default_factory=list)
    unpublished_because: str = ""


def export_form(form: Form) -> dict[str, Any]:
    """Return everything that defines a form (no ids, no submissions, no secrets)."""
    data: dict[str, Any] = {"format": FORMAT}
    for key in KEYS:
        if key == "format":
            continue
        if key == "terms":
            data[key] = form.current_terms.text if form.current_terms else ""
        else:
            data[key] = copy.deepcopy(getattr(form, key))
    return data


def dumps(form: Form) -> str:
    """Return the form's export as indented JSON text (UTF-8, keys in the documented order)."""
    return json.dumps(export_form(form), indent=2, ensure_ascii=False) + "\n"


def loads(text: str | bytes) -> dict[str, Any]:
    """Parse an export file.

    Raises:
        ImportRefused: when the text is not a JSON object.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportRefused([f"The file is not valid JSON ({exc})"]) from exc
    if not isinstance(data, dict):
        raise ImportRefused(["The file must hold one JSON object, the form"])
    return data


def _shape_errors(data: dict[str, Any]) -> list[str]:
    """Return the format, unknown, missing and mistyped keys of a file."""
    if data.get("format") != FORMAT:
        return [f'format: this file is not an hcpform form export (expected "{FORMAT}")']
    errors = []
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        errors.append("Unknown keys (remove them): " + ", ".join(unknown))
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        errors.append("Missing keys: " + ", ".join(missing))
    names = {dict: "an object", list: "a list", str: "a text", int: "a whole number",
             bool: "true or false"}  # fmt: skip
    for key, value in data.items():
        kinds = KEYS.get(key)
        if kinds and not _is(value, kinds):
            errors.append(f"{key}: must be {names[kinds[0]]}")
    territories = data.get("territories")
    if isinstance(territories, dict) and not all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in territories.values()
    ):
        errors.append('territories: give each pro a list of ZIPs or prefixes, like ["787"]')
    for i, entry in enumerate(data.get("service_types") or [], start=1):
        if not isinstance(entry, dict):
            errors.append(f"service_types[{i}]: must be an object")
        elif extra := [k for k in entry if k not in SERVICE_TYPE_KEYS]:
            errors.append(f"service_types[{i}]: unknown keys (remove them): " + ", ".join(extra))
        else:
            errors += [
                f"service_types[{i}].{key}: must be {what}"
                for key, kinds, what in ENTRY_TYPES
                if key in entry and entry[key] is not None and not _is(entry[key], kinds)
            ]
            if not all(isinstance(p, str) for p in entry.get("employee_ids") or []):
                errors.append(f"service_types[{i}].employee_ids: must be a list of texts")
    for i, window in enumerate(data.get("time_windows") or [], start=1):
        if not isinstance(window, dict):
            errors.append(f"time_windows[{i}]: must be an object")
        elif extra := [k for k in window if k not in WINDOW_KEYS]:
            errors.append(f"time_windows[{i}]: unknown keys (remove them): " + ", ".join(extra))
        elif not all(isinstance(v, str) for v in window.values()):
            errors.append(f"time_windows[{i}]: write its id, label, start and end as texts")
    for key in ("service_area_zips", "closed_dates", "allowed_domains", "emergency_keywords",
                "office_emails"):  # fmt: skip
        if isinstance(data.get(key), list) and not all(isinstance(v, str) for v in data[key]):
            errors.append(f"{key}: must be a list of texts")
    weekdays = data.get("closed_weekdays")
    if isinstance(weekdays, list) and not all(_is(v, (int,)) for v in weekdays):
        errors.append("closed_weekdays: must be a list of numbers, 0 (Monday) to 6 (Sunday)")
    return errors


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    """Return True when a JSON value has one of these types (true is not a number here)."""
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)


def definition_errors(definition: dict[str, Any]) -> list[str]:
    """Return why a definition can't drive the wizard: its steps, fields and HCP keys."""
    steps = definition.get("steps")
    if not isinstance(steps, list) or not steps:
        return ["definition: must have a list of steps"]
    errors, slugs = [], []
    for n, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or not isinstance(step.get("slug"), str) or not step["slug"]:
            errors.append(f"definition step {n}: must be an object with a slug")
            continue
        slugs.append(step["slug"])
        fields = step.get("fields")
        if not isinstance(fields, list):
            errors.append(f"definition step {step['slug']}: must have a list of fields")
            continue
        names = []
        for m, fdef in enumerate(fields, start=1):
            where = f"definition step {step['slug']}, field {m}"
            if not isinstance(fdef, dict) or not all(
                isinstance(fdef.get(k), str) and fdef[k] for k in ("name", "type")
            ):
                errors.append(f"{where}: must be an object with a name and a type")
                continue
            names.append(fdef["name"])
            key = fdef.get("hcp_key")
            if key is not None and key not in formdefs.HCP_KEYS:
                errors.append(f"{where} ({fdef['name']}): {key!r} is not a Housecall Pro key")
        errors += [
            f"definition step {step['slug']}: the field {n} is listed twice"
            for n in sorted({n for n in names if names.count(n) > 1})
        ]
    errors += [
        f"definition: the step {s} is listed twice"
        for s in sorted({s for s in slugs if slugs.count(s) > 1})
    ]
    return errors


def _formdata(values: dict[str, Any]) -> MultiDict[str, Any]:
    """Return the settings page's POST for these values (as a browser would send it)."""
    post: MultiDict[str, Any] = MultiDict()
    for key in PLAIN:
        value = values[key]
        if isinstance(value, bool):
            if value:
                post.add(key, "y")
        else:
            post.add(key, str(value))
    for i, entry in enumerate(values["service_types"]):
        prefix = f"service_types-{i}-"
        for key in ("name", "job_type_id", "repeats"):
            post.add(prefix + key, str(entry.get(key) or ""))
        post.add(prefix + "creates", str(entry.get("creates") or "job"))  # the page's default
        post.add(prefix + "duration_minutes", str(entry.get("duration_minutes") or ""))
        for pro in entry.get("employee_ids") or []:
            post.add(prefix + "employee_ids", str(pro))
    post.add("service_area_zips", ", ".join(map(str, values["service_area_zips"])))
    windows = values["time_windows"]
    post.add(
        "time_windows",
        format_time_windows(
            [{k: w.get(k, "") for k in ("start", "end", "label")} for w in windows]
        ),
    )
    for day in values["closed_weekdays"]:
        post.add("closed_weekdays", str(day))
    post.add("closed_dates", "\n".join(map(str, values["closed_dates"])))
    post.add("allowed_domains", "\n".join(map(str, values["allowed_domains"])))
    post.add("emergency_keywords", "\n".join(map(str, values["emergency_keywords"])))
    post.add("office_emails", ", ".join(map(str, values["office_emails"])))
    post.add("business_phone", values["business_phone"])
    post.add("terms", values["terms"])
    post.add(
        "territories", assignment.format_territories(values["territories"], [], readable=False)
    )
    return post


def _page_errors(wt: Any) -> list[str]:
    """Return a form's errors as "key: message", a service type's as "service_types[2].key"."""
    found = []
    for name, problems in wt.errors.items():
        for problem in problems:
            if isinstance(problem, dict):  # one service type's row
                continue
            found.append(f"{name}: {problem}")
    for i, entry in enumerate(getattr(wt, "service_types", []), start=1):
        for name, problems in entry.form.errors.items():
            found += [f"service_types[{i}].{name}: {p}" for p in problems]
    return found


def settings_errors(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Check the settings with the settings page's form; return (the cleaned values, errors)."""
    wt = FormSettingsForm(formdata=_formdata(values), meta={"csrf": False})
    job_types = {str(s.get("job_type_id")) for s in values["service_types"] if s.get("job_type_id")}
    pros = {str(p) for s in values["service_types"] for p in s.get("employee_ids") or []}
    # The file names HCP's ids; they are kept as given (the page warns when HCP lacks one).
    for entry in wt.service_types:
        entry.form.job_type_id.choices = [("", "")] + [(j, j) for j in sorted(job_types)]
        entry.form.employee_ids.choices = [(p, p) for p in sorted(pros)]
    emergency = str(values["emergency_job_type_id"])
    wt.emergency_job_type_id.choices = [("", "")] + ([(emergency, emergency)] if emergency else [])
    wt.employees, wt.employees_readable = [], False
    wt.stored_territories = {str(k): v for k, v in values["territories"].items()}
    errors = [] if wt.validate() else _page_errors(wt)
    errors += _window_id_errors(values["time_windows"])
    leads = AbandonedSettingsForm(
        formdata=MultiDict(
            {"abandoned_after_minutes": str(values["abandoned_after_minutes"])}
            | ({"abandoned_to_hcp": "y"} if values["abandoned_to_hcp"] else {})
        ),
        meta={"csrf": False},
    )
    if not leads.validate():
        errors += _page_errors(leads)
    try:
        ZoneInfo(str(values["time_zone"]))
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(
            f"time_zone: {values['time_zone']!r} is not a time zone, like America/Chicago"
        )
    if not LANGUAGE_RE.match(str(values["language"])):
        errors.append("language: use a language code like en")
    if errors:
        return {}, errors
    cleaned = {name: wt[name].data for name in PLAIN} | wt.cleaned
    cleaned["name"] = cleaned["name"].strip()
    cleaned["service_types"] = keep_other_settings(Form(service_types=[]), cleaned["service_types"])
    cleaned |= {k: values[k] for k in ("time_zone", "language", "abandoned_to_hcp")}
    cleaned["abandoned_after_minutes"] = int(leads.abandoned_after_minutes.data or 60)
    return cleaned, []


def _window_id_errors(windows: list[Any]) -> list[str]:
    """Return an error per window whose id does not match its times (ids are derived)."""
    return [
        f"time_windows[{i}].id: should be {window_id(w['start'], w['end'])!r} for these times"
        for i, w in enumerate(windows, start=1)
        if isinstance(w, dict) and "id" in w and isinstance(w.get("start"), str)
        and isinstance(w.get("end"), str) and w["id"] != window_id(w["start"], w["end"])
    ]  # fmt: skip


def _slug_errors(data: dict[str, Any]) -> list[str]:
    """Check a new form's slug and name with the new-form page's rules."""
    wt = NewFormForm(
        formdata=MultiDict({"slug": data["slug"], "name": data["name"]}), meta={"csrf": False}
    )
    return [] if wt.validate() else _page_errors(wt)


def import_form(
    data: dict[str, Any], *, publish: bool = False, new_slug: str = "", copy_of: str = ""
) -> ImportResult:
    """Create or update the form the file names (by slug, or `new_slug`); the caller commits.

    Keys the file leaves out keep the form's values (a new form's come from the template). A
    new form starts unpublished; `publish` publishes it when every required key is mapped.

    Raises:
        ImportRefused: naming each problem; the session is rolled back, so nothing changed.
    """
    errors = _shape_errors(data)
    if errors:
        db.session.rollback()
        raise ImportRefused(errors)
    slug = new_slug or data["slug"]
    form = db.session.scalar(select(Form).where(Form.slug == slug))
    created = form is None
    try:
        if form is None:
            errors = _slug_errors({"slug": slug, "name": data["name"]})
            if errors:
                raise ImportRefused(errors)
            form = settings.create_form(slug, data["name"].strip() or slug)
        values = export_form(form) | {k: v for k, v in data.items() if k != "slug"}
        definition = values["definition"]
        errors = definition_errors(definition)
        chosen = [f.get("hcp_key") for _, f in formdefs.iter_fields(definition)]
        published = publish or form.published
        if not errors:
            problem = settings.publish_problem(definition)
            if publish and problem:
                errors.append(problem)
            else:
                errors += settings.mapping_errors(definition, chosen, published=published)
        cleaned, page_errors = settings_errors(values)
        errors += page_errors
        if errors:
            raise ImportRefused(errors)
        changes = settings.apply_form_settings(form, cleaned, values["terms"], now=utcnow())
        if form.definition != definition:
            form.definition = copy.deepcopy(definition)
            changes.append("definition")
        if form.published != published:
            form.published = published
            changes.append("published")
    except ImportRefused:
        db.session.rollback()
        raise
    if copy_of:
        detail = f"copy of {copy_of}"
    else:
        detail = ("created; " if created else "") + (", ".join(changes) or "no change")
    record("form duplicated" if copy_of else "form imported", target=form.slug, detail=detail)
    db.session.flush()
    return ImportResult(form, created, changes, "" if published else settings.publish_problem(
        form.definition))  # fmt: skip


def duplicate_form(source: Form, slug: str, name: str) -> Form:
    """Copy a form's definition and settings under a new slug, unpublished; the caller commits.

    Raises:
        ImportRefused: when the slug is taken or invalid, or the settings no longer pass.
    """
    if db.session.scalar(select(Form.id).where(Form.slug == slug)) is not None:
        raise ImportRefused([f"slug: The slug {slug} is already used by another form"])
    data = export_form(source) | {"name": name}
    return import_form(data, new_slug=slug, copy_of=source.slug).form

"""Wizard step forms, built from a form's definition; field validation only (no DB, no HTTP)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import ValidationError

from .. import formdefs, validation
from ..models import Form
from .csrf import DraftCSRF

# Attribution the first page carries to the draft (the loader passes the parent page's too).
ATTRIBUTION_FIELDS = (
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    "gclid", "gbraid", "wbraid", "referrer", "landing_url",
)  # fmt: skip
# Non-personal answers a link may prefill (?booking_type=…&zip=…).
PREFILL_FIELDS = ("zip", "booking_type", "urgency")
HONEYPOT = "fax_number"  # a plausible name; people never see it, bots fill it


class WizardForm(FlaskForm):
    """Base of every step form: draft-bound CSRF, and a dict of normalised answers."""

    class Meta:
        csrf = True
        csrf_class = DraftCSRF

    cleaned: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cleaned = {}


def choices_for(field: dict[str, Any], form: Form) -> list[tuple[str, str]]:
    """Return (value, label) pairs for a select or radio field of a form."""
    options = field.get("options")
    if options == "service_types":
        return [(s["name"], s["name"]) for s in form.service_types]
    if options == "urgency":
        return list(formdefs.URGENCY_CHOICES)
    if options == "states":
        return list(formdefs.US_STATES)
    if options == "time_windows":
        return [(w["id"], w["label"]) for w in form.time_windows]
    return [(str(v), str(label)) for v, label in (options or [])]


def _required_message(field: dict[str, Any]) -> str:
    if field.get("required_message"):
        return str(field["required_message"])
    label = field["label"].replace(" (optional)", "")
    if label and not label[:2].isupper():  # "ZIP code" keeps its capitals
        label = label[0].lower() + label[1:]
    if field["type"] in ("select", "radio"):
        return f"Choose {label}" if label else "Choose an option"
    if field["type"] == "terms":
        return "Accept the terms to send your request"
    if field["type"] == "date":
        return "Choose a preferred date"
    return f"Enter {label}"


def _make_validator(field: dict[str, Any], form: Form, now: datetime):  # noqa: ANN202
    """Return a WTForms validator that checks and normalises one field's value."""
    kind, name = field["type"], field["name"]
    choices = dict(choices_for(field, form)) if kind in ("select", "radio") else {}

    def check(wtform: WizardForm, wtfield: Field) -> None:
        raw = wtfield.data
        required = field.get("required", False)
        cond = field.get("required_if") or {}
        if cond and all(str(wtform.data.get(k)) == str(v) for k, v in cond.items()):
            required = True
        empty = raw in (None, "", False) or (isinstance(raw, str) and not raw.strip())
        if empty:
            if required:
                raise ValidationError(_required_message(field))
            wtform.cleaned[name] = False if kind == "terms" else ""
            return
        try:
            wtform.cleaned[name] = _normalise(kind, raw, field, form, now, choices)
        except validation.Invalid as exc:
            raise ValidationError(str(exc)) from exc

    return check


def _normalise(
    kind: str, raw: Any, field: dict[str, Any], form: Form, now: datetime, choices: dict
) -> Any:
    """Return the stored form of a non-empty value, or raise Invalid."""
    if kind == "zip":
        text, _info = validation.parse_zip(raw)
        return text
    if kind == "tel":
        return validation.parse_phone(raw)
    if kind == "email":
        return validation.parse_email(raw)
    if kind == "date":
        return validation.parse_booking_date(
            raw,
            now=now,
            tz_name=form.time_zone,
            horizon_days=form.booking_horizon_days,
            closed_weekdays=form.closed_weekdays,
            closed_dates=form.closed_dates,
        ).isoformat()
    if kind in ("select", "radio"):
        value = str(raw)
        if value not in choices:
            raise validation.Invalid("Choose one of the options shown.")
        return value
    if kind == "terms":
        return True
    return validation.clean_text(
        raw, max_length=int(field.get("max_length", 200)), multiline=kind == "textarea"
    )


_FIELD_CLASSES = {
    "zip": StringField,
    "text": StringField,
    "tel": TelField,
    "email": EmailField,
    "textarea": TextAreaField,
    "date": StringField,
    "select": SelectField,
    "radio": RadioField,
    "terms": BooleanField,
}


def build_step_form(
    form: Form,
    step: dict[str, Any],
    *,
    draft_token: str | None,
    now: datetime,
    formdata: Any = None,
    data: dict[str, Any] | None = None,
    first_step: bool = False,
) -> WizardForm:
    """Return a WTForms form for one step of a form, bound to a draft for CSRF."""
    attrs: dict[str, Any] = {}
    for field in step["fields"]:
        cls = _FIELD_CLASSES.get(field["type"], StringField)
        kwargs: dict[str, Any] = {
            "label": field["label"],
            "validators": [_make_validator(field, form, now)],
            "description": field.get("hint", ""),
        }
        if cls in (SelectField, RadioField):
            kwargs["choices"] = choices_for(field, form)
            kwargs["validate_choice"] = False  # our validator gives a clearer message
            if cls is SelectField:
                kwargs["choices"] = [("", "Select…")] + kwargs["choices"]
        attrs[field["name"]] = cls(**kwargs)
    if first_step:
        for name in ATTRIBUTION_FIELDS + tuple(f"prefill_{p}" for p in PREFILL_FIELDS):
            attrs[name] = HiddenField()
    attrs[HONEYPOT] = StringField("Leave this field empty")
    form_cls = type(f"{step['slug'].title().replace('-', '')}Form", (WizardForm,), attrs)
    return form_cls(
        formdata=formdata,
        data=data or {},
        meta={"csrf_context": (form.slug, draft_token)},
    )


def date_bounds(form: Form, now: datetime) -> tuple[str, str]:
    """Return the min and max ISO dates for the date input."""
    today = validation.today_in(form.time_zone, now)
    return (
        (today + timedelta(days=1)).isoformat(),
        (today + timedelta(days=form.booking_horizon_days)).isoformat(),
    )

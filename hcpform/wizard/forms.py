"""Wizard step forms, built from a form's definition; field validation only (no DB, no HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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

from .. import emergency, formdefs, preferences, validation
from ..availability import BOOKED, PREFERENCE, Availability
from ..formdefs import choices_for
from ..i18n import N_, weekday_day_month
from ..i18n import gettext as _
from ..models import Form
from ..submissions import REPEAT_ANSWER
from .csrf import DraftCSRF
from .language import repeat_words, tr

# Attribution the first page carries to the draft (the loader passes the parent page's too).
ATTRIBUTION_FIELDS = (
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    "gclid", "gbraid", "wbraid", "referrer", "landing_url",
)  # fmt: skip
# Non-personal answers a link may prefill (?booking_type=…&zip=…).
PREFILL_FIELDS = ("zip", "booking_type", "urgency")
HONEYPOT = "fax_number"  # a plausible name; people never see it, bots fill it
# On a step with city and state, when they are not what the ZIP says, the person chooses:
ADDRESS_CHOICE = "address_choice"  # "zip" (take the ZIP's city and state) or "typed" (keep)
ADDRESS_CHECKED = "address_checked"  # the address the choice was offered for (see signature)
ADDRESS_CONFIRMED = "_address_confirmed"  # on the draft: the mismatched address they kept
# On the schedule step, when HCP has open windows: one radio group of them, grouped by day.
SLOT_FIELD = "booking_slot"
REPEAT_FIELD = "repeat_visit"  # "Repeat this visit every 3 months", for a recurring service
REPEAT_REFUSED = N_("This service can't be repeated. Untick “Repeat this visit” to go on.")
SLOT_TAKEN = N_("That time is no longer open. Choose one of the times shown.")
# On the step that asks for a phone or email: may we contact them if they don't finish?
# Unticked by default; stored on the draft as `_contact_consent` (hcpform/abandoned.py).
CONSENT_FIELD = "contact_consent"
CONSENT_LABEL = N_("If I don't finish this request, you may contact me about it")
# On the same step: how they'd like to be contacted (preselected from the form's setting), and,
# separately and unticked, marketing consent (texts in preferences.py). Kept on the draft as
# `_contact_method` and `_marketing_consent`.
METHOD_FIELD = "contact_method"
MARKETING_FIELD = "marketing_consent"


@dataclass(frozen=True)
class AddressProblem:
    """City and state typed that the ZIP's offline data does not know, and what it says."""

    zip5: str
    zip_city: str
    zip_state: str
    typed_city: str
    typed_state: str
    signature: str
    can_use_zip: bool  # the ZIP's state is one the form's state field offers

    @property
    def message(self) -> str:
        """Return the error shown to the person."""
        return _(
            "ZIP %(zip)s is %(city)s, %(state)s. Choose which is right, "
            "or correct the city, state or ZIP.",
            zip=self.zip5,
            city=self.zip_city,
            state=self.zip_state,
        )


def address_signature(city: str, state: str, zip5: str) -> str:
    """Return what identifies one typed address for a confirmation (spelling-insensitive)."""
    return f"{validation.place_key(city)}|{validation.state_code(state)}|{zip5}"


class WizardForm(FlaskForm):
    """Base of every step form: draft-bound CSRF, and a dict of normalised answers."""

    class Meta:
        """Bind CSRF to the draft (DraftCSRF), not to a session."""

        csrf = True
        csrf_class = DraftCSRF

    cleaned: dict[str, Any]
    # (city, state, zip) field names when this step holds an address; zip may be None.
    address_fields: tuple[str, str, str | None] | None = None
    state_choices: frozenset[str] = frozenset()
    # "booked" or "preference" on the step that picks the time, else None.
    schedule_kind: str | None = None
    # On that step, how often the chosen service may repeat ("every 3 months"; '' = never).
    repeat_offer: str = ""

    def __init__(self, *args: Any, known: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cleaned = {}
        self.known = dict(known or {})  # the draft's answers so far
        self.address_problem: AddressProblem | None = None

    def validate(self, extra_validators: Any = None) -> bool:
        """Validate every field, then the city and state against the ZIP."""
        valid: bool = super().validate(extra_validators)
        if valid and self.address_fields:
            valid = self._check_address()
        if valid and self.schedule_kind:
            self.cleaned["_schedule_kind"] = self.schedule_kind
        return valid

    def _check_address(self) -> bool:
        """Accept an address the ZIP knows, or one the person chose to keep; else ask them."""
        city_name, state_name, zip_name = self.address_fields or ("", "", None)
        city, state = self.cleaned.get(city_name, ""), self.cleaned.get(state_name, "")
        zip_code = (self.cleaned.get(zip_name) if zip_name else "") or self.known.get("zip", "")
        info = validation.address_mismatch(str(city), str(state), str(zip_code or ""))
        if info is None:
            self.cleaned[ADDRESS_CONFIRMED] = {}
            return True
        signature = address_signature(city, state, info.zip5)
        earlier = self.known.get(ADDRESS_CONFIRMED) or {}
        choice, checked = self[ADDRESS_CHOICE].data, self[ADDRESS_CHECKED].data
        can_use_zip = info.state in self.state_choices
        if choice == "zip" and can_use_zip:
            self.cleaned[city_name], self.cleaned[state_name] = info.city, info.state
            self.cleaned[ADDRESS_CONFIRMED] = {}
            return True
        if (choice == "typed" and checked == signature) or (
            isinstance(earlier, dict) and earlier.get("signature") == signature
        ):
            self.cleaned[ADDRESS_CONFIRMED] = {
                "signature": signature,
                "city": city,
                "state": state,
                "zip": info.zip5,
                "zip_says": f"{info.city}, {info.state}",
            }
            return True
        self.address_problem = AddressProblem(
            zip5=info.zip5,
            zip_city=info.city,
            zip_state=info.state,
            typed_city=str(city),
            typed_state=str(state),
            signature=signature,
            can_use_zip=can_use_zip,
        )
        self[ADDRESS_CHOICE].errors = [self.address_problem.message]
        return False


def _required_message(field: dict[str, Any]) -> str:
    return tr(formdefs.required_message(field))


def _make_validator(
    field: dict[str, Any], form: Form, now: datetime
) -> Callable[[WizardForm, Field], None]:
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
            value = _normalise(kind, raw, field, form, now, choices)
        except validation.Invalid as exc:
            raise ValidationError(str(exc)) from exc
        if value == "" and required:  # only invisible characters were typed
            raise ValidationError(_required_message(field))
        wtform.cleaned[name] = value

    return check


def _normalise(
    kind: str,
    raw: Any,
    field: dict[str, Any],
    form: Form,
    now: datetime,
    choices: dict[str, str],
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
        if value not in choices:  # exact: a look-alike (full-width, zero-width) is no option
            raise validation.Invalid(_("Choose one of the options shown."))
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


ASAP_LABEL = N_("As soon as possible")  # shown as _(ASAP_LABEL)


def _store_consent(wtform: WizardForm, wtfield: Field) -> None:
    """Keep the contact consent (ticked or not) with the step's answers."""
    wtform.cleaned["_contact_consent"] = bool(wtfield.data)


def _store_method(wtform: WizardForm, wtfield: Field) -> None:
    """Keep the contact preference; an unknown value gets a field message, none the default."""
    value = wtfield.data or wtfield.default
    if value not in preferences.METHODS:
        raise ValidationError(_(preferences.METHOD_INVALID))
    wtform.cleaned["_contact_method"] = value


def _store_marketing(wtform: WizardForm, wtfield: Field) -> None:
    """Keep the marketing consent (ticked or not) with the step's answers."""
    wtform.cleaned["_marketing_consent"] = bool(wtfield.data)


def _slot_validator(
    slots: Availability, date_name: str, time_name: str, *, asap: bool = False
) -> Callable[[WizardForm, Field], None]:
    """Return a validator that takes one of HCP's open windows and stores its day and label.

    With `asap` (an emergency), "asap" is a choice too: the window is chosen at submit.
    """
    labels = {wid: (day, label) for day in slots.days for wid, label in day.windows}

    def check(wtform: WizardForm, wtfield: Field) -> None:
        value = str(wtfield.data or "")
        if not value.strip():
            raise ValidationError(_("Choose a time"))
        if asap and value == emergency.ASAP:
            wtform.cleaned.update({date_name: "", time_name: emergency.ASAP, "_asap": "1"})
            wtform.cleaned["_window_label"] = ASAP_LABEL  # the office reads it in English
            wtform.cleaned["_window_when"] = _(ASAP_LABEL)
            return
        if value not in labels:  # taken since the page was shown, or never offered
            raise ValidationError(_(SLOT_TAKEN))
        day, label = labels[value]
        wtform.cleaned[date_name] = day.day.isoformat()
        wtform.cleaned[time_name] = value
        wtform.cleaned["_window_label"] = label
        wtform.cleaned["_window_when"] = f"{weekday_day_month(day.day)}, {label}"
        wtform.cleaned["_asap"] = ""

    return check


def _preference_asap(
    inner: Callable[[WizardForm, Field], None], date_name: str, time_name: str
) -> Callable[[WizardForm, Field], None]:
    """Wrap a preference's date or window check so that "As soon as possible" needs neither.

    An emergency whose time is only a preference (HCP cannot say what is open) may still ask
    for the earliest visit: no day, no window, and the job goes unscheduled, tagged ASAP.
    """

    def check(wtform: WizardForm, wtfield: Field) -> None:
        if str(wtform.data.get(time_name) or "") == emergency.ASAP:
            wtform.cleaned.update({date_name: "", time_name: emergency.ASAP, "_asap": "1"})
            wtform.cleaned["_window_label"] = ASAP_LABEL  # the office reads it in English
            wtform.cleaned["_window_when"] = _(ASAP_LABEL)
            return
        inner(wtform, wtfield)
        wtform.cleaned["_asap"] = ""

    return check


def _repeat_validator(frequency: str) -> Callable[[WizardForm, Field], None]:
    """Return a validator that keeps "repeat this visit" only for a service type that repeats."""

    def check(wtform: WizardForm, wtfield: Field) -> None:
        if wtfield.data and not frequency:  # never offered: a tampered or outdated page
            raise ValidationError(_(REPEAT_REFUSED))
        wtform.cleaned[REPEAT_ANSWER] = frequency if wtfield.data else ""

    return check


def _chosen_service(form: Form, known: dict[str, Any]) -> str:
    """Return the service type the draft chose (the field mapped to HCP's booking_type)."""
    for _step, field in formdefs.iter_fields(form.definition):
        if field.get("hcp_key") == "booking_type":
            return str(known.get(field["name"]) or "")
    return ""


def build_step_form(
    form: Form,
    step: dict[str, Any],
    *,
    draft_token: str | None,
    now: datetime,
    formdata: Any = None,
    data: dict[str, Any] | None = None,
    first_step: bool = False,
    known: dict[str, Any] | None = None,
    slots: Availability | None = None,
    asap: bool = False,
) -> WizardForm:
    """Return a WTForms form for one step of a form, bound to a draft for CSRF.

    `known` is the draft's answers so far (the ZIP an address step checks against, and an
    address the person already chose to keep). `slots` is what the step that picks the time
    offers: HCP's open windows replace its date and window fields with one choice of them.
    With `asap` (an emergency), that choice also offers "As soon as possible", and the soonest
    window of today or tomorrow is chosen until the person chooses otherwise; on preferred
    times (HCP cannot say what is open) the window offers it, and then no day is needed.
    """
    attrs: dict[str, Any] = {}
    date_name, time_name = formdefs.booking_fields(step)
    booked = bool(slots and slots.kind == BOOKED and date_name and time_name)
    if date_name and time_name:
        attrs["schedule_kind"] = BOOKED if booked else PREFERENCE
        service = _chosen_service(form, known or {})
        frequency = formdefs.repeat_frequency(form.service_types, service)
        attrs["repeat_offer"] = formdefs.repeat_label(frequency)
        attrs[REPEAT_FIELD] = BooleanField(
            _("Repeat this visit %(how_often)s", how_often=repeat_words(frequency)).strip(),
            default=bool(frequency and (known or {}).get(REPEAT_ANSWER)),
            description=_("We'll open a new request for the next visit when it's due."),
            validators=[_repeat_validator(frequency)],
        )
    if booked and slots is not None and date_name and time_name:
        extra = [(emergency.ASAP, _(ASAP_LABEL))] if asap else []
        attrs[SLOT_FIELD] = RadioField(
            _("Choose a time"),
            choices=[(wid, label) for day in slots.days for wid, label in day.windows] + extra,
            validate_choice=False,
            validators=[_slot_validator(slots, date_name, time_name, asap=asap)],
        )
        soonest = emergency.soonest_windows(slots, now=now)[:1] if asap else []
        if soonest and not (data or {}).get(SLOT_FIELD):
            data = {**(data or {}), SLOT_FIELD: soonest[0][0]}
    for field in step["fields"]:
        if booked and field["name"] in (date_name, time_name):
            continue
        cls = _FIELD_CLASSES.get(field["type"], StringField)
        kwargs: dict[str, Any] = {
            "label": field["label"],
            "validators": [_make_validator(field, form, now)],
            "description": field.get("hint", ""),
        }
        if cls in (SelectField, RadioField):
            kwargs["choices"] = [(v, tr(label)) for v, label in choices_for(field, form)]
            kwargs["validate_choice"] = False  # our validator gives a clearer message
            if cls is SelectField:
                kwargs["choices"] = [("", _("Select…"))] + kwargs["choices"]
        if asap and not booked and date_name and time_name:
            if field["name"] == time_name:
                kwargs["choices"] = [*kwargs.get("choices", []), (emergency.ASAP, _(ASAP_LABEL))]
            if field["name"] in (date_name, time_name):
                kwargs["validators"] = [
                    _preference_asap(kwargs["validators"][0], date_name, time_name)
                ]
        attrs[field["name"]] = cls(**kwargs)
    if first_step:
        for name in ATTRIBUTION_FIELDS + tuple(f"prefill_{p}" for p in PREFILL_FIELDS):
            attrs[name] = HiddenField()
    attrs[HONEYPOT] = StringField(_("Leave this field empty"))
    by_key = {f.get("hcp_key"): f for f in step["fields"] if f.get("hcp_key")}
    if "customer_phone" in by_key or "customer_email" in by_key:
        attrs[CONSENT_FIELD] = BooleanField(_(CONSENT_LABEL), validators=[_store_consent])
        method = form.contact_method_default
        attrs[METHOD_FIELD] = RadioField(
            _(preferences.METHOD_LEGEND),
            choices=[(value, _(label)) for value, label in preferences.METHODS.items()],
            default=method if method in preferences.METHODS else preferences.DEFAULT_METHOD,
            validate_choice=False,  # _store_method gives the clearer message
            validators=[_store_method],
        )
        attrs[MARKETING_FIELD] = BooleanField(
            _(preferences.MARKETING_LABEL), validators=[_store_marketing]
        )
    if "city" in by_key and "state" in by_key:
        zip_field = by_key.get("zip")
        attrs["address_fields"] = (
            by_key["city"]["name"],
            by_key["state"]["name"],
            zip_field["name"] if zip_field else None,
        )
        states = by_key["state"]
        attrs["state_choices"] = frozenset(
            v for v, _ in choices_for(states, form) if states["type"] in ("select", "radio")
        ) or frozenset(code for code, _ in formdefs.US_STATES)
        attrs[ADDRESS_CHOICE] = StringField()
        attrs[ADDRESS_CHECKED] = HiddenField()
    form_cls: type[WizardForm] = type(
        f"{step['slug'].title().replace('-', '')}Form", (WizardForm,), attrs
    )
    return form_cls(
        formdata=formdata,
        data=data or {},
        meta={"csrf_context": (form.slug, draft_token)},
        known=known,
    )


def date_bounds(form: Form, now: datetime) -> tuple[str, str]:
    """Return the min and max ISO dates for the date input."""
    today = validation.today_in(form.time_zone, now)
    return (
        (today + timedelta(days=1)).isoformat(),
        (today + timedelta(days=form.booking_horizon_days)).isoformat(),
    )


def valid_prefill(form: Form, wtform: WizardForm) -> dict[str, str]:
    """Return the prefilled answers that are valid options of this form."""
    fields = {f["name"]: f for _, f in formdefs.iter_fields(form.definition)}
    prefill = {}
    for name in ("booking_type", "urgency"):
        value = wtform[f"prefill_{name}"].data
        if value and name in fields and value in dict(choices_for(fields[name], form)):
            prefill[name] = value
    return prefill

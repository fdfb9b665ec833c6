"""The WTForms of the admin's form pages (settings, a new form, the field mapping), and the
parsing of what office staff paste into them (ZIPs, dates, origins, time windows)."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Any
from urllib.parse import urlparse

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, FileSize
from wtforms import (
    BooleanField,
    ColorField,
    Field,
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from .. import assignment, emergency, formdefs, outbox, preferences, validation
from ..security import insecure_origins_refused, normalise_origin

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
WINDOW_RE = re.compile(r"^(\d{1,2}:\d{2})\s*[-–—]\s*(\d{1,2}:\d{2})\s+(\S.*)$")
SPLIT_RE = re.compile(r"[\s,;]+")
IMPORT_MAX_BYTES = 256 * 1024  # a form file (definition, settings, terms) is a few dozen KB


def split_items(text: str | None) -> list[str]:
    """Return the non-empty items of a comma-, semicolon-, space- or line-separated list."""
    return [item for item in SPLIT_RE.split(text or "") if item]


def dedupe(items: list[str]) -> list[str]:
    """Return the items without repeats, in their first order."""
    return list(dict.fromkeys(items))


def parse_zip_list(text: str | None) -> tuple[list[str], list[str]]:
    """Return (the 5-digit ZIPs, sorted and unique; the items that are not valid ZIPs)."""
    good, bad = [], []
    for item in split_items(text):
        try:
            _, info = validation.parse_zip(item)
        except validation.Invalid:
            bad.append(item)
        else:
            good.append(info.zip5)
    return sorted(set(good)), dedupe(bad)


def parse_dates(text: str | None) -> tuple[list[str], list[str]]:
    """Return (ISO dates, sorted and unique; the items that are not ISO dates)."""
    good, bad = [], []
    for item in split_items(text):
        try:
            good.append(date.fromisoformat(item).isoformat())
        except ValueError:
            bad.append(item)
    return sorted(set(good)), dedupe(bad)


def parse_origins(text: str | None) -> tuple[list[str], list[str]]:
    """Return (the valid origins, normalised, in order; the items that are not origins)."""
    good, bad = [], []
    for item in split_items(text):
        origin = normalise_origin(item)  # the same normalisation the frame policy applies
        if origin:
            good.append(origin)
        else:
            bad.append(item)
    return dedupe(good), dedupe(bad)


def _hhmm(text: str) -> str:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes)).strftime("%H:%M")


def window_id(start: str, end: str) -> str:
    """Return a time window's stable id: "08-11" on the hour, else "0830-1100"."""
    if start.endswith(":00") and end.endswith(":00"):
        return f"{start[:2]}-{end[:2]}"
    return f"{start.replace(':', '')}-{end.replace(':', '')}"


def parse_time_windows(text: str | None) -> tuple[list[dict[str, str]], list[str]]:
    """Return (windows from lines like `08:00-11:00 8–11 am`; an error per bad line)."""
    windows: list[dict[str, str]] = []
    errors: list[str] = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = WINDOW_RE.match(line)
        try:
            if not match:
                raise ValueError
            start, end = _hhmm(match.group(1)), _hhmm(match.group(2))
        except ValueError:
            errors.append(f"Line {number} ({line}): write it like 08:00-11:00 8–11 am")
            continue
        label = match.group(3).strip()
        if start >= end:
            errors.append(f"Line {number} ({line}): the end must be after the start")
        elif len(label) > 50:
            errors.append(f"Line {number}: use a label of 50 characters or fewer")
        elif any(w["id"] == window_id(start, end) for w in windows):
            errors.append(f"Line {number} ({line}): this window is already listed")
        else:
            windows.append(
                {"id": window_id(start, end), "label": label, "start": start, "end": end}
            )
    if not windows and not errors:
        errors.append("Add at least one time window")
    return windows, errors


def format_time_windows(windows: list[dict[str, Any]]) -> str:
    """Return time windows as the lines the form edits."""
    return "\n".join(f"{w['start']}-{w['end']} {w['label']}" for w in windows)


class ServiceTypeEntry(Form):
    """One service type offered by the wizard and the HCP job type it becomes."""

    name = StringField("Service type", [Optional(), Length(max=100)])
    job_type_id = SelectField("HCP job type", choices=[], validate_choice=True)
    creates = SelectField("Creates in HCP", choices=list(formdefs.RECORD_KINDS), default="job")
    # Who does the work (assignment.py): the visit's length, and the pros who may take it.
    duration_minutes = StringField("Visit length (minutes)", [Optional(), Length(max=10)])
    employee_ids = SelectMultipleField(
        "Pros who may take it",
        choices=[],
        validate_choice=True,
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )

    def validate_duration_minutes(self, field: Field) -> None:
        """Accept a whole number of minutes from 15 to 1440, or nothing (2 hours)."""
        text = validation.code_text(field.data or "").strip()
        if text and not (text.isascii() and text.isdigit() and 15 <= int(text) <= 24 * 60):
            raise ValidationError("Write the visit length in minutes, from 15 to 1440")
        field.data = int(text) if text else None

    repeats = SelectField("Repeats", choices=list(formdefs.REPEAT_CHOICES), default="")


class FormSettingsForm(FlaskForm):
    """Everything about a form except its field mapping."""

    name = StringField("Form name (for you)", [DataRequired("Enter a name"), Length(max=200)])
    published = BooleanField("Published (the wizard is live)")
    sync_enabled = BooleanField("Send submissions to HousecallPro")
    submissions_per_hour = IntegerField(
        "Submissions per hour (at most)", [InputRequired("Enter a number"), NumberRange(1, 100_000)]
    )
    service_types = FieldList(FormField(ServiceTypeEntry), min_entries=1)
    service_area_zips = TextAreaField("Service-area ZIP codes")
    time_windows = TextAreaField("Time windows")
    closed_weekdays = SelectMultipleField(
        "Closed every",
        choices=list(enumerate(WEEKDAYS)),
        coerce=int,
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    closed_dates = TextAreaField("Closed dates")
    booking_horizon_days = IntegerField(
        "Booking horizon (days ahead)",
        [InputRequired("Enter a number of days"), NumberRange(1, 90, "Use 1 to 90 days")],
    )
    scheduling_mode = SelectField(
        "Times offered",
        choices=[
            ("booked", "Book real windows from Housecall Pro"),
            ("preferences", "Preferences only (we confirm by phone)"),
        ],
        validate_choice=True,
    )
    booking_days = IntegerField(
        "Days of open times shown",
        [InputRequired("Enter a number of days"), NumberRange(1, 60, "Use 1 to 60 days")],
    )
    lead_time_minutes = IntegerField(
        "Lead time (minutes)",
        [InputRequired("Enter a number of minutes"), NumberRange(0, 10_080, "Use 0 to 10080")],
    )
    territories = TextAreaField("Territories")
    use_service_zones = BooleanField("Use Housecall Pro's service zones instead")
    dispatch_jobs = BooleanField("Dispatch booked jobs to the assigned pro")
    emergency_keywords = TextAreaField("Words that sound urgent", [Length(max=5000)])
    emergency_job_type_id = SelectField("Emergency job type", choices=[], validate_choice=True)
    contact_method_default = SelectField(
        "Contact preference preselected",
        choices=list(preferences.METHODS.items()),
        validate_choice=True,
    )
    office_emails = TextAreaField("Office email addresses", [Length(max=2000)])
    terms = TextAreaField("Terms text", [DataRequired("Enter the terms"), Length(max=10_000)])
    allowed_domains = TextAreaField("Allowed embedding domains")
    business_name = StringField("Business name", [Optional(), Length(max=200)])
    business_phone = StringField("Business phone", [Optional(), Length(max=32)])
    brand_color = ColorField("Brand colour", [DataRequired("Choose a colour")])
    logo_url = StringField("Logo URL", [Optional(), Length(max=500)])

    cleaned: dict[str, Any]
    # Set by the view: HCP's employees, whether HCP answered, and the stored territories.
    employees: list[dict[str, Any]]
    employees_readable: bool
    stored_territories: dict[str, list[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cleaned = {}
        self.employees, self.employees_readable, self.stored_territories = [], True, {}

    def validate_service_types(self, field: FieldList[FormField[ServiceTypeEntry]]) -> None:
        """Require at least one service type, each named once."""
        names = [(e.form.name.data or "").strip() for e in field.entries]
        names = [n for n in names if n]
        if not names:
            raise ValidationError("Offer at least one service type")
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise ValidationError("Each service type once only: " + ", ".join(doubles))
        self.cleaned["service_types"] = [
            {
                "name": (e.form.name.data or "").strip(),
                "job_type_id": e.form.job_type_id.data or None,
                "creates": e.form.creates.data or "job",
                "duration_minutes": e.form.duration_minutes.data or None,  # checked on the row
                "employee_ids": sorted(set(e.form.employee_ids.data or [])),
                "repeats": e.form.repeats.data or "",
            }
            for e in field.entries
            if (e.form.name.data or "").strip()
        ]

    def validate_office_emails(self, field: Field) -> None:
        """Read comma-separated addresses; name each one that is not an email address."""
        found, problems = outbox.parse_addresses(field.data)
        if problems:
            raise ValidationError("; ".join(problems))
        if len(found) > 10:
            raise ValidationError("At most 10 addresses")
        self.cleaned["office_emails"] = found

    def validate_territories(self, field: Field) -> None:
        """Read one line per pro, "Marcus Reyes: 787, 78745"; name each bad line."""
        territories, errors = assignment.parse_territories(
            field.data,
            self.employees,
            known_ids=set(self.stored_territories),
            readable=self.employees_readable,
        )
        if errors:
            raise ValidationError("; ".join(errors))
        self.cleaned["territories"] = territories

    def validate_service_area_zips(self, field: Field) -> None:
        """Check every ZIP; name the ones that are not ZIP codes."""
        zips, bad = parse_zip_list(field.data)
        if bad:
            raise ValidationError("These are not valid ZIP codes: " + ", ".join(bad))
        self.cleaned["service_area_zips"] = zips

    def validate_time_windows(self, field: Field) -> None:
        """Parse one window per line."""
        windows, errors = parse_time_windows(field.data)
        if errors:
            raise ValidationError("; ".join(errors))
        self.cleaned["time_windows"] = windows

    def validate_closed_weekdays(self, field: Field) -> None:
        """Leave at least one open day."""
        if len(set(field.data or [])) >= 7:
            raise ValidationError("Leave at least one day open")
        self.cleaned["closed_weekdays"] = sorted(set(field.data or []))

    def validate_closed_dates(self, field: Field) -> None:
        """Check every date; name the ones that are not dates."""
        dates, bad = parse_dates(field.data)
        if bad:
            raise ValidationError(
                "Write dates as YYYY-MM-DD; these are not dates: " + ", ".join(bad)
            )
        self.cleaned["closed_dates"] = dates

    def validate_emergency_keywords(self, field: Field) -> None:
        """Keep one word or phrase per line (or comma-separated), naming the ones refused."""
        words, problems = emergency.parse_keywords(field.data)
        if problems:
            raise ValidationError("; ".join(problems))
        self.cleaned["emergency_keywords"] = words

    def validate_allowed_domains(self, field: Field) -> None:
        """Accept bare origins only (https://example.com), naming the others."""
        origins, bad = parse_origins(field.data)
        if bad:
            raise ValidationError(
                "Write each like https://www.example.com (no path); these are not: "
                + ", ".join(bad)
            )
        insecure = [o for o in origins if not o.startswith("https://")]
        if insecure and insecure_origins_refused():
            # A page served over plain http can be altered on the way: it must not frame us.
            raise ValidationError(
                "Pages that embed the form must use https:// in production; change or remove: "
                + ", ".join(insecure)
                + " (http:// is accepted only when testing without HCPFORM_PRODUCTION)."
            )
        self.cleaned["allowed_domains"] = origins

    def validate_business_phone(self, field: Field) -> None:
        """Store the phone in E.164."""
        if not (field.data or "").strip():
            self.cleaned["business_phone"] = ""
            return
        try:
            self.cleaned["business_phone"] = validation.parse_phone(field.data)
        except validation.Invalid as exc:
            raise ValidationError(str(exc)) from exc

    def validate_brand_color(self, field: Field) -> None:
        """Accept #rrggbb only."""
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", field.data or ""):
            raise ValidationError("Use a colour like #1d4ed8")
        field.data = field.data.lower()

    def validate_logo_url(self, field: Field) -> None:
        """Accept https URLs only."""
        url = (field.data or "").strip()
        if not url:
            field.data = ""
            return
        parsed = urlparse(url)
        if parsed.scheme != "https" or not parsed.netloc or re.search(r"[\s\"'<>\\]", url):
            raise ValidationError("Use an https:// address, like https://example.com/logo.png")
        field.data = url


class NewFormForm(FlaskForm):
    """A new form made from the HousecallPro Service Request Template."""

    name = StringField("Name", [DataRequired("Enter a name"), Length(max=200)])
    slug = StringField(
        "Web address (slug)",
        [DataRequired("Enter a slug"), Length(max=64)],
        description="Lower-case letters, digits and dashes, like emergency-plumbing.",
    )

    def validate_slug(self, field: Field) -> None:
        """Accept lower-case letters, digits and inner dashes."""
        field.data = (field.data or "").strip().lower()
        if field.data == "new":  # /admin/forms/new is the page that makes forms
            raise ValidationError("Choose another slug than new")
        if not SLUG_RE.match(field.data):
            raise ValidationError(
                "Use lower-case letters, digits and dashes, like emergency-plumbing"
            )


KEY_CHOICES = [("", "Not mapped")] + [
    (key, f"{key} (required)" if key in formdefs.REQUIRED_HCP_KEYS else key)
    for key in formdefs.HCP_KEYS
]


def mapping_form(definition: dict[str, Any], formdata: Any = None) -> FlaskForm:
    """Return a form with one "Housecall Pro Key" select per wizard field, in order."""

    class MappingForm(FlaskForm):
        pass

    for index, (_, field) in enumerate(formdefs.iter_fields(definition)):
        setattr(
            MappingForm,
            f"key_{index}",
            SelectField(field.get("label") or field["name"], choices=KEY_CHOICES,
                        default=field.get("hcp_key") or ""),
        )  # fmt: skip
    return MappingForm(formdata=formdata) if formdata is not None else MappingForm()


class FormImportForm(FlaskForm):
    """A form's JSON export to create or update a form from (docs/forms.md)."""

    file = FileField(
        "Form file (.json)",
        [
            FileRequired("Choose a form file (.json)"),
            FileSize(IMPORT_MAX_BYTES, message="The file is larger than 256 KB"),
        ],
    )
    publish = BooleanField("Publish it when every required field is mapped")

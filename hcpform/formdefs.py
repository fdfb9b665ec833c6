"""Form definitions as data: the HousecallPro Service Request Template and the HCP keys.

A definition is a dict: {"steps": [{"slug", "title", "fields": [field, ...]}, ...]}; a field is
{"name", "label", "type", "required", "hcp_key", ...}. The wizard builds its WTForms from it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, Protocol

TEMPLATE_NAME = "HousecallPro Service Request Template"
DEFAULT_SLUG = "service-request"

# The eight keys HCP needs to create a customer with an address; a form lacking one can't publish.
REQUIRED_HCP_KEYS = (
    "customer_fname",
    "customer_lname",
    "customer_phone",
    "customer_email",
    "street",
    "city",
    "state",
    "zip",
)
OPTIONAL_HCP_KEYS = (
    "country",
    "booking_reason",
    "booking_type",
    "booking_date",
    "booking_time",
    "isFirstTimeClient",
    "customerType",
)
HCP_KEYS = REQUIRED_HCP_KEYS + OPTIONAL_HCP_KEYS

US_STATES = (
    ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"),
    ("CA", "California"), ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"),
    ("DC", "District of Columbia"), ("FL", "Florida"), ("GA", "Georgia"), ("HI", "Hawaii"),
    ("ID", "Idaho"), ("IL", "Illinois"), ("IN", "Indiana"), ("IA", "Iowa"), ("KS", "Kansas"),
    ("KY", "Kentucky"), ("LA", "Louisiana"), ("ME", "Maine"), ("MD", "Maryland"),
    ("MA", "Massachusetts"), ("MI", "Michigan"), ("MN", "Minnesota"), ("MS", "Mississippi"),
    ("MO", "Missouri"), ("MT", "Montana"), ("NE", "Nebraska"), ("NV", "Nevada"),
    ("NH", "New Hampshire"), ("NJ", "New Jersey"), ("NM", "New Mexico"), ("NY", "New York"),
    ("NC", "North Carolina"), ("ND", "North Dakota"), ("OH", "Ohio"), ("OK", "Oklahoma"),
    ("OR", "Oregon"), ("PA", "Pennsylvania"), ("RI", "Rhode Island"), ("SC", "South Carolina"),
    ("SD", "South Dakota"), ("TN", "Tennessee"), ("TX", "Texas"), ("UT", "Utah"),
    ("VT", "Vermont"), ("VA", "Virginia"), ("WA", "Washington"), ("WV", "West Virginia"),
    ("WI", "Wisconsin"), ("WY", "Wyoming"),
)  # fmt: skip

URGENCY_CHOICES = (
    ("emergency", "Emergency – I need help right away"),
    ("soon", "Soon – within the next few days"),
    ("flexible", "Flexible – whenever suits you"),
)

# Words that make step 6 suggest choosing Emergency (a hint only; the admin edits them per form).
DEFAULT_EMERGENCY_KEYWORDS = (
    "gas smell", "smell gas", "smells like gas", "gas leak", "carbon monoxide", "flooding",
    "flooded", "burst pipe", "pipe burst", "no heat", "sparking", "sparks", "burning smell",
    "sewage", "sewer backup",
)  # fmt: skip

TEMPLATE_SERVICE_TYPES = (
    "Plumbing repair",
    "Drain cleaning",
    "Water heater",
    "HVAC repair",
    "HVAC maintenance",
    "Electrical",
    "Other",
)

TEMPLATE_TIME_WINDOWS = (
    {"id": "08-11", "label": "8–11 am", "start": "08:00", "end": "11:00"},
    {"id": "11-14", "label": "11 am–2 pm", "start": "11:00", "end": "14:00"},
    {"id": "14-17", "label": "2–5 pm", "start": "14:00", "end": "17:00"},
)

TEMPLATE_TERMS = (
    "By sending this request you agree that we may contact you by phone, text or email about "
    "it. We may need to move the visit if something urgent comes up; we will tell you first. "
    "A service fee may apply; we tell you before any work starts."
)

_TEMPLATE_STEPS: list[dict[str, Any]] = [
    {
        "slug": "location",
        "title": "Check your area",
        "heading": "Where do you need service?",
        "fields": [
            {"name": "zip", "label": "ZIP code", "type": "zip", "required": True,
             "hcp_key": "zip", "hint": "5 digits, for example 60614"},
        ],
    },
    {
        "slug": "service",
        "title": "Choose a service",
        "heading": "What do you need help with?",
        "fields": [
            {"name": "booking_type", "label": "Type of service", "type": "select",
             "required": True, "hcp_key": "booking_type", "options": "service_types",
             "required_message": "Choose the type of service you need"},
            {"name": "urgency", "label": "How urgent is it?", "type": "radio",
             "required": True, "hcp_key": None, "options": "urgency",
             "required_message": "Choose how urgent it is"},
        ],
    },
    {
        "slug": "description",
        "title": "Describe the problem",
        "heading": "Tell us about the problem",
        "fields": [
            {"name": "booking_reason", "label": "What is happening?", "type": "textarea",
             "required": True, "hcp_key": "booking_reason", "max_length": 2000,
             "hint": "For example: kitchen sink drains slowly and gurgles."},
            {"name": "special_instructions", "label": "Special instructions (optional)",
             "type": "textarea", "required": False, "hcp_key": None, "max_length": 1000,
             "hint": "Gate codes, pets, parking, the best time to call."},
        ],
    },
    {
        "slug": "contact",
        "title": "Your details",
        "heading": "How can we reach you?",
        "fields": [
            {"name": "customer_phone", "label": "Mobile phone", "type": "tel", "required": True,
             "hcp_key": "customer_phone", "hint": "We text you to confirm the visit."},
            {"name": "customer_fname", "label": "First name", "type": "text", "required": True,
             "hcp_key": "customer_fname", "max_length": 100, "autocomplete": "given-name"},
            {"name": "customer_lname", "label": "Last name", "type": "text", "required": True,
             "hcp_key": "customer_lname", "max_length": 100, "autocomplete": "family-name"},
            {"name": "customer_email", "label": "Email", "type": "email", "required": True,
             "hcp_key": "customer_email"},
            {"name": "street", "label": "Street address", "type": "text", "required": True,
             "hcp_key": "street", "max_length": 200, "autocomplete": "address-line1"},
            {"name": "street_line_2", "label": "Apartment, suite, unit (optional)",
             "type": "text", "required": False, "hcp_key": None, "max_length": 200,
             "autocomplete": "address-line2"},
            {"name": "city", "label": "City", "type": "text", "required": True,
             "hcp_key": "city", "max_length": 100, "autocomplete": "address-level2"},
            {"name": "state", "label": "State", "type": "select", "required": True,
             "hcp_key": "state", "options": "states", "autocomplete": "address-level1"},
            {"name": "zip", "label": "ZIP code", "type": "zip", "required": True,
             "hcp_key": "zip"},
            {"name": "country", "label": "Country", "type": "select", "required": True,
             "hcp_key": "country", "options": [["US", "United States"]],
             "autocomplete": "country"},
        ],
    },
    {
        "slug": "classification",
        "title": "About you",
        "heading": "A little about you",
        "fields": [
            {"name": "isFirstTimeClient", "label": "Have we worked for you before?",
             "type": "radio", "required": True, "hcp_key": "isFirstTimeClient",
             "required_message": "Say whether we have worked for you before",
             "options": [["true", "No, this is my first time"],
                         ["false", "Yes, I'm a returning customer"]]},
            {"name": "customerType", "label": "Is this for a home or a business?",
             "type": "radio", "required": True, "hcp_key": "customerType",
             "required_message": "Choose home or business",
             "options": [["residential", "Home (residential)"],
                         ["commercial", "Business (commercial)"]]},
            {"name": "company", "label": "Company name", "type": "text", "required": False,
             "required_if": {"customerType": "commercial"}, "hcp_key": None,
             "max_length": 200, "autocomplete": "organization",
             "hint": "Needed for business (commercial) requests."},
        ],
    },
    {
        "slug": "schedule",
        "title": "Pick a time",
        "heading": "When would you like us to come?",
        "fields": [
            {"name": "booking_date", "label": "Preferred date", "type": "date",
             "required": True, "hcp_key": "booking_date"},
            {"name": "booking_time", "label": "Preferred time window", "type": "radio",
             "required": True, "required_message": "Choose a time window",
             "hcp_key": "booking_time", "options": "time_windows"},
            {"name": "terms", "label": "I accept these terms", "type": "terms",
             "required": True, "hcp_key": None},
        ],
    },
]  # fmt: skip


def template_definition() -> dict[str, Any]:
    """Return a fresh copy of the HousecallPro Service Request Template's definition."""
    return {"template": TEMPLATE_NAME, "version": 1, "steps": copy.deepcopy(_TEMPLATE_STEPS)}


def template_settings() -> dict[str, Any]:
    """Return the template's form settings (everything but the definition and terms)."""
    return {
        "service_types": [{"name": n, "job_type_id": None} for n in TEMPLATE_SERVICE_TYPES],
        "time_windows": [dict(w) for w in TEMPLATE_TIME_WINDOWS],
        "closed_weekdays": [6],  # Sunday
        "closed_dates": [],
        "booking_horizon_days": 90,
        "time_zone": "America/Chicago",
        "service_area_zips": [],
        "allowed_domains": [],
    }


def iter_fields(definition: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (step, field) for every field of a definition, in order."""
    for step in definition.get("steps", []):
        for field in step.get("fields", []):
            yield step, field


def mapped_keys(definition: dict[str, Any]) -> set[str]:
    """Return the HCP keys the definition's fields map to."""
    return {f["hcp_key"] for _, f in iter_fields(definition) if f.get("hcp_key")}


def missing_required_keys(definition: dict[str, Any]) -> list[str]:
    """Return the required HCP keys no field maps to, in the canonical order."""
    present = mapped_keys(definition)
    return [k for k in REQUIRED_HCP_KEYS if k not in present]


def missing_mappings_message(missing: list[str]) -> str:
    """Return the seed's error text for missing mappings."""
    return "Missing required HousecallPro mappings: " + ", ".join(missing)


def step_slugs(definition: dict[str, Any]) -> list[str]:
    """Return the definition's step slugs in order."""
    return [s["slug"] for s in definition.get("steps", [])]


def get_step(definition: dict[str, Any], slug: str) -> dict[str, Any] | None:
    """Return the step with this slug, or None."""
    return next((s for s in definition.get("steps", []) if s["slug"] == slug), None)


class FormSettings(Protocol):
    """The settings of a form that its choices come from (a `models.Form` row has them)."""

    service_types: list[dict[str, Any]]
    time_windows: list[dict[str, Any]]


def booking_fields(step: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """Return the names of a step's preferred-date field and time-window field (or None)."""
    fields = (step or {}).get("fields", [])
    date_field = next((f["name"] for f in fields if f.get("type") == "date"), None)
    window_field = next((f["name"] for f in fields if f.get("options") == "time_windows"), None)
    return date_field, window_field


def choices_for(field: dict[str, Any], form: FormSettings) -> list[tuple[str, str]]:
    """Return (value, label) pairs for a select or radio field of a form."""
    options = field.get("options")
    if options == "service_types":
        return [(s["name"], s["name"]) for s in form.service_types]
    if options == "urgency":
        return list(URGENCY_CHOICES)
    if options == "states":
        return list(US_STATES)
    if options == "time_windows":
        return [(w["id"], w["label"]) for w in form.time_windows]
    return [(str(v), str(label)) for v, label in (options or [])]


# What a request of a service type creates in HCP (a service type's "creates"); job by default.
RECORD_KINDS = (("job", "Job"), ("estimate", "Estimate"), ("lead", "Lead"))


def record_kind(service_types: list[dict[str, Any]], name: str) -> str:
    """Return what a request for this service type creates in HCP: job, estimate or lead."""
    entry = next((s for s in service_types or [] if s.get("name") == name), None)
    kind = (entry or {}).get("creates") or "job"
    return kind if kind in dict(RECORD_KINDS) else "job"


# A service type may repeat (recurring maintenance): its frequency, in months, and its wording.
REPEAT_CHOICES = (
    ("", "Doesn't repeat"),
    ("monthly", "Monthly"),
    ("quarterly", "Quarterly (every 3 months)"),
    ("yearly", "Yearly"),
)
REPEAT_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}


def repeat_frequency(service_types: list[dict[str, Any]], name: str) -> str:
    """Return how often this service type may repeat ('monthly', 'quarterly', 'yearly') or ''."""
    entry = next((s for s in service_types or [] if s.get("name") == name), None)
    frequency = str((entry or {}).get("repeats") or "")
    return frequency if frequency in REPEAT_MONTHS else ""


def repeat_label(frequency: str) -> str:
    """Return a frequency as a homeowner reads it: "every 3 months" ('' for none)."""
    months = REPEAT_MONTHS.get(frequency)
    if months is None:
        return ""
    return {1: "every month", 12: "every year"}.get(months, f"every {months} months")


def template_texts() -> list[str]:
    """Return the template form's homeowner-facing texts (the catalogues translate them).

    A form's own texts are shown translated only while they are still the template's.
    """
    texts: list[str] = [TEMPLATE_TERMS, *TEMPLATE_SERVICE_TYPES]
    texts += [w["label"] for w in TEMPLATE_TIME_WINDOWS]
    texts += [label for _, label in URGENCY_CHOICES]
    texts += [label for _, label in REPEAT_CHOICES if _]
    for step in _TEMPLATE_STEPS:
        texts += [step["title"], step.get("heading", "")]
        for field in step["fields"]:
            texts += [field["label"], field.get("hint", ""), required_message(field)]
            if isinstance(field.get("options"), list):
                texts += [str(label) for _, label in field["options"]]
    return list(dict.fromkeys(t for t in texts if t))


def required_message(field: dict[str, Any]) -> str:
    """Return the English message for a required field left empty (the catalogue's msgid)."""
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

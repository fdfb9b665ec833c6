"""Pure functions from a service request to HCP request bodies and back (no I/O).

They take a `ServiceRequest`, a plain frozen dataclass of the values HCP needs, never a database
row: this package knows nothing of hcpform's models, database or queue.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import phonenumbers

PHONE_KEYS = ("mobile_number", "home_number", "work_number")
# A unit word says nothing about which unit: "Apt 2", "Unit 2" and "# 2" are the same one.
UNIT_WORDS = frozenset({"apt", "unit", "ste", "no"})

URGENCY_LABELS = {"emergency": "Emergency", "soon": "Soon", "flexible": "Flexible"}
PREFERRED_TIME_TAG = "Preferred time"


@dataclass(frozen=True)
class ServiceRequest:
    """One homeowner's request as HCP needs it: who, where, what, when and where from."""

    reference: str
    first_name: str
    last_name: str
    email: str | None
    phone: str
    company: str | None
    customer_type: str
    is_first_time_client: bool | None
    street: str
    street_line_2: str | None
    city: str
    state: str
    zip: str
    country: str | None
    service_type: str
    urgency: str
    description: str
    special_instructions: str | None
    booking_date: date | None
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    answers: Mapping[str, Any]
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    click_id: str | None
    landing_url: str | None
    referrer: str | None
    typed_differences: str | None
    # "booked": a window HCP had open (a scheduled job); "preference": a time the office
    # confirms by phone (an unscheduled job, the preference in its notes).
    schedule_kind: str = "booked"

    @classmethod
    def of(cls, source: Any) -> ServiceRequest:
        """Return the request read from any object with these attributes (e.g. a row)."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})


def normalise_email(value: str) -> str:
    """Return the form of an email used to compare two addresses."""
    return value.strip().lower()


def normalise_street(value: str) -> str:
    """Return a street reduced to compare two spellings (`12 Main St.` == `12 main street`)."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    words = [_STREET_ABBREVIATIONS.get(w, w) for w in text.split()]
    return " ".join(words)


_STREET_ABBREVIATIONS = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr", "lane": "ln",
    "boulevard": "blvd", "court": "ct", "place": "pl", "terrace": "ter", "circle": "cir",
    "highway": "hwy", "parkway": "pkwy", "north": "n", "south": "s", "east": "e", "west": "w",
    "apartment": "apt", "suite": "ste",
}  # fmt: skip


def reference_marker(reference: str) -> str:
    """Return the text we put in a job's notes so a retry can find the job again."""
    return f"hcpform ref {reference}"


def customer_tags(sub: ServiceRequest, extra: list[str]) -> list[str]:
    """Return the tags of a new customer."""
    kind = "Commercial" if sub.customer_type == "commercial" else "Residential"
    return _unique(["Web request", kind, *extra])


def job_tags(sub: ServiceRequest, extra: list[str]) -> list[str]:
    """Return the tags of the job: web request, classification, urgency."""
    tags = customer_tags(sub, extra)
    if sub.urgency == "emergency":
        tags.append("Emergency")
    return _unique(tags)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for t in items:
        if t and t.lower() not in seen:
            seen.add(t.lower())
            kept.append(t)
    return kept


def address_body(sub: ServiceRequest) -> dict[str, Any]:
    """Return an AddressCreate body."""
    body = {
        "street": sub.street,
        "city": sub.city,
        "state": sub.state,
        "zip": sub.zip,
        "country": sub.country or "US",
    }
    if sub.street_line_2:
        body["street_line_2"] = sub.street_line_2
    return body


def customer_body(
    sub: ServiceRequest, *, lead_source: str | None, tags: list[str]
) -> dict[str, Any]:
    """Return a CustomerCreate body with the service address inline."""
    body: dict[str, Any] = {
        "first_name": sub.first_name,
        "last_name": sub.last_name,
        "email": sub.email,
        "mobile_number": hcp_phone(sub.phone),
        "notifications_enabled": True,
        "tags": customer_tags(sub, tags),
        "addresses": [address_body(sub)],
    }
    if sub.customer_type == "commercial" and sub.company:
        body["company"] = sub.company
    if lead_source:
        body["lead_source"] = lead_source
    return body


def job_notes(sub: ServiceRequest, *, window_label: str, time_zone: str) -> str:
    """Return the job's notes: the problem, the answers, the reference and the attribution."""
    lines = [
        f"Web request {sub.reference} ({reference_marker(sub.reference)})",
        f"Service: {sub.service_type} – urgency: {URGENCY_LABELS.get(sub.urgency, sub.urgency)}",
        f"Problem: {sub.description}",
    ]
    if sub.special_instructions:
        lines.append(f"Special instructions: {sub.special_instructions}")
    kind = "Commercial" if sub.customer_type == "commercial" else "Residential"
    first = {True: "first-time client", False: "returning client", None: "not said"}[
        sub.is_first_time_client
    ]
    lines.append(f"Customer: {kind}, {first}" + (f", company {sub.company}" if sub.company else ""))
    if sub.booking_date:
        when = f"{sub.booking_date:%a %b %-d, %Y}, {window_label} ({time_zone})"
        if _booked(sub):
            lines.append(f"Booked online: {when}")
        else:
            lines.append(f"Preferred: {when} – needs scheduling, confirm by phone")
    if sub.typed_differences:  # set by the sync when a returning customer typed other details
        lines.append(sub.typed_differences)
    attribution = attribution_text(sub)
    if attribution:
        lines.append(f"Source: {attribution}")
    for key, value in (sub.answers or {}).items():
        if key.startswith("custom_"):
            lines.append(f"{key[7:].replace('_', ' ').capitalize()}: {value}")
    return "\n".join(lines)


def attribution_text(sub: ServiceRequest) -> str:
    """Return the lead attribution as one line."""
    parts = []
    if sub.utm_source or sub.utm_medium or sub.utm_campaign:
        parts.append(" / ".join(p for p in (sub.utm_source, sub.utm_medium, sub.utm_campaign) if p))
    if sub.click_id:
        parts.append(f"click id {sub.click_id[:60]}")
    if sub.landing_url:
        parts.append(f"page {sub.landing_url[:200]}")
    if sub.referrer:
        parts.append(f"referrer {sub.referrer[:200]}")
    return "; ".join(parts)


def job_body(
    sub: ServiceRequest,
    *,
    customer_id: str,
    address_id: str,
    job_type_id: str | None,
    lead_source: str | None,
    tags: list[str],
    window_label: str,
    time_zone: str,
    employee_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Return a JobCreate body: notes, tags, and the schedule with the company's UTC offset.

    Only a booked window is scheduled; a preferred time leaves the job unscheduled ("needs
    scheduling" in HCP) with the preference in its notes and the `Preferred time` tag.
    """
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "address_id": address_id,
        "notes": job_notes(sub, window_label=window_label, time_zone=time_zone),
        "tags": job_tags(sub, tags),
    }
    if not _booked(sub) and (sub.booking_date or sub.scheduled_start):
        body["tags"] = _unique([*body["tags"], PREFERRED_TIME_TAG])
    if _booked(sub) and sub.scheduled_start and sub.scheduled_end:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(time_zone)
        start, end = sub.scheduled_start.astimezone(tz), sub.scheduled_end.astimezone(tz)
        body["schedule"] = {
            "scheduled_start": start.isoformat(),
            "scheduled_end": end.isoformat(),
            "arrival_window": int((end - start).total_seconds() // 60),
        }
    if job_type_id:
        body["job_fields"] = {"job_type_id": job_type_id}
    if lead_source:
        body["lead_source"] = lead_source
    if employee_ids:
        body["assigned_employee_ids"] = employee_ids
    return body


def _booked(sub: ServiceRequest) -> bool:
    """Return True when the request's time is a booked window (not a preference)."""
    return sub.schedule_kind == "booked"


def phone_e164(value: str | None) -> str:
    """Return a phone number as E.164, reading one without a country code as US; "" if unreadable.

    HCP keeps bare digits, so an international number saved there may have lost its "+": digits
    that are no valid US number are read once more as a number with its country code.
    """
    text = (value or "").strip()
    if not text:
        return ""
    number = _parse_phone(text, "US")
    if (number is None or not phonenumbers.is_valid_number(number)) and not text.startswith("+"):
        digits = re.sub(r"\D", "", text)
        if len(digits) > 10:
            international = _parse_phone("+" + digits, None)
            if international is not None and phonenumbers.is_valid_number(international):
                number = international
    if number is None:
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def hcp_phone(e164: str) -> str:
    """Return a number the way we send it to HCP: US national digits, else E.164 (never folded)."""
    number = _parse_phone(e164 or "", "US")
    if number is None:
        return re.sub(r"[^\d+]", "", e164 or "")
    if number.country_code == 1:
        return str(number.national_number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_query(e164: str) -> str:
    """Return the `q` that finds a number in HCP's customer search (which matches digits)."""
    return hcp_phone(e164).lstrip("+")


def display_phone(e164: str) -> str:
    """Return a number as people read it: (312) 555-0123 in the US, +44 20 7946 0958 elsewhere."""
    number = _parse_phone(e164 or "", "US")
    if number is None:
        return e164 or ""
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)


def normalise_name(value: str | None) -> str:
    """Return a name reduced to compare two spellings: no case, accents or whitespace."""
    text = unicodedata.normalize("NFKD", value or "")
    return "".join(c for c in text if not unicodedata.combining(c) and not c.isspace()).casefold()


def same_last_name(customer: dict[str, Any], last_name: str | None) -> bool:
    """Return True when the HCP customer's last name is this one (an empty name never matches)."""
    wanted = normalise_name(last_name)
    return bool(wanted) and normalise_name(customer.get("last_name")) == wanted


def customer_matches(
    customer: dict[str, Any], *, phone: str, email: str | None, last_name: str | None = None
) -> str | None:
    """Return 'phone' or 'email' when an HCP customer is this person, else None.

    A mobile number is the person's own: it matches alone. A home or work number is shared by a
    household or an office, and an email by a couple: they match only with the last name too.
    """
    wanted = phone_e164(phone)
    if wanted:
        if phone_e164(customer.get("mobile_number")) == wanted:
            return "phone"
        if same_last_name(customer, last_name) and any(
            phone_e164(customer.get(key)) == wanted for key in ("home_number", "work_number")
        ):
            return "phone"
    same_email = bool(email) and normalise_email(customer.get("email") or "") == normalise_email(
        email or ""
    )
    if same_email and same_last_name(customer, last_name):
        return "email"
    return None


def submission_matches(customer: dict[str, Any], sub: ServiceRequest) -> str | None:
    """Return how an HCP customer is the person of this submission ('phone', 'email'), or None."""
    return customer_matches(customer, phone=sub.phone, email=sub.email, last_name=sub.last_name)


def shares_contact(customer: dict[str, Any], *, phone: str, email: str | None) -> bool:
    """Return True when an HCP customer has this phone (any of its numbers) or this email."""
    wanted = phone_e164(phone)
    if wanted and any(phone_e164(customer.get(key)) == wanted for key in PHONE_KEYS):
        return True
    email = normalise_email(email or "")
    return bool(email) and normalise_email(customer.get("email") or "") == email


def possible_duplicate(customer: dict[str, Any], sub: ServiceRequest) -> bool:
    """Return True when a customer that is not a match shares the email or a number with sub."""
    wanted = phone_e164(sub.phone)
    if wanted and any(phone_e164(customer.get(key)) == wanted for key in PHONE_KEYS):
        return True
    email = normalise_email(sub.email or "")
    return bool(email) and normalise_email(customer.get("email") or "") == email


def typed_differences(customer: dict[str, Any], sub: ServiceRequest) -> dict[str, str]:
    """Return what a returning customer typed that HCP has otherwise, by field name.

    HCP's record stays as it is (the office decides); the values go to HCP's job notes only,
    never to logs (log the keys).
    """
    found = {}
    if normalise_email(sub.email or "") != normalise_email(customer.get("email") or ""):
        found["email"] = f"email {sub.email or 'none'} (HCP has {customer.get('email') or 'none'})"
    typed_name = f"{sub.first_name} {sub.last_name}".strip()
    hcp_name = " ".join(
        n.strip() for n in (customer.get("first_name") or "", customer.get("last_name") or "")
    ).strip()
    if normalise_name(typed_name) != normalise_name(hcp_name):
        found["name"] = f"name {typed_name or 'none'} (HCP has {hcp_name or 'none'})"
    hcp_mobile = customer.get("mobile_number") or ""
    if phone_e164(sub.phone) != phone_e164(hcp_mobile):
        shown = display_phone(phone_e164(hcp_mobile) or hcp_mobile) if hcp_mobile else "none"
        found["mobile"] = f"mobile {display_phone(sub.phone)} (HCP has {shown})"
    return found


def differences_note(differences: dict[str, str]) -> str:
    """Return the job note line for typed differences ("" when there are none)."""
    return ("Typed in the request: " + "; ".join(differences.values())) if differences else ""


def find_address(addresses: list[dict[str, Any]], sub: ServiceRequest) -> dict[str, Any] | None:
    """Return the customer's address with the same street, unit (street line 2) and ZIP, if any."""
    street, unit, zip5 = normalise_street(sub.street), _unit(sub.street_line_2), (sub.zip or "")[:5]
    for address in addresses:
        if (
            normalise_street(address.get("street") or "") == street
            and _unit(address.get("street_line_2")) == unit
            and (address.get("zip") or "")[:5] == zip5
        ):
            return address
    return None


def _unit(value: str | None) -> str:
    """Return street line 2 reduced to the unit itself: "Apt. 2B", "unit 2b" and "#2B" agree."""
    return " ".join(w for w in normalise_street(value or "").split() if w not in UNIT_WORDS)


# -- estimates and leads --------------------------------------------------------------------


def estimate_body(
    sub: ServiceRequest,
    *,
    customer_id: str,
    address_id: str,
    job_type_id: str | None,
    lead_source: str | None,
    tags: list[str],
    window_label: str,
    time_zone: str,
) -> dict[str, Any]:
    """Return an EstimateCreate body: customer, address, schedule when booked, note, tags.

    EstimateCreate has no top-level tags: they go on its one option, as HCP shows them.
    """
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "address_id": address_id,
        "note": job_notes(sub, window_label=window_label, time_zone=time_zone),
        "options": [{"name": "Option #1", "tags": job_tags(sub, tags)}],
    }
    if sub.scheduled_start and sub.scheduled_end:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(time_zone)
        start, end = sub.scheduled_start.astimezone(tz), sub.scheduled_end.astimezone(tz)
        body["schedule"] = {
            "start_time": start.isoformat(),
            "end_time": end.isoformat(),
            "arrival_window_in_minutes": int((end - start).total_seconds() // 60),
        }
    if job_type_id:
        body["estimate_fields"] = {"job_type_id": job_type_id}
    if lead_source:
        body["lead_source"] = lead_source
    return body


def lead_body(
    sub: ServiceRequest,
    *,
    customer_id: str,
    address_id: str,
    lead_source: str | None,
    tags: list[str],
    window_label: str,
    time_zone: str,
) -> dict[str, Any]:
    """Return a LeadCreate body: customer and address, lead source, note and tags."""
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "address_id": address_id,
        "note": job_notes(sub, window_label=window_label, time_zone=time_zone),
        "tags": job_tags(sub, tags),
    }
    if lead_source:
        body["lead_source"] = lead_source
    return body


def estimate_has_marker(estimate: Mapping[str, Any], reference: str) -> bool:
    """Return True when an estimate's notes (on its options) carry our reference marker."""
    marker = reference_marker(reference)
    for option in estimate.get("options") or []:
        notes = option.get("notes") if isinstance(option, Mapping) else None
        for note in notes or []:
            if isinstance(note, Mapping) and marker in (note.get("content") or ""):
                return True
    return marker in str(estimate.get("note") or "")


def lead_looks_ours(
    lead: Mapping[str, Any], *, tags: list[str], lead_source: str | None, since: datetime
) -> bool:
    """Return True when a lead has all these tags, this lead source and was made after `since`.

    A Lead has no notes in HCP's API, so this is the best a retry can tell; the caller also
    leaves out leads that another submission already holds.
    """
    have = {str(t).lower() for t in lead.get("tags") or []}
    if not {t.lower() for t in tags} <= have:
        return False
    source = lead.get("lead_source")
    if isinstance(source, Mapping):  # tolerate an object where the definition has a name
        source = source.get("name")
    if (source or "").strip().lower() != (lead_source or "").strip().lower():
        return False
    created = _parse_time(lead.get("created_at"))
    return created is not None and created >= since


def _parse_time(value: Any) -> datetime | None:
    """Return an aware datetime from HCP's ISO text (UTC with Z), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed

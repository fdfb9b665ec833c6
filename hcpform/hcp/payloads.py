"""Pure functions from a service request to HCP request bodies and back (no I/O).

They take a `ServiceRequest`, a plain frozen dataclass of the values HCP needs, never a database
row: this package knows nothing of hcpform's models, database or queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .matching import hcp_phone
from .types import ServiceRequest

URGENCY_LABELS = {"emergency": "Emergency", "soon": "Soon", "flexible": "Flexible"}
PREFERRED_TIME_TAG = "Preferred time"
NEEDS_ASSIGNMENT_TAG = "Needs assignment"  # a job or estimate that no pro was assigned to
RECURRING_TAG = "Recurring maintenance"
ASAP_TAG = "ASAP"  # an emergency to send someone to as soon as possible, not yet scheduled
# The contact step's preference, as the job's tag and its line in the notes.
CONTACT_TAGS = {"call": "Prefers call", "text": "Prefers text", "email": "Prefers email"}
CONTACT_NOTES = {"call": "a phone call", "text": "a text message", "email": "email"}
# The homeowner's language, by its code, as the office reads it (tag and notes); English has none.
LANGUAGE_NAMES = {"es": "Spanish"}


def language_name(sub: ServiceRequest) -> str:
    """Return the name of the homeowner's language when it is not English ("Spanish"), else ""."""
    code = (sub.language or "en").lower()
    return "" if code == "en" else LANGUAGE_NAMES.get(code, code)


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
    if sub.follows:
        tags.append(RECURRING_TAG)
    if sub.asap and not _booked(sub):
        tags.append(ASAP_TAG)
    if sub.contact_method in CONTACT_TAGS:
        tags.append(CONTACT_TAGS[sub.contact_method])
    if language_name(sub):
        tags.append(language_name(sub))
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
        # HCP's own notifications: off only when the person asked for a phone call only.
        "notifications_enabled": sub.contact_method != "call",
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
    if sub.urgency == "emergency":
        lines.insert(0, "EMERGENCY: the customer says this is an emergency.")
    if language_name(sub):
        name = language_name(sub)
        lines.append(f"Language: {name} – the customer filled the form in {name}")
    if sub.asap:
        lines.append(
            "The customer asked for the earliest possible visit (as soon as possible)"
            + ("." if _booked(sub) else ": no open window today or tomorrow – call them now.")
        )
    if sub.special_instructions:
        lines.append(f"Special instructions: {sub.special_instructions}")
    if sub.contact_method in CONTACT_NOTES:
        lines.append(f"Contact preference: {CONTACT_NOTES[sub.contact_method]}")
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
    if sub.repeat_label:
        lines.append(
            f"Recurring maintenance: {sub.repeat_label}; follow-up requests are created by hcpform"
        )
    if sub.follows:
        lines.append(f"Follow-up of {sub.follows}: recurring maintenance, needs scheduling")
    if sub.typed_differences:  # set by the sync when a returning customer typed other details
        lines.append(sub.typed_differences)
    if sub.abandoned_lead_id:
        lines.append(
            f"Was abandoned lead {sub.abandoned_lead_id}: the person came back and finished "
            "the request online"
        )
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
    window = local_schedule(sub, time_zone)
    if window:
        start, end, minutes = window
        body["schedule"] = {
            "scheduled_start": start,
            "scheduled_end": end,
            "arrival_window": minutes,
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


def local_schedule(sub: ServiceRequest, time_zone: str) -> tuple[str, str, int] | None:
    """Return a booked window's start and end (ISO, in the company's zone) and its minutes.

    None for a preference: HCP gets no schedule then, only the preference in the notes.
    """
    if not (_booked(sub) and sub.scheduled_start and sub.scheduled_end):
        return None
    tz = ZoneInfo(time_zone)
    start, end = sub.scheduled_start.astimezone(tz), sub.scheduled_end.astimezone(tz)
    return start.isoformat(), end.isoformat(), int((end - start).total_seconds() // 60)


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
    employee_ids: list[str] | None = None,
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
    window = local_schedule(sub, time_zone)
    if window:
        start, end, minutes = window
        body["schedule"] = {
            "start_time": start,
            "end_time": end,
            "arrival_window_in_minutes": minutes,
        }
    if job_type_id:
        body["estimate_fields"] = {"job_type_id": job_type_id}
    if employee_ids:
        body["assigned_employee_ids"] = employee_ids
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


def abandoned_lead_body(
    sub: ServiceRequest,
    *,
    customer_id: str,
    address_id: str | None,
    lead_source: str | None,
    tags: list[str],
    stopped_at: str,
    filled_in: list[tuple[str, str]],
    resume_url: str,
) -> dict[str, Any]:
    """Return a LeadCreate body for a request left unfinished: what was filled in, the link."""
    lines = [
        f"Unfinished web request ({sub.reference}): the person stopped at {stopped_at} and "
        "agreed that we may contact them about it.",
        "Filled in:",
        *(f"- {label}: {value}" for label, value in filled_in),
        f"They can finish it here: {resume_url}",
    ]
    attribution = attribution_text(sub)
    if attribution:
        lines.append(f"Source: {attribution}")
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "note": "\n".join(lines),
        "tags": job_tags(sub, tags),
    }
    if address_id:
        body["address_id"] = address_id
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
    created = parse_time(lead.get("created_at"))
    return created is not None and created >= since


def parse_time(value: Any) -> datetime | None:
    """Return an aware UTC datetime from HCP's ISO text (a naive one is read as UTC), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

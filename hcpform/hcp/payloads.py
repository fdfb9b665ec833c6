"""Pure functions from a submission to HCP request bodies and back (no I/O)."""

from __future__ import annotations

from typing import Any

from ..models import Submission
from ..validation import normalise_email, normalise_street, phone_digits

URGENCY_LABELS = {"emergency": "Emergency", "soon": "Soon", "flexible": "Flexible"}


def reference_marker(reference: str) -> str:
    """Return the text we put in a job's notes so a retry can find the job again."""
    return f"hcpform ref {reference}"


def customer_tags(sub: Submission, extra: list[str]) -> list[str]:
    """Return the tags of a new customer."""
    kind = "Commercial" if sub.customer_type == "commercial" else "Residential"
    return _unique(["Web request", kind, *extra])


def job_tags(sub: Submission, extra: list[str]) -> list[str]:
    """Return the tags of the job: web request, classification, urgency."""
    tags = customer_tags(sub, extra)
    if sub.urgency == "emergency":
        tags.append("Emergency")
    return _unique(tags)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [t for t in items if t and not (t.lower() in seen or seen.add(t.lower()))]


def address_body(sub: Submission) -> dict[str, Any]:
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


def customer_body(sub: Submission, *, lead_source: str | None, tags: list[str]) -> dict[str, Any]:
    """Return a CustomerCreate body with the service address inline."""
    body: dict[str, Any] = {
        "first_name": sub.first_name,
        "last_name": sub.last_name,
        "email": sub.email,
        "mobile_number": phone_digits(sub.phone),
        "notifications_enabled": True,
        "tags": customer_tags(sub, tags),
        "addresses": [address_body(sub)],
    }
    if sub.customer_type == "commercial" and sub.company:
        body["company"] = sub.company
    if lead_source:
        body["lead_source"] = lead_source
    return body


def job_notes(sub: Submission, *, window_label: str, time_zone: str) -> str:
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
        lines.append(f"Preferred: {sub.booking_date:%a %b %-d, %Y}, {window_label} ({time_zone})")
    attribution = attribution_text(sub)
    if attribution:
        lines.append(f"Source: {attribution}")
    for key, value in (sub.answers or {}).items():
        if key.startswith("custom_"):
            lines.append(f"{key[7:].replace('_', ' ').capitalize()}: {value}")
    return "\n".join(lines)


def attribution_text(sub: Submission) -> str:
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
    sub: Submission,
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
    """Return a JobCreate body: the schedule with the company's UTC offset, notes and tags."""
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "address_id": address_id,
        "notes": job_notes(sub, window_label=window_label, time_zone=time_zone),
        "tags": job_tags(sub, tags),
    }
    if sub.scheduled_start and sub.scheduled_end:
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


def customer_matches(customer: dict[str, Any], *, phone: str, email: str) -> str | None:
    """Return 'phone' or 'email' when an HCP customer is this person, else None (never by name)."""
    digits = phone_digits(phone)
    for key in ("mobile_number", "home_number", "work_number"):
        value = customer.get(key) or ""
        if value and phone_digits(value) == digits:
            return "phone"
    if email and normalise_email(customer.get("email") or "") == normalise_email(email):
        return "email"
    return None


def find_address(addresses: list[dict[str, Any]], sub: Submission) -> dict[str, Any] | None:
    """Return the customer's address with the same normalised street and ZIP, if any."""
    street, zip5 = normalise_street(sub.street), (sub.zip or "")[:5]
    for address in addresses:
        if normalise_street(address.get("street") or "") == street and (
            (address.get("zip") or "")[:5] == zip5
        ):
            return address
    return None


def masked_hint(customer: dict[str, Any]) -> str:
    """Return a hint that tells a returning customer we know them and tells nobody else much."""
    first = (customer.get("first_name") or "").strip()[:1]
    last = (customer.get("last_name") or "").strip()[:1]
    initials = " ".join(f"{c.upper()}." for c in (first, last) if c)
    addresses = customer.get("addresses") or []
    street = ""
    if addresses:
        words = (addresses[0].get("street") or "").split()
        if words and words[0].isdigit():
            number = words[0]
            masked = (
                number[:2] + "•" * max(0, len(number) - 2) if len(number) > 2 else "•" * len(number)
            )
            street = " ".join([masked, *words[1:]])
    return ", ".join(p for p in (initials, street) if p)

"""The plain values the HCP package works from: one homeowner's request, no database row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any


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
    # Recurring maintenance: how often the visit repeats ("every 3 months", "" = it doesn't),
    # and for a follow-up request, the original's HCP record and reference ("" otherwise).
    repeat_label: str = ""
    follows: str = ""
    # The homeowner asked for the earliest possible visit ("As soon as possible" on step 6).
    asap: bool = False
    # The lead sent for this request's draft while it lay abandoned (its job notes name it).
    abandoned_lead_id: str | None = None
    # How the person wants to be contacted: "call", "text", "email" ("" = not asked).
    contact_method: str = ""
    # The language the homeowner filled the form in ("en", "es"): the office sends someone who
    # speaks it (a tag and a line in the notes when it is not English).
    language: str = "en"

    @classmethod
    def of(cls, source: Any) -> ServiceRequest:
        """Return the request read from any object with these attributes (e.g. a row)."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})

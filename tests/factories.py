"""Factories: valid rows with sensible defaults; they add and flush, the test commits."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from hcpform import validation
from hcpform.extensions import db
from hcpform.models import Form, Status, Submission
from hcpform.submissions import make_reference
from hcpform.timeutil import utcnow


def default_form() -> Form:
    """Return the default form made by init-db."""
    return db.session.scalar(select(Form).where(Form.slug == "service-request"))


def make_submission(**overrides: Any) -> Submission:
    """Add a pending submission for Jane Doe (override any column)."""
    form = overrides.pop("form", None) or default_form()
    day = overrides.pop("booking_date", None) or _open_day(form)
    window = form.time_windows[0]
    start, end = validation.window_bounds(day, window, form.time_zone)
    values: dict[str, Any] = {
        "reference": make_reference(),
        "form_id": form.id,
        "status": Status.PENDING,
        "first_name": "Jane",
        "last_name": "Doe",
        "phone": "+13125550142",
        "email": "jane.doe@example.com",
        "street": "1234 N Clark St",
        "city": "Chicago",
        "state": "IL",
        "zip": "60614",
        "country": "US",
        "customer_type": "residential",
        "is_first_time_client": True,
        "service_type": "Drain cleaning",
        "urgency": "soon",
        "description": "Kitchen sink drains slowly.",
        "booking_date": day,
        "booking_window": window["id"],
        "scheduled_start": start,
        "scheduled_end": end,
        "schedule_kind": "booked",  # a window HCP had open: a scheduled job
        "answers": {},
        "created_at": utcnow(),
    }
    values.update(overrides)
    sub = Submission(**values)
    db.session.add(sub)
    db.session.flush()
    return sub


def _open_day(form: Form) -> date:
    day = validation.today_in(form.time_zone, utcnow()) + timedelta(days=3)
    while day.weekday() in form.closed_weekdays:
        day += timedelta(days=1)
    return day

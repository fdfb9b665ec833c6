"""Test helpers: walk the wizard like a browser (reading each page's CSRF token), make rows."""

from __future__ import annotations

import html
import re
import time
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import requests

TOKEN_RE = re.compile(
    r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"'
)
ACTION_RE = re.compile(r'<form[^>]*action="([^"]+)"')
SLOT_RE = re.compile(r'name="booking_slot" value="([^"]+)"')


def slots_in(page: str) -> list[str]:
    """Return the open HCP windows step 6 offers (their ids, earliest first)."""
    return SLOT_RE.findall(page)


def next_open_day(days_ahead: int = 3, tz: str = "America/Chicago") -> str:
    """Return an ISO date a few days ahead that is not a Sunday (the template's closed day)."""
    from datetime import datetime

    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=days_ahead)
    while day.weekday() == 6:
        day += timedelta(days=1)
    return day.isoformat()


def person(**overrides: Any) -> dict[str, dict[str, str]]:
    """Return a complete set of valid answers, by step."""
    answers = {
        "location": {"zip": "60614"},
        "service": {"booking_type": "Drain cleaning", "urgency": "soon"},
        "description": {
            "booking_reason": "Kitchen sink drains slowly.",
            "special_instructions": "",
        },
        "contact": {
            "customer_phone": "(312) 555-0142",
            "customer_fname": "Jane",
            "customer_lname": "Doe",
            "customer_email": "jane.doe@example.com",
            "street": "1234 N Clark St",
            "street_line_2": "",
            "city": "Chicago",
            "state": "IL",
            "zip": "60614",
            "country": "US",
        },
        "classification": {
            "isFirstTimeClient": "true",
            "customerType": "residential",
            "company": "",
        },
        "schedule": {"booking_date": next_open_day(), "booking_time": "08-11", "terms": "y"},
    }
    for key, value in overrides.items():
        for step in answers.values():
            if key in step:
                step[key] = value
    return answers


def step_data(page: str, step: str, answers: dict[str, dict[str, str]]) -> dict[str, str]:
    """Return what to post on a step: its answers, and on step 6 the earliest open window."""
    data = dict(answers[step])
    if step == "schedule" and "booking_slot" not in data and slots_in(page):
        data["booking_slot"] = slots_in(page)[0]
    return data


def token_of(page: str) -> str:
    """Return the CSRF token in a rendered page."""
    match = TOKEN_RE.search(page)
    assert match, "no csrf_token in the page"
    return html.unescape(match.group(1) or match.group(2))


HIDDEN_RE = re.compile(r'<input[^>]*type="hidden"[^>]*>')


def hidden_inputs(page: str) -> dict[str, str]:
    """Return the hidden inputs of a page, as a browser would post them."""
    found = {}
    for tag in HIDDEN_RE.findall(page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            found[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
    return found


def action_of(page: str) -> str:
    """Return the action URL of the page's form."""
    match = ACTION_RE.search(page)
    assert match, "no form in the page"
    return html.unescape(match.group(1))


def draft_token(url: str) -> str | None:
    """Return the draft token in a wizard URL."""
    return (parse_qs(urlparse(url).query).get("d") or [None])[0]


class Wizard:
    """Drive the wizard through the test client, as a browser would."""

    def __init__(self, client: Any, base: str = "/f/service-request") -> None:
        self.client = client
        self.base = base
        self.url = f"{base}/"
        self.page = ""

    def open(self, url: str | None = None) -> Any:
        self.url = url or self.url
        response = self.client.get(self.url)
        while response.status_code in (301, 302, 303):
            self.url = response.headers["Location"]
            response = self.client.get(self.url)
        self.page = response.get_data(as_text=True)
        return response

    def post(self, data: dict[str, str], *, follow: bool = True) -> Any:
        """Post the current page's form with its CSRF token; follow the redirect."""
        payload = {**hidden_inputs(self.page), "csrf_token": token_of(self.page), **data}
        response = self.client.post(action_of(self.page), data=payload)
        if response.status_code in (301, 302, 303) and follow:
            return self.open(response.headers["Location"])
        self.page = response.get_data(as_text=True)
        return response

    def complete(
        self, answers: dict[str, dict[str, str]] | None = None, *, submit: bool = True
    ) -> Any:
        """Walk every step (and submit); return the last response."""
        answers = answers or person()
        self.open(self.url)
        response = None
        for step in ("location", "service", "description", "contact", "classification", "schedule"):
            response = self.post(step_data(self.page, step, answers))
            assert response.status_code == 200, (step, response.status_code, self.page[:2000])
        assert "Check your answers" in self.page
        if submit:
            response = self.post({})
        return response

    @property
    def token(self) -> str | None:
        return draft_token(self.url)


def reference_in(page: str) -> str:
    """Return the submission reference shown on the confirmation page."""
    match = re.search(r'data-reference="(HCP-[0-9A-Z]{5})"', page)
    assert match, "no reference on the page"
    return match.group(1)


def days(n: int) -> date:
    """Return today plus n days in the template's time zone."""
    from datetime import datetime

    return datetime.now(ZoneInfo("America/Chicago")).date() + timedelta(days=n)


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> float:
    """Poll until predicate() is truthy; return the seconds it took, or fail at the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"not true after {timeout} s: {predicate.__doc__ or predicate}")


def set_form(app: Any, slug: str = "service-request", **values: Any) -> None:
    """Change settings of a form and commit them (the wizard reads them on every request)."""
    from sqlalchemy import select

    from hcpform.extensions import db
    from hcpform.models import Form

    with app.app_context():
        form = db.session.scalar(select(Form).where(Form.slug == slug))
        for key, value in values.items():
            setattr(form, key, value)
        db.session.commit()


def preferences_only(app: Any, slug: str = "service-request") -> None:
    """Set a form to offer its own windows as preferred times (a date and a window, no HCP)."""
    set_form(app, slug, scheduling_mode="preferences")


def seed_customer(sandbox: Any, **fields: Any) -> str:
    """Create Jane Doe (or `fields` over her) directly in the sandbox; return the customer id."""
    body = {
        "first_name": "Jane", "last_name": "Doe", "email": "jane.doe@example.com",
        "mobile_number": "3125550142",
        "addresses": [{"street": "1234 N Clark St", "city": "Chicago", "state": "IL",
                       "zip": "60614", "country": "US"}],
    } | fields  # fmt: skip
    response = requests.post(
        f"{sandbox.url}/customers",
        json=body,
        headers={"Authorization": "Token sandbox-key"},
        timeout=5,
    )
    response.raise_for_status()
    return str(response.json()["id"])


# -- a submission and its HCP job, by reference ------------------------------------------------


def sandbox_state(sandbox: Any) -> dict[str, Any]:
    """Return the sandbox's records."""
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()


def the_submission(app: Any, reference: str) -> Any:
    """Return a submission by its reference (detached, to read)."""
    from sqlalchemy import select

    from hcpform.extensions import db
    from hcpform.models import Submission

    with app.app_context():
        sub = db.session.scalar(select(Submission).where(Submission.reference == reference))
        db.session.expunge(sub)
        return sub


def sync(app: Any, reference: str) -> None:
    """Sync one submission in this process, to the end."""
    from sqlalchemy import select

    from hcpform.extensions import db
    from hcpform.jobs import sync_submission
    from hcpform.models import Submission

    with app.app_context():
        sub_id = db.session.scalar(select(Submission.id).where(Submission.reference == reference))
        assert sync_submission(sub_id) == "synced"


def job_of(sandbox: Any, reference: str) -> dict[str, Any]:
    """Return the HCP job whose notes carry our reference."""
    for job in sandbox_state(sandbox)["jobs"]:
        notes = " ".join(n.get("content") or "" for n in job.get("notes") or [])
        if reference in notes:
            return job
    raise AssertionError(f"no job for {reference}")


def walk_in_job(sandbox: Any, start: str, end: str, employee_ids: list[str] | None = None) -> None:
    """Put another customer's job in HCP from `start` to `end` (ISO), as the office would;
    assigned to these pros when given, else unassigned."""
    auth = {"Authorization": "Token sandbox-key"}
    address = {"street": "1 Main St", "city": "Chicago", "state": "IL", "zip": "60601"}
    customer = requests.post(
        f"{sandbox.url}/customers",
        json={"first_name": "Walk", "last_name": "In", "addresses": [address]},
        headers=auth,
        timeout=5,
    ).json()
    body: dict[str, Any] = {
        "customer_id": customer["id"],
        "address_id": customer["addresses"][0]["id"],
        "schedule": {"scheduled_start": start, "scheduled_end": end},
    }
    if employee_ids is not None:
        body["assigned_employee_ids"] = employee_ids
    job = requests.post(f"{sandbox.url}/jobs", json=body, headers=auth, timeout=5)
    assert job.status_code == 201, job.text

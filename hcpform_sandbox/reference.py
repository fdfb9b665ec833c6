"""Reference data: the company, employees, job types and lead sources (seeded and created)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from .util import (
    COMPANY_ID,
    DEFAULT_PAGE_SIZE,
    Result,
    answer,
    body,
    error,
    field_errors,
    iso,
    new_id,
    paginate,
    seed_id,
    state,
)

if TYPE_CHECKING:
    from werkzeug.datastructures import MultiDict

    from .state import SandboxState

bp = Blueprint("reference", __name__)

LEAD_SOURCE_NAMES = ("Website", "Google", "Facebook", "Referral", "hcpform")
AVATAR = "https://pro.housecallpro.com/assets/add_image_thumb_web_round.png"
_EMPLOYEES = (
    # first, last, role, bookable online, admin, color
    ("Marcus", "Reyes", "field tech", True, False, "4A90E2"),
    ("Dana", "Whitfield", "field tech", True, False, "EF9159"),
    ("Luis", "Ortega", "field tech", False, False, "7ED321"),
    ("Tom", "Becker", "field tech", True, False, "BD10E0"),
    ("Priya", "Shah", "office staff", False, True, "F5A623"),
)


def _permissions(*, tech: bool, bookable: bool, admin: bool) -> dict[str, bool]:
    office = not tech
    return {
        "can_add_and_edit_job": True,
        "can_be_booked_online": bookable,
        "can_call_and_text_with_customers": True,
        "can_chat_with_customers": True,
        "can_delete_and_cancel_job": office or admin,
        "can_edit_message_on_invoice": office,
        "can_see_street_view_data": True,
        "can_share_job": True,
        "can_take_payment_see_prices": True,
        "can_see_customers": True,
        "can_see_full_schedule": office or admin,
        "can_see_future_jobs": True,
        "can_see_marketing_campaigns": office,
        "can_see_reporting": admin,
        "can_edit_settings": admin,
        "is_point_of_contact": office,
        "is_admin": admin,
    }


def seed_company(time_zone: str) -> dict[str, Any]:
    """Return the seeded company (GET /company)."""
    return {
        "id": COMPANY_ID,
        "name": "Riverbend Plumbing & Air",
        "support_email": "office@riverbend-plumbing.example",
        "phone_number": "5125550142",
        "logo_url": AVATAR,
        "address": {
            "street": "2200 S Lamar Blvd",
            "street_line_2": "Suite 4",
            "city": "Austin",
            "state": "TX",
            "zip": "78704",
            "country": "US",
        },
        "website": "https://riverbend-plumbing.example",
        "default_arrival_window": "120",  # minutes; the definition types it as a string
        "time_zone": time_zone,
        # The ZIP codes of the seeded service zones (staff.py).
        "service_areas_data": {
            "zip_codes": ["78701", "78702", "78703", "78704", "78705", "78745", "78748", "78749"]
        },
        "locations": [],
    }


def seed_employees() -> list[dict[str, Any]]:
    """Return the seeded employees (GET /employees)."""
    start = datetime(2024, 1, 15, 15, 0, tzinfo=UTC)
    return [
        {
            "id": seed_id("pro", f"{first} {last}"),
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}@riverbend-plumbing.example",
            "mobile_number": f"51255501{60 + i:02d}",
            "color_hex": color,
            "avatar_url": AVATAR,
            "role": role,
            "created_at": iso(start + timedelta(days=i)),
            "tags": [],
            "permissions": _permissions(tech=role == "field tech", bookable=bookable, admin=admin),
            "company_name": "Riverbend Plumbing & Air",
            "company_id": COMPANY_ID,
        }
        for i, (first, last, role, bookable, admin, color) in enumerate(_EMPLOYEES)
    ]


def seed_locked(st: SandboxState) -> None:
    """Put the seeded company, employees, job types and lead sources in place (lock held)."""
    if not st.seed:
        # Only what GET /company cannot do without.
        st.company = {
            "id": COMPANY_ID,
            "name": "Sandbox Company",
            "default_arrival_window": "0",
            "time_zone": st.time_zone,
            "locations": [],
        }
        st.employees, st.job_types, st.lead_sources = [], [], []
        return
    st.company = seed_company(st.time_zone)
    st.employees = seed_employees()
    st.job_types = [{"id": seed_id("jt", n), "name": n} for n in st.job_type_names]
    st.lead_sources = [
        {"id": seed_id("ls", n), "name": n, "editable": n == "hcpform"} for n in LEAD_SOURCE_NAMES
    ]


def employee_locked(st: SandboxState, employee_id: str) -> dict[str, Any] | None:
    """Return a copy of an employee, or None (lock held)."""
    return next((dict(e) for e in st.employees if e["id"] == employee_id), None)


def lead_source_error(st: SandboxState, name: Any) -> Result | None:
    """Refuse a lead source name that does not exist, as HCP does (lock held)."""
    # JohnsonBros saw HCP reject POST /leads with "Lead source not found" for unknown names.
    if not st.require_known_lead_source or name in (None, ""):
        return None
    if str(name).lower() not in {s["name"].lower() for s in st.lead_sources}:
        return error(422, "Lead source not found")
    return None


def list_job_types(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /job_fields/job_types (the definition takes only `name`: one page holds all)."""
    with st.lock:
        name = (args.get("name") or "").lower()
        items = [dict(t) for t in st.job_types if name in t["name"].lower()]
    return 200, {
        "page": 1,
        "page_size": max(DEFAULT_PAGE_SIZE, len(items)),
        "total_pages": 1 if items else 0,
        "total_items": len(items),
        "job_types": items,
    }


def _create_named(
    records: list[dict[str, Any]], data: Mapping[str, Any], make: Any, created: int
) -> Result:
    """Create a job type or lead source: a non-blank name, unique regardless of case."""
    name = str((data or {}).get("name") or "").strip()
    if not name:
        return field_errors(422, {"name": ["can't be blank"]})
    if any(r["name"].lower() == name.lower() for r in records):
        return field_errors(422, {"name": ["has already been taken"]})
    record = make(name)
    records.append(record)
    return created, dict(record)


def create_job_type(st: SandboxState, data: Mapping[str, Any]) -> Result:
    """POST /job_fields/job_types (200, as documented)."""
    with st.lock:
        return _create_named(st.job_types, data, lambda n: {"id": new_id("jt"), "name": n}, 200)


def create_lead_source(st: SandboxState, data: Mapping[str, Any]) -> Result:
    """POST /lead_sources (201)."""
    with st.lock:
        return _create_named(
            st.lead_sources, data, lambda n: {"id": new_id("ls"), "name": n, "editable": True}, 201
        )


def list_employees(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /employees."""
    with st.lock:
        key = args.get("sort_by") or "created_at"
        items = sorted(
            st.employees,
            key=lambda e: str(e.get(key) or ""),
            reverse=(args.get("sort_direction") or "desc") != "asc",
        )
        page, envelope = paginate(items, args)
        envelope["employees"] = [dict(e) for e in page]
    return 200, envelope


def list_lead_sources(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /lead_sources."""
    with st.lock:
        q = (args.get("q") or "").lower()
        items = [dict(s) for s in st.lead_sources if q in s["name"].lower()]
    if (args.get("sort_direction") or "desc") != "asc":
        items.reverse()
    page, envelope = paginate(items, args)
    envelope["lead_sources"] = page
    return 200, envelope


# --------------------------------------------------------------------------- routes


@bp.get("/company")
def get_company() -> Response:
    st = state()
    with st.lock:
        return answer((200, copy.deepcopy(st.company)))


@bp.get("/job_fields/job_types")
def job_types_index() -> Response:
    return answer(list_job_types(state(), request.args))


@bp.post("/job_fields/job_types")
def job_types_create() -> Response:
    return answer(create_job_type(state(), body()))


@bp.get("/employees")
def employees_index() -> Response:
    return answer(list_employees(state(), request.args))


@bp.get("/lead_sources")
def lead_sources_index() -> Response:
    return answer(list_lead_sources(state(), request.args))


@bp.post("/lead_sources")
def lead_sources_create() -> Response:
    return answer(create_lead_source(state(), body()))

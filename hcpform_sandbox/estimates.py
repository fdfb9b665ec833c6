"""Estimates: create (for an existing customer), fetch, list with HCP's filters, and their JSON.

POST /estimates answers 200, as the definition documents. An estimate's `note` shows on each
of its options' `notes` (the Estimate schema has notes only there), so a caller can find an
estimate by a reference it wrote into the note: list the customer's estimates and read them.
A scheduled estimate takes its pros' time like a job (it counts in booking windows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from .customers import add_address_locked, address_json
from .jobs import filter_locked
from .reference import employee_locked, lead_source_error
from .util import (
    COMPANY_ID,
    Result,
    answer,
    body,
    error,
    field_errors,
    iso,
    new_id,
    paginate,
    parse_datetime,
    state,
    utcnow,
)
from .webhooks import emit

if TYPE_CHECKING:
    from werkzeug.datastructures import MultiDict

    from .state import SandboxState

bp = Blueprint("estimates", __name__)

# The Estimate schema's embedded customer (no addresses there).
CUSTOMER_FIELDS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "mobile_number",
    "home_number",
    "work_number",
    "company",
    "notifications_enabled",
    "lead_source",
    "notes",
    "created_at",
    "updated_at",
    "company_name",
    "company_id",
    "tags",
)


def estimate_json(st: SandboxState, estimate_id: str, expand: Iterable[str] = ()) -> dict[str, Any]:
    """Return an estimate as HCP shows it (lock held)."""
    est = st.estimates[estimate_id]
    customer = st.customers[est["customer_id"]]
    fields = {k: v for k, v in est["estimate_fields"].items() if v}
    options = [dict(o, notes=[dict(n) for n in o["notes"]]) for o in est["options"]]
    if "attachments" in expand:
        for option in options:
            option["attachments"] = []
    out = {
        "id": est["id"],
        "estimate_number": est["estimate_number"],
        "work_status": est["work_status"],
        "lead_source": est["lead_source"],
        "customer": {k: customer.get(k) for k in CUSTOMER_FIELDS},
        "created_at": est["created_at"],
        "updated_at": est["updated_at"],
        "company_name": st.company.get("name", ""),
        "company_id": COMPANY_ID,
        "work_timestamps": {"on_my_way_at": None, "started_at": None, "completed_at": None},
        "schedule": dict(est["schedule"], appointments=[]),
        "assigned_employees": [employee_locked(st, e) for e in est["assigned_employee_ids"]],
        "estimate_fields": fields,
        "options": options,
    }
    if est["address_id"]:
        out["address"] = address_json(st, est["address_id"])
    return out


def _schedule(
    st: SandboxState, raw: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """Turn EstimateCreate.schedule (start_time, end_time, minutes) into a stored schedule."""
    raw = raw or {}
    window = int(raw.get("arrival_window_in_minutes") or 0)
    if not raw.get("start_time"):
        if raw.get("end_time"):
            return None, {"schedule.start_time": ["is required with end_time"]}
        return {"scheduled_start": None, "scheduled_end": None, "arrival_window": window}, {}
    try:
        start = parse_datetime(str(raw["start_time"]), st.tz)
        end = (
            parse_datetime(str(raw["end_time"]), st.tz)
            if raw.get("end_time")
            else start + timedelta(hours=1)  # as for jobs: a one-hour visit
        )
    except ValueError as exc:
        return None, {"schedule": [f"invalid date: {exc}"]}
    if end <= start:
        return None, {"schedule.end_time": ["must be after start_time"]}
    return {"scheduled_start": iso(start), "scheduled_end": iso(end), "arrival_window": window}, {}


def _refused_locked(st: SandboxState, data: Mapping[str, Any]) -> Result | None:
    """Check what a new estimate refers to: customer, address, job type, pros, lead source."""
    customer_id = data.get("customer_id")
    if not customer_id:
        return field_errors(422, {"customer_id": ["is missing"]})
    if customer_id not in st.customers:
        return error(404, "customer not found")
    address_id = data.get("address_id")
    if address_id:
        if address_id not in st.addresses:
            return error(404, "address not found")
        if st.meta[address_id].owner != customer_id:
            return error(422, "address does not belong to the customer")
    job_type_id = (data.get("estimate_fields") or {}).get("job_type_id")
    if job_type_id and not any(t["id"] == job_type_id for t in st.job_types):
        return error(422, "job type not found")
    if (data.get("estimate_fields") or {}).get("business_unit_id"):
        return error(422, "business unit not found")  # the sandbox has none
    missing = [e for e in data.get("assigned_employee_ids") or [] if not employee_locked(st, e)]
    if missing:
        return error(422, f"employee not found: {', '.join(missing)}")
    return lead_source_error(st, data.get("lead_source"))


def _number_locked(st: SandboxState, given: Any) -> tuple[str | None, Result | None]:
    """Return the estimate number: the one given if unused, else the next one."""
    if given is None:
        st.estimate_number += 1
        return str(st.estimate_number), None
    number = int(given)
    if any(e["estimate_number"] == str(number) for e in st.estimates.values()):
        return None, field_errors(422, {"estimate_number": ["has already been taken"]})
    st.estimate_number = max(st.estimate_number, number)
    return str(number), None


def create(st: SandboxState, data: Mapping[str, Any]) -> Result:
    """POST /estimates (200) for an existing customer; options default to one."""
    with st.lock:
        if refused := _refused_locked(st, data):
            return refused
        schedule, errors = _schedule(st, data.get("schedule"))
        if errors or schedule is None:
            return field_errors(422, errors)
        number, refused = _number_locked(st, data.get("estimate_number"))
        if refused or number is None:
            return refused or error(422, "estimate number missing")
        customer_id = data["customer_id"]
        address_id = data.get("address_id")
        if not address_id and isinstance(data.get("address"), dict):
            address_id = add_address_locked(st, customer_id, data["address"])
        elif not address_id:
            owned = st.customer_addresses[customer_id]
            address_id = owned[0] if owned else None
        now = iso(utcnow())
        status = "scheduled" if schedule["scheduled_start"] else "needs scheduling"
        note = data.get("note")
        options = []
        for i, raw in enumerate(data.get("options") or [{"name": "Option #1"}], start=1):
            items = raw.get("line_items") or []
            options.append(
                {
                    "id": new_id("est"),
                    "name": raw.get("name") or f"Option #{i}",
                    "option_number": f"{number}-{i}",
                    "total_amount": sum(
                        round(float(x.get("unit_price") or 0) * float(x.get("quantity", 1)))
                        for x in items
                    ),
                    "approval_status": None,  # live HCP: null until sent
                    "message_from_pro": data.get("message") or "",
                    "tags": list(raw.get("tags") or []),
                    "status": status,
                    "notes": [{"id": new_id("nte"), "content": note}] if note else [],
                    "created_at": now,
                    "updated_at": now,
                }
            )
        estimate_id = new_id("csr")
        st.estimates[estimate_id] = {
            "id": estimate_id,
            "estimate_number": number,
            "work_status": status,
            "lead_source": data.get("lead_source"),
            "customer_id": customer_id,
            "address_id": address_id,
            "schedule": schedule,
            "assigned_employee_ids": list(data.get("assigned_employee_ids") or []),
            "estimate_fields": dict(data.get("estimate_fields") or {}),
            "options": options,
            "note": note,
            "created_at": now,
            "updated_at": now,
        }
        st.remember(estimate_id)
        return 200, estimate_json(st, estimate_id)


def get(st: SandboxState, estimate_id: str, expand: Iterable[str] = ()) -> Result:
    """GET /estimates/{estimate_id}."""
    with st.lock:
        if estimate_id not in st.estimates:
            return error(404, "estimate not found")
        return 200, estimate_json(st, estimate_id, expand)


def search(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /estimates with customer_id, work_status[], scheduled_* ranges and employee_ids[]."""
    with st.lock:
        ids = list(st.estimates)
        if args.get("customer_id"):
            ids = [i for i in ids if st.estimates[i]["customer_id"] == args["customer_id"]]
        ids, refused = filter_locked(st, st.estimates, ids, args)
        if refused:
            return refused
        ids = st.sorted_ids(ids, st.estimates, args.get("sort_by"), args.get("sort_direction"))
        page_ids, envelope = paginate(ids, args)
        expand = args.getlist("expand[]")
        envelope["estimates"] = [estimate_json(st, i, expand) for i in page_ids]
        return 200, envelope


@bp.post("/estimates")
def create_view() -> Response:
    result = create(state(), body() or {})
    if result[0] == 200:  # HCP fires webhooks for API changes too
        emit(state(), "estimate.created", "estimate", result[1])
    return answer(result)


@bp.get("/estimates")
def index() -> Response:
    return answer(search(state(), request.args))


@bp.get("/estimates/<estimate_id>")
def show(estimate_id: str) -> Response:
    return answer(get(state(), estimate_id, request.args.getlist("expand[]")))

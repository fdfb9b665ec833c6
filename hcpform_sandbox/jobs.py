"""Jobs: create (with schedule, line items, staff), fetch, list with HCP's filters, dispatch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from .customers import address_json, customer_embed
from .invoices import outstanding
from .reference import employee_locked, lead_source_error
from .schedule import BUSINESS_HOURS
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

bp = Blueprint("jobs", __name__)

# The work_status[] filter spells statuses differently from Job.work_status.
STATUS_FILTER = {
    "unscheduled": {"needs scheduling"},
    "scheduled": {"scheduled"},
    "in_progress": {"in progress"},
    "completed": {"complete rated", "complete unrated"},
    "canceled": {"user canceled", "pro canceled"},
}
RANGE_FILTERS = (
    ("scheduled_start_min", "scheduled_start", lambda v, b: v >= b),
    ("scheduled_start_max", "scheduled_start", lambda v, b: v <= b),
    ("scheduled_end_min", "scheduled_end", lambda v, b: v >= b),
    ("scheduled_end_max", "scheduled_end", lambda v, b: v <= b),
)


def job_json(st: SandboxState, job_id: str, expand: Iterable[str] = ()) -> dict[str, Any]:
    """Return a job as HCP shows it (lock held)."""
    job = st.jobs[job_id]
    job_type = next((dict(t) for t in st.job_types if t["id"] == job["job_type_id"]), None)
    schedule = dict(job["schedule"])
    schedule["appointments"] = (
        [dict(a) for a in job["appointments"]] if "appointments" in expand else []
    )
    staff = (employee_locked(st, i) for i in job["assigned_employee_ids"])
    out = {
        "id": job["id"],
        "invoice_number": job["invoice_number"],
        "description": job["description"],
        "customer": customer_embed(st, job["customer_id"]),
        "address": address_json(st, job["address_id"]),
        "notes": [dict(n) for n in job["notes"]],
        "work_status": job["work_status"],
        "work_timestamps": dict(
            job.get("work_timestamps")
            or {"on_my_way_at": None, "started_at": None, "completed_at": None}
        ),
        "schedule": schedule,
        "total_amount": job["total_amount"],
        "outstanding_balance": outstanding(st, job),
        "subtotal": job["total_amount"],
        "assigned_employees": [e for e in staff if e],
        "tags": list(job["tags"]),
        "original_estimate_id": None,
        "original_estimate_uuids": [],
        "lead_source": job["lead_source"],
        "job_fields": {"job_type": job_type, "business_unit": None},
        "locked_at": None,
        "created_at": job["created_at"],
        "updated_at": job["updated_at"],
        "canceled_at": job.get("canceled_at"),
        "deleted_at": None,
        "company_name": st.company.get("name", ""),
        "company_id": COMPANY_ID,
        "recurrence_number": None,
        "recurrence_rule": None,
    }
    if "attachments" in expand:
        out["attachments"] = [
            {k: a[k] for k in ("id", "file_name", "url", "file_type")}
            for a in job.get("attachments", [])
        ]
    return out


def _schedule(
    st: SandboxState, raw: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """Turn JobCreate.schedule into the stored schedule, in UTC."""
    empty = {"scheduled_start": None, "scheduled_end": None, "arrival_window": 0}
    if not raw:
        return empty, {}
    start = end = None
    try:
        if raw.get("anytime"):
            # An "anytime" job spans the business day of anytime_start_date.
            day = date.fromisoformat(str(raw.get("anytime_start_date")))
            open_h, close_h = BUSINESS_HOURS.get(day.weekday(), (8, 17))
            start = datetime(day.year, day.month, day.day, open_h, tzinfo=st.tz)
            end = datetime(day.year, day.month, day.day, close_h, tzinfo=st.tz)
        else:
            if raw.get("scheduled_start"):
                start = parse_datetime(raw["scheduled_start"], st.tz)
            if raw.get("scheduled_end"):
                end = parse_datetime(raw["scheduled_end"], st.tz)
    except ValueError as exc:
        return None, {"schedule": [f"invalid date: {exc}"]}
    if end is not None and start is None:
        return None, {"schedule.scheduled_start": ["is required with scheduled_end"]}
    window = int(raw.get("arrival_window") or 0)
    if start is None:
        return dict(empty, arrival_window=window), {}
    if end is None:
        end = start + timedelta(hours=1)  # sandbox choice: a one-hour visit
    if end <= start:
        return None, {"schedule.scheduled_end": ["must be after scheduled_start"]}
    return {"scheduled_start": iso(start), "scheduled_end": iso(end), "arrival_window": window}, {}


def _refused_locked(st: SandboxState, data: Mapping[str, Any]) -> Result | None:
    """Check what a new job refers to: customer, address, job type, staff, lead source."""
    customer_id, address_id = data.get("customer_id"), data.get("address_id")
    if customer_id not in st.customers:
        return error(404, "customer not found")
    if address_id not in st.addresses:
        return error(404, "address not found")
    if st.meta[address_id].owner != customer_id:
        return error(422, "address does not belong to the customer")
    fields = data.get("job_fields") or {}
    job_type_id = fields.get("job_type_id")
    if job_type_id and not any(t["id"] == job_type_id for t in st.job_types):
        return error(422, "job type not found")
    if fields.get("business_unit_id"):
        return error(422, "business unit not found")  # the sandbox has none
    missing = [e for e in data.get("assigned_employee_ids") or [] if not employee_locked(st, e)]
    if missing:
        return error(422, f"employee not found: {', '.join(missing)}")
    return lead_source_error(st, data.get("lead_source"))


def create(st: SandboxState, data: Mapping[str, Any]) -> Result:
    """POST /jobs (201); the customer and address must exist and belong together."""
    with st.lock:
        if refused := _refused_locked(st, data):
            return refused
        schedule, errors = _schedule(st, data.get("schedule"))
        if errors or schedule is None:
            return field_errors(422, errors)
        if data.get("invoice_number") is not None:
            number = int(data["invoice_number"])
            if any(j["invoice_number"] == str(number) for j in st.jobs.values()):
                return field_errors(422, {"invoice_number": ["has already been taken"]})
            st.invoice_number = max(st.invoice_number, number)
        else:
            st.invoice_number += 1
            number = st.invoice_number
        now = iso(utcnow())
        job_id = new_id("job")
        employee_ids = list(data.get("assigned_employee_ids") or [])
        items = [dict(i) for i in data.get("line_items") or []]
        appointments = []
        if schedule["scheduled_start"]:
            appointments.append(
                {
                    "id": new_id("appt"),
                    "start_date": schedule["scheduled_start"][:10],
                    "start_time": schedule["scheduled_start"],
                    "end_time": schedule["scheduled_end"],
                    "anytime": bool((data.get("schedule") or {}).get("anytime")),
                    "arrival_window_minutes": schedule["arrival_window"],
                    "dispatched_employees_ids": employee_ids,
                }
            )
        notes = data.get("notes")
        st.jobs[job_id] = {
            "id": job_id,
            "invoice_number": str(number),
            "description": "",
            "customer_id": data["customer_id"],
            "address_id": data["address_id"],
            "notes": [{"id": new_id("nte"), "content": notes}] if notes else [],
            "work_status": "scheduled" if schedule["scheduled_start"] else "needs scheduling",
            "schedule": schedule,
            "appointments": appointments,
            "total_amount": sum(
                round(float(i.get("unit_price") or 0) * float(i.get("quantity", 1))) for i in items
            ),
            "line_items": items,
            "assigned_employee_ids": employee_ids,
            "tags": list(data.get("tags") or []),
            "lead_source": data.get("lead_source"),
            "job_type_id": (data.get("job_fields") or {}).get("job_type_id"),
            "created_at": now,
            "updated_at": now,
            "attachments": [],
        }
        st.remember(job_id)
        return 201, job_json(st, job_id)


def get(st: SandboxState, job_id: str, expand: Iterable[str] = ()) -> Result:
    """GET /jobs/{id}."""
    with st.lock:
        if job_id not in st.jobs:
            return error(404, "job not found")
        return 200, job_json(st, job_id, expand)


def filter_locked(
    st: SandboxState,
    records: Mapping[str, Mapping[str, Any]],
    ids: list[str],
    args: MultiDict[str, str],
) -> tuple[list[str], Result | None]:
    """Apply the work_status[], scheduled_* range and employee_ids[] filters (lock held).

    Jobs and estimates share them. A range filter leaves out unscheduled records.
    """
    if args.getlist("work_status[]"):
        wanted = set().union(*(STATUS_FILTER.get(s, set()) for s in args.getlist("work_status[]")))
        ids = [i for i in ids if records[i]["work_status"] in wanted]
    for name, field_name, test in RANGE_FILTERS:
        if args.get(name):
            try:
                bound = parse_datetime(args[name], st.tz)
            except ValueError:
                return [], field_errors(422, {name: ["is not a valid date"]})
            ids = [
                i
                for i in ids
                if (when := records[i]["schedule"][field_name])
                and test(parse_datetime(when, st.tz), bound)
            ]
    if args.getlist("employee_ids[]"):
        staff = set(args.getlist("employee_ids[]"))
        ids = [i for i in ids if staff & set(records[i]["assigned_employee_ids"])]
    return ids, None


def dispatch(st: SandboxState, job_id: str, data: Mapping[str, Any]) -> Result:
    """PUT /jobs/{job_id}/dispatch: the job's pros become exactly the ones given (200)."""
    with st.lock:
        if job_id not in st.jobs:
            return error(404, "job not found")
        employee_ids = list(
            dict.fromkeys(d.get("employee_id") for d in data.get("dispatched_employees") or [])
        )
        missing = [str(e) for e in employee_ids if not employee_locked(st, str(e or ""))]
        if missing:
            return error(422, f"employee not found: {', '.join(missing)}")
        job = st.jobs[job_id]
        job["assigned_employee_ids"] = employee_ids
        for appointment in job["appointments"]:
            appointment["dispatched_employees_ids"] = list(employee_ids)
        job["updated_at"] = now = iso(utcnow())
        st.dispatches.append({"job_id": job_id, "employee_ids": employee_ids, "at": now})
        return 200, {"assigned_employees": [employee_locked(st, e) for e in employee_ids]}


def attach(st: SandboxState, job_id: str, parts: Mapping[str, Any] | None) -> Result:
    """POST /jobs/{job_id}/attachments (multipart `file`): 202 with the job's URL only.

    The sandbox keeps each file's name, type, size and SHA-256 (not its bytes), so tests see
    what arrived; GET /jobs/{id}?expand[]=attachments lists them as HCP's Attachment.
    """
    upload = ((parts or {}).get("files") or {}).get("file")
    with st.lock:
        if job_id not in st.jobs:
            return error(404, "job not found")
        if not upload or not upload["data"]:
            return field_errors(422, {"file": ["can't be blank"]})
        attachment_id = new_id("att")
        data: bytes = upload["data"]
        st.jobs[job_id].setdefault("attachments", []).append(
            {
                "id": attachment_id,
                "file_name": upload["filename"] or "upload",
                "file_type": upload["content_type"] or "application/octet-stream",
                "url": f"https://sandbox.housecallpro.invalid/attachments/{attachment_id}",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        st.jobs[job_id]["updated_at"] = iso(utcnow())
        return 202, {"job_url": f"https://sandbox.housecallpro.invalid/jobs/{job_id}"}


def attachments_of(st: SandboxState, job_id: str) -> list[dict[str, Any]]:
    """Return everything the sandbox kept about a job's attachments (lock held)."""
    return [dict(a) for a in st.jobs[job_id].get("attachments", [])]


def search(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /jobs with customer_id, work_status[], scheduled_start/end ranges and sorting."""
    with st.lock:
        ids = list(st.jobs)
        if args.get("customer_id"):
            ids = [j for j in ids if st.jobs[j]["customer_id"] == args["customer_id"]]
        ids, refused = filter_locked(st, st.jobs, ids, args)
        if refused:
            return refused
        sort_by = args.get("sort_by") or "created_at"
        if sort_by == "invoice_number":
            reverse = (args.get("sort_direction") or "desc") != "asc"
            ids.sort(
                key=lambda j: (int(st.jobs[j]["invoice_number"]), st.meta[j].seq), reverse=reverse
            )
        else:
            ids = st.sorted_ids(ids, st.jobs, sort_by, args.get("sort_direction"))
        page_ids, envelope = paginate(ids, args)
        expand = args.getlist("expand[]")
        envelope["jobs"] = [job_json(st, j, expand) for j in page_ids]
        return 200, envelope


# --------------------------------------------------------------------------- routes


@bp.post("/jobs")
def create_view() -> Response:
    result = create(state(), body())
    if result[0] == 201:  # HCP fires webhooks for API changes too
        emit(state(), "job.created", "job", result[1])
    return answer(result)


@bp.get("/jobs")
def index() -> Response:
    return answer(search(state(), request.args))


@bp.get("/jobs/<job_id>")
def show(job_id: str) -> Response:
    return answer(get(state(), job_id, request.args.getlist("expand[]")))


@bp.post("/jobs/<job_id>/attachments")
def attach_view(job_id: str) -> Response:
    return answer(attach(state(), job_id, request.environ.get("hcp_sandbox.parts")))


@bp.put("/jobs/<job_id>/dispatch")
def dispatch_view(job_id: str) -> Response:
    return answer(dispatch(state(), job_id, body() or {}))

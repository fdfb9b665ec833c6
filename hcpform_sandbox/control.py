"""The /_sandbox/ control endpoints: state, faults, reset, keys, request log (no key needed)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from .customers import address_json, customer_json
from .estimates import estimate_json
from .faults import FaultConfig
from .jobs import attachments_of, job_json
from .leads import lead_json
from .staff import hours_json, parse_hours
from .util import CONTROL_PREFIX, int_arg, json_response, state

if TYPE_CHECKING:
    from .state import SandboxState

bp = Blueprint("control", __name__, url_prefix=CONTROL_PREFIX)


def snapshot(st: SandboxState) -> dict[str, Any]:
    """Return counts and full lists, for GET /_sandbox/state."""
    with st.lock:
        addresses = [dict(address_json(st, a), customer_id=st.meta[a].owner) for a in st.addresses]
        return {
            "counts": {
                "customers": len(st.customers),
                "addresses": len(st.addresses),
                "jobs": len(st.jobs),
                "estimates": len(st.estimates),
                "leads": len(st.leads),
                "dispatches": len(st.dispatches),
                "requests": len(st.requests),
            },
            "customers": [customer_json(st, c) for c in st.customers],
            "addresses": addresses,
            "jobs": [
                dict(job_json(st, j, ("appointments",)), attachments=attachments_of(st, j))
                for j in st.jobs
            ],
            "estimates": [estimate_json(st, e) for e in st.estimates],
            # HCP's Lead shows no note; the sandbox's own view does, so tests can read it.
            "leads": [dict(lead_json(st, i), note=st.leads[i]["note"]) for i in st.leads],
            "dispatches": [dict(d, employee_ids=list(d["employee_ids"])) for d in st.dispatches],
            "company": copy.deepcopy(st.company),
            "job_types": [dict(t) for t in st.job_types],
            "employees": [dict(e) for e in st.employees],
            "schedule": _schedule_json(st),
            "service_zones": copy.deepcopy(st.service_zones),
            "lead_sources": [dict(s) for s in st.lead_sources],
            "faults": st.faults.to_json(),
            "valid_keys": sorted(st.api_keys),
        }


def _schedule_json(st: SandboxState) -> dict[str, Any]:
    """The online-booking settings: on or off, and each employee's working hours (lock held)."""
    return {
        "booking_windows": st.booking_windows_enabled,
        "working_hours": {i: hours_json(h) for i, h in st.working_hours.items()},
    }


def _json_object() -> dict[str, Any] | Response:
    """Return the request's JSON object ({} for no body), or a 400 response."""
    data = request.get_json(silent=True)
    if data is None and request.get_data().strip():
        return json_response(400, {"error": {"message": "the body must be JSON"}})
    if data is not None and not isinstance(data, dict):
        return json_response(400, {"error": {"message": "the body must be a JSON object"}})
    return data or {}


@bp.get("/state")
def get_state() -> Response:
    return json_response(200, snapshot(state()))


@bp.get("/schedule")
def get_schedule() -> Response:
    st = state()
    with st.lock:
        return json_response(200, _schedule_json(st))


@bp.post("/schedule")
def set_schedule() -> Response:
    """Turn booking windows on or off, and replace employees' working hours (400 on nonsense)."""
    data, st = _json_object(), state()
    if isinstance(data, Response):
        return data
    unknown = set(data) - {"booking_windows", "working_hours"}
    enabled = data.get("booking_windows", True)
    hours = data.get("working_hours") or {}
    try:
        if unknown:
            raise ValueError(f"unknown schedule settings: {sorted(unknown)}")
        if not isinstance(enabled, bool):
            raise ValueError("booking_windows must be true or false")
        if not isinstance(hours, dict):
            raise ValueError("working_hours must map employee ids to their hours")
        parsed = {employee_id: parse_hours(h) for employee_id, h in hours.items()}
    except ValueError as exc:
        return json_response(400, {"error": {"message": str(exc)}})
    with st.lock:
        known = {e["id"] for e in st.employees}
        if set(parsed) - known:
            message = f"unknown employees: {sorted(set(parsed) - known)}"
            return json_response(400, {"error": {"message": message}})
        if "booking_windows" in data:
            st.booking_windows_enabled = enabled
        st.working_hours.update(parsed)
        return json_response(200, _schedule_json(st))


@bp.get("/faults")
def get_faults() -> Response:
    st = state()
    with st.lock:
        return json_response(200, st.faults.to_json())


@bp.post("/faults")
def set_faults() -> Response:
    data, st = _json_object(), state()
    if isinstance(data, Response):
        return data
    with st.lock:
        try:
            st.faults.update(data)
        except (TypeError, ValueError) as exc:
            return json_response(400, {"error": {"message": str(exc)}})
        if "seed" in data:
            st.rng.seed(data["seed"])
        return json_response(200, st.faults.to_json())


@bp.delete("/faults")
def clear_faults() -> Response:
    st = state()
    with st.lock:
        st.faults = FaultConfig()
        return json_response(200, st.faults.to_json())


@bp.post("/reset")
def reset() -> Response:
    data, st = _json_object(), state()
    if isinstance(data, Response):
        return data
    st.reset(reseed=bool(data.get("reseed", True)))
    return json_response(200, snapshot(st)["counts"])


@bp.get("/keys")
def get_keys() -> Response:
    st = state()
    with st.lock:
        return json_response(200, {"valid": sorted(st.api_keys)})


@bp.post("/keys")
def set_keys() -> Response:
    data, st = _json_object(), state()
    if isinstance(data, Response):
        return data
    valid = data.get("valid")
    if not isinstance(valid, list) or not all(isinstance(k, str) for k in valid):
        return json_response(400, {"error": {"message": '{"valid": [...strings]} expected'}})
    with st.lock:
        st.api_keys = set(valid)
        return json_response(200, {"valid": sorted(st.api_keys)})


@bp.get("/requests")
def get_requests() -> Response:
    since = int_arg(request.args.get("since"), 0)
    method = (request.args.get("method") or "").upper()
    path = request.args.get("path")
    only_bad = request.args.get("violations") in ("1", "true")
    st = state()
    with st.lock:
        entries = [
            dict(e)
            for e in st.requests
            if e["seq"] > since
            and (not method or e["method"] == method)
            and (not path or path in (e["path"], e["template"]))
            and (not only_bad or e["violations"])
        ]
    return json_response(200, {"count": len(entries), "requests": entries})


@bp.delete("/requests")
def clear_requests() -> Response:
    st = state()
    with st.lock:
        st.requests.clear()
    return json_response(200, {"count": 0, "requests": []})

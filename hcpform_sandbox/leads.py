"""Leads: create (for a customer or an inline one), fetch, list, and their JSON.

A lead's `note` is kept but not shown: neither HCP's Lead schema nor a lead captured from a live
account has one. /_sandbox/state shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from . import customers
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
    state,
    utcnow,
)
from .webhooks import emit

if TYPE_CHECKING:
    from werkzeug.datastructures import MultiDict

    from .state import SandboxState

bp = Blueprint("leads", __name__)


def lead_json(st: SandboxState, lead_id: str) -> dict[str, Any]:
    """Return a lead as HCP shows it (lock held)."""
    lead = st.leads[lead_id]
    out = {
        "id": lead["id"],
        "number": lead["number"],
        "customer": dict(st.customers[lead["customer_id"]]),
        "lead_source": lead["lead_source"],
        "tags": list(lead["tags"]),
        "assigned_employee": employee_locked(st, lead["assigned_employee_id"] or ""),
        "status": "open",
        "pipeline_status": None,
        "company_name": st.company.get("name", ""),
        "company_id": COMPANY_ID,
        "lost_at": None,
        "total_amount": lead["total_amount"],
        "created_at": lead["created_at"],
        "updated_at": lead["updated_at"],
    }
    if lead["address_id"]:
        address = customers.address_json(st, lead["address_id"])
        keys = ("id", "street", "street_line_2", "city", "state", "zip")
        out["address"] = {k: address[k] for k in keys}
    return out


def _customer_locked(st: SandboxState, data: Mapping[str, Any]) -> tuple[str | None, Result | None]:
    """Return the lead's customer id (existing or created inline), or why there is none."""
    customer_id = data.get("customer_id")
    if customer_id:
        return (
            (customer_id, None)
            if customer_id in st.customers
            else (None, error(404, "customer not found"))
        )
    inline = data.get("customer")
    if not isinstance(inline, dict):
        return None, field_errors(422, {"customer": ["customer_id or customer is required"]})
    if err := lead_source_error(st, inline.get("lead_source")):
        return None, err
    status, created = customers.create_locked(st, inline)
    return (created["id"], None) if status == 201 else (None, (status, created))


def _address_locked(
    st: SandboxState, customer_id: str, data: Mapping[str, Any]
) -> tuple[str | None, Result | None]:
    """Return the lead's address id (given, created inline, or the customer's first)."""
    address_id = data.get("address_id")
    if address_id:
        meta = st.meta.get(address_id)
        if address_id not in st.addresses or meta is None:
            return None, error(404, "address not found")
        if meta.owner != customer_id:
            return None, error(422, "address does not belong to the customer")
        return address_id, None
    if isinstance(data.get("address"), dict):
        return customers.add_address_locked(st, customer_id, data["address"]), None
    owned = st.customer_addresses[customer_id]
    return (owned[0] if owned else None), None


def create(st: SandboxState, data: Mapping[str, Any]) -> Result:
    """POST /leads (201) with customer_id or an inline customer."""
    with st.lock:
        if err := lead_source_error(st, data.get("lead_source")):
            return err
        customer_id, refused = _customer_locked(st, data)
        if refused or customer_id is None:
            return refused or error(422, "customer missing")
        address_id, refused = _address_locked(st, customer_id, data)
        if refused:
            return refused
        employee_id = data.get("assigned_employee_id")
        if employee_id and employee_locked(st, employee_id) is None:
            return error(422, f"employee not found: {employee_id}")
        st.lead_number += 1
        now = iso(utcnow())
        lead_id = new_id("lea")
        st.leads[lead_id] = {
            "id": lead_id,
            "number": st.lead_number,
            "customer_id": customer_id,
            "address_id": address_id,
            "assigned_employee_id": employee_id,
            "lead_source": data.get("lead_source"),
            "tags": list(data.get("tags") or []),
            "note": data.get("note"),
            "total_amount": sum(
                int(i.get("unit_price") or 0) * int(i.get("quantity", 1))
                for i in data.get("line_items") or []
            ),
            "created_at": now,
            "updated_at": now,
        }
        st.remember(lead_id)
        return 201, lead_json(st, lead_id)


def get(st: SandboxState, lead_id: str) -> Result:
    """GET /leads/{id}."""
    with st.lock:
        if lead_id not in st.leads:
            return error(404, "lead not found")
        return 200, lead_json(st, lead_id)


def search(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /leads."""
    with st.lock:
        ids = list(st.leads)
        if args.get("customer_id"):
            ids = [i for i in ids if st.leads[i]["customer_id"] == args["customer_id"]]
        if args.get("status") and args["status"] != "open":
            ids = []  # sandbox leads stay open
        ids = st.sorted_ids(ids, st.leads, args.get("sort_by"), args.get("sort_direction"))
        page_ids, envelope = paginate(ids, args)
        envelope["leads"] = [lead_json(st, i) for i in page_ids]
        return 200, envelope


@bp.post("/leads")
def create_view() -> Response:
    result = create(state(), body())
    if result[0] == 201:  # HCP fires webhooks for API changes too
        emit(state(), "lead.created", "lead", result[1])
    return answer(result)


@bp.get("/leads")
def index() -> Response:
    return answer(search(state(), request.args))


@bp.get("/leads/<lead_id>")
def show(lead_id: str) -> Response:
    return answer(get(state(), lead_id))

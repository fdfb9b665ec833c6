"""Customers and their service addresses: create, update, search, list, and their JSON."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from .contract import CUSTOMER_CONTACT_FIELDS
from .reference import lead_source_error
from .util import (
    COMPANY_ID,
    Result,
    answer,
    body,
    digits,
    error,
    field_errors,
    iso,
    new_id,
    paginate,
    state,
    utcnow,
)

if TYPE_CHECKING:
    from werkzeug.datastructures import MultiDict

    from .state import SandboxState

bp = Blueprint("customers", __name__)

UPDATABLE = (
    "first_name",
    "last_name",
    "email",
    "company",
    "notifications_enabled",
    "mobile_number",
    "home_number",
    "work_number",
    "tags",
    "lead_source",
    "notes",
)


# --------------------------------------------------------------------------- JSON (lock held)


def address_json(st: SandboxState, address_id: str) -> dict[str, Any]:
    """Return an address as HCP shows it."""
    return dict(st.addresses[address_id])


def customer_json(st: SandboxState, customer_id: str, expand: Iterable[str] = ()) -> dict[str, Any]:
    """Return a customer with its addresses (and the expansions asked for)."""
    out = dict(st.customers[customer_id])
    out["addresses"] = [address_json(st, a) for a in st.customer_addresses[customer_id]]
    if "attachments" in expand:
        out["attachments"] = []
    if "do_not_service" in expand:
        out["do_not_service"] = False
    return out


def customer_embed(st: SandboxState, customer_id: str) -> dict[str, Any]:
    """Return the customer as embedded in a job (notes is a list there, or null)."""
    customer = dict(st.customers[customer_id])
    note = customer.get("notes")
    customer["notes"] = [{"id": st.meta[customer_id].note_id, "content": note}] if note else None
    return customer


# --------------------------------------------------------------------------- customers


def create(st: SandboxState, data: Mapping[str, Any]) -> Result:
    """POST /customers (201); inline addresses become service addresses."""
    with st.lock:
        if err := lead_source_error(st, data.get("lead_source")):
            return err
        return create_locked(st, data)


def create_locked(st: SandboxState, data: Mapping[str, Any]) -> Result:
    """Create a customer (lock held, or while the state is built)."""
    contact = [f for f in CUSTOMER_CONTACT_FIELDS if isinstance(data.get(f), str)]
    if not any(data[f].strip() for f in contact):
        names = ", ".join(CUSTOMER_CONTACT_FIELDS)
        return field_errors(422, {"base": [f"one of {names} is required"]})
    now = iso(utcnow())
    customer_id = new_id("cus")
    st.customers[customer_id] = {
        "id": customer_id,
        "first_name": data.get("first_name"),
        "last_name": data.get("last_name"),
        "email": data.get("email"),
        "mobile_number": data.get("mobile_number"),
        "home_number": data.get("home_number"),
        "work_number": data.get("work_number"),
        "company": data.get("company"),
        "notifications_enabled": bool(data.get("notifications_enabled", False)),
        "lead_source": data.get("lead_source"),
        "notes": data.get("notes") or None,
        "created_at": now,
        "updated_at": now,
        "company_name": st.company.get("name", ""),
        "company_id": COMPANY_ID,
        "tags": list(data.get("tags") or []),
    }
    st.remember(customer_id, note_id=new_id("nte"))
    st.customer_addresses[customer_id] = []
    for address in data.get("addresses") or []:
        add_address_locked(st, customer_id, address)
    return 201, customer_json(st, customer_id)


def update(st: SandboxState, customer_id: str, data: Mapping[str, Any]) -> Result:
    """PUT /customers/{customer_id}."""
    with st.lock:
        customer = st.customers.get(customer_id)
        if customer is None:
            return error(404, "customer not found")
        if "lead_source" in data and (err := lead_source_error(st, data["lead_source"])):
            return err
        customer.update({k: data[k] for k in UPDATABLE if k in data})
        customer["updated_at"] = iso(utcnow())
        return 200, customer_json(st, customer_id)


def get(st: SandboxState, customer_id: str, expand: Iterable[str] = ()) -> Result:
    """GET /customers/{customer_id}."""
    with st.lock:
        if customer_id not in st.customers:
            return error(404, "customer not found")
        return 200, customer_json(st, customer_id, expand)


def matches(st: SandboxState, customer_id: str, q: str) -> bool:
    """Return True when a customer matches a search (lock held)."""
    customer = st.customers[customer_id]
    parts = [customer.get(k) for k in ("first_name", "last_name", "email", "company")]
    for address_id in st.customer_addresses[customer_id]:
        a = st.addresses[address_id]
        parts += [a.get(k) for k in ("street", "street_line_2", "city", "state", "zip")]
    haystack = " ".join(str(p) for p in parts if p).lower()
    tokens = q.lower().split()
    if tokens and all(t in haystack for t in tokens):
        return True
    # Phone-like queries match on digits only, whatever the formatting on either side.
    if re.fullmatch(r"[\d\s()+.\-]+", q) and len(digits(q)) >= 3:
        wanted = digits(q)
        numbers = ("mobile_number", "home_number", "work_number")
        return any(wanted in digits(customer.get(n)) for n in numbers if customer.get(n))
    return False


def search(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /customers (q search, sorting, pagination)."""
    with st.lock:
        q = (args.get("q") or "").strip()
        ids = [c for c in st.customers if not q or matches(st, c, q)]
        ids = st.sorted_ids(ids, st.customers, args.get("sort_by"), args.get("sort_direction"))
        page_ids, envelope = paginate(ids, args)
        expand = args.getlist("expand[]")
        envelope["customers"] = [customer_json(st, c, expand) for c in page_ids]
        return 200, envelope


# --------------------------------------------------------------------------- addresses


def add_address_locked(st: SandboxState, customer_id: str, data: Mapping[str, Any]) -> str:
    """Add a service address to a customer; return its id (lock held)."""
    address_id = new_id("adr")
    st.addresses[address_id] = {
        "id": address_id,
        "type": "service",
        **{k: data.get(k) for k in ("street", "street_line_2", "city", "state", "zip", "country")},
    }
    for key in ("latitude", "longitude"):
        if data.get(key) is not None:
            st.addresses[address_id][key] = data[key]
    st.remember(address_id, owner=customer_id)
    st.customer_addresses[customer_id].append(address_id)
    return address_id


def create_address(st: SandboxState, customer_id: str, data: Mapping[str, Any]) -> Result:
    """POST /customers/{customer_id}/addresses (200, as documented)."""
    with st.lock:
        if customer_id not in st.customers:
            return error(404, "customer not found")
        return 200, address_json(st, add_address_locked(st, customer_id, data))


def list_addresses(st: SandboxState, customer_id: str, args: MultiDict[str, str]) -> Result:
    """GET /customers/{customer_id}/addresses."""
    with st.lock:
        if customer_id not in st.customers:
            return error(404, "customer not found")
        ids = list(st.customer_addresses[customer_id])
        # Addresses carry no timestamps: creation order stands in for created/updated_at.
        newest_first = args.get("sort_direction", "desc") != "asc"
        ids.sort(key=lambda a: st.meta[a].seq, reverse=newest_first)
        page_ids, envelope = paginate(ids, args)
        envelope["addresses"] = [address_json(st, a) for a in page_ids]
        return 200, envelope


def get_address(st: SandboxState, customer_id: str, address_id: str) -> Result:
    """GET /customers/{customer_id}/addresses/{address_id}."""
    with st.lock:
        if customer_id not in st.customers:
            return error(404, "customer not found")
        meta = st.meta.get(address_id)
        if address_id not in st.addresses or meta is None or meta.owner != customer_id:
            return error(404, "address not found")
        return 200, address_json(st, address_id)


# --------------------------------------------------------------------------- routes


@bp.get("/customers")
def index() -> Response:
    return answer(search(state(), request.args))


@bp.post("/customers")
def create_view() -> Response:
    return answer(create(state(), body()))


@bp.get("/customers/<customer_id>")
def show(customer_id: str) -> Response:
    return answer(get(state(), customer_id, request.args.getlist("expand[]")))


@bp.put("/customers/<customer_id>")
def update_view(customer_id: str) -> Response:
    return answer(update(state(), customer_id, body() or {}))


@bp.get("/customers/<customer_id>/addresses")
def addresses_index(customer_id: str) -> Response:
    return answer(list_addresses(state(), customer_id, request.args))


@bp.post("/customers/<customer_id>/addresses")
def addresses_create(customer_id: str) -> Response:
    return answer(create_address(state(), customer_id, body()))


@bp.get("/customers/<customer_id>/addresses/<address_id>")
def addresses_show(customer_id: str, address_id: str) -> Response:
    return answer(get_address(state(), customer_id, address_id))

"""Invoices and payments on jobs: GET /jobs/{job_id}/invoices, and the job's balance.

HCP's API creates no invoice; the sandbox makes them through its control endpoints
(webhooks.py: POST /_sandbox/jobs/{id}/invoices, POST /_sandbox/invoices/{id}/pay).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

from .util import Result, answer, error, iso, new_id, state, utcnow

if TYPE_CHECKING:
    from .state import SandboxState

bp = Blueprint("invoices", __name__)


def invoice_json(st: SandboxState, invoice_id: str) -> dict[str, Any]:
    """Return an invoice as HCP's JobInvoice shows it, plus its job_id (lock held)."""
    inv = st.invoices[invoice_id]
    out = {
        "id": inv["id"],
        "job_id": inv["job_id"],
        "status": inv["status"],
        "invoice_number": inv["invoice_number"],
        "amount": inv["amount"],
        "subtotal": inv["amount"],
        "due_amount": inv["due_amount"],
        "due_at": inv["due_at"],
        "display_due_concept": "Upon receipt",
        "due_concept": "upon_receipt",
        "paid_at": inv["paid_at"],
        "sent_at": inv["sent_at"],
        "service_date": inv["service_date"],
        "invoice_date": inv["invoice_date"],
        "items": [],
        "taxes": [],
        "discounts": [],
        "payments": [dict(p) for p in inv["payments"]],
    }
    if out["paid_at"] is None:  # the definition types paid_at as a string: left out until paid
        del out["paid_at"]
    return out


def job_invoice_ids(st: SandboxState, job_id: str) -> list[str]:
    """Return a job's invoices, oldest first (lock held)."""
    return [i for i, inv in st.invoices.items() if inv["job_id"] == job_id]


def outstanding(st: SandboxState, job: dict[str, Any]) -> int:
    """Return what the customer still owes on a job: its invoices' dues, else its total."""
    ids = [i for i in job_invoice_ids(st, job["id"]) if st.invoices[i]["status"] != "voided"]
    if not ids:
        return int(job["total_amount"])
    return sum(int(st.invoices[i]["due_amount"]) for i in ids)


def create_locked(st: SandboxState, job_id: str, amount: int) -> Result:
    """Invoice a job for `amount` cents (lock held)."""
    if job_id not in st.jobs:
        return error(404, "job not found")
    if amount <= 0:
        return error(422, "amount must be a positive number of cents")
    now = utcnow()
    job = st.jobs[job_id]
    invoice_id = new_id("inv")
    number = f"{job['invoice_number']}-{len(job_invoice_ids(st, job_id)) + 1}"
    st.invoices[invoice_id] = {
        "id": invoice_id,
        "job_id": job_id,
        "status": "open",
        "invoice_number": number,
        "amount": amount,
        "due_amount": amount,
        "due_at": iso(now + timedelta(days=14)),
        "paid_at": None,
        "sent_at": iso(now),
        "service_date": iso(now),
        "invoice_date": iso(now),
        "payments": [],
    }
    invoiced = sum(int(st.invoices[i]["amount"]) for i in job_invoice_ids(st, job_id))
    job["total_amount"] = max(int(job["total_amount"]), invoiced)
    job["updated_at"] = iso(now)
    return 201, invoice_json(st, invoice_id)


def pay_locked(st: SandboxState, invoice_id: str, amount: int | None) -> Result:
    """Record a payment on an invoice (the whole due amount by default) (lock held)."""
    inv = st.invoices.get(invoice_id)
    if inv is None:
        return error(404, "invoice not found")
    amount = int(inv["due_amount"]) if amount is None else amount
    if amount <= 0 or amount > int(inv["due_amount"]):
        return error(422, "amount must be between 1 cent and the amount due")
    now = iso(utcnow())
    inv["payments"].append(
        {
            "id": new_id("pmt"),
            "status": "succeeded",
            "payment_method": "credit_card",
            "amount": amount,
            "note": "",
            "paid_at": now,
            "category": "payment",
        }
    )
    inv["due_amount"] = int(inv["due_amount"]) - amount
    if inv["due_amount"] == 0:
        inv["status"], inv["paid_at"] = "paid", now
    else:
        inv["status"] = "pending_payment"
    st.jobs[inv["job_id"]]["updated_at"] = now
    return 200, invoice_json(st, invoice_id)


@bp.get("/jobs/<job_id>/invoices")
def job_invoices(job_id: str) -> Response:
    """GET /jobs/{job_id}/invoices."""
    st = state()
    with st.lock:
        if job_id not in st.jobs:
            return answer(error(404, "job not found"))
        return answer(
            (200, {"invoices": [invoice_json(st, i) for i in job_invoice_ids(st, job_id)]})
        )

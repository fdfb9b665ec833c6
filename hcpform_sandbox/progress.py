"""What happens to a job after it is booked, driven by control endpoints (HCP's API has none):
start, complete or cancel it, invoice it, take a payment. Each change sends the webhooks HCP
sends (webhooks.py).

- `POST /_sandbox/jobs/{id}/start` → job.started; `/complete` → job.completed;
  `/cancel` → job.canceled (each with the full job).
- `POST /_sandbox/jobs/{id}/invoices {"amount": cents}` → invoice.created.
- `POST /_sandbox/invoices/{id}/pay {"amount": cents}` (default: all that is due) →
  invoice.payment.succeeded, and when nothing is left due, invoice.paid and job.paid.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from . import invoices
from .jobs import job_json
from .util import CONTROL_PREFIX, Result, answer, error, iso, state, utcnow
from .webhooks import emit

bp = Blueprint("progress", __name__, url_prefix=CONTROL_PREFIX)

ACTIONS = {
    "start": ("in progress", "started_at", "job.started"),
    "complete": ("complete unrated", "completed_at", "job.completed"),
    "cancel": ("pro canceled", None, "job.canceled"),
}


def _amount(data: Any, required: bool) -> int | None | Response:
    """Read {"amount": cents} from a request body, or answer 400."""
    value = data.get("amount") if isinstance(data, dict) else None
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return answer(error(400, '{"amount": <whole cents>} expected'))
    return value


@bp.post("/jobs/<job_id>/<action>")
def change_job(job_id: str, action: str) -> Response:
    """Start, complete or cancel a job, and send its webhook."""
    if action not in ACTIONS:
        return answer(error(404, f"unknown action {action!r}: start, complete or cancel"))
    work_status, stamp, event = ACTIONS[action]
    st = state()
    with st.lock:
        job = st.jobs.get(job_id)
        if job is None:
            return answer(error(404, "job not found"))
        now = iso(utcnow())
        job["work_status"] = work_status
        stamps = dict(
            job.get("work_timestamps")
            or {"on_my_way_at": None, "started_at": None, "completed_at": None}
        )
        if stamp:
            stamps[stamp] = now
        job["work_timestamps"] = stamps
        if action == "cancel":
            job["canceled_at"] = now
        job["updated_at"] = now
        record = job_json(st, job_id)
    emit(st, event, "job", record)
    return answer((200, record))


@bp.post("/jobs/<job_id>/invoices")
def invoice_job(job_id: str) -> Response:
    """Invoice a job for {"amount": cents}; sends invoice.created."""
    amount = _amount(request.get_json(silent=True), required=True)
    if isinstance(amount, Response):
        return amount
    st = state()
    with st.lock:
        result: Result = invoices.create_locked(st, job_id, int(amount or 0))
    if result[0] == 201:
        emit(st, "invoice.created", "invoice", result[1])
    return answer(result)


@bp.post("/invoices/<invoice_id>/pay")
def pay_invoice(invoice_id: str) -> Response:
    """Take a payment; sends invoice.payment.succeeded (and invoice.paid, job.paid when paid)."""
    amount = _amount(request.get_json(silent=True), required=False)
    if isinstance(amount, Response):
        return amount
    st = state()
    with st.lock:
        result = invoices.pay_locked(st, invoice_id, amount)
        job = None
        if result[0] == 200 and result[1]["due_amount"] == 0:
            job = job_json(st, result[1]["job_id"])
    if result[0] == 200:
        emit(st, "invoice.payment.succeeded", "invoice", result[1])
        if job is not None:
            emit(st, "invoice.paid", "invoice", result[1])
            emit(st, "job.paid", "job", job)
    return answer(result)

"""Webhooks as HCP sends them: one signed POST per event to the registered URL.

Register an endpoint with `POST /_sandbox/webhooks {"url": …, "secret": …}`: like HCP, the
sandbox first POSTs the unsigned `{"foo":"bar"}` handshake and needs a 2xx. Then every change
(a job, estimate or lead created through the API; a job started, completed or canceled, an
invoice created or paid through the control endpoints of progress.py) sends the envelope
`{"event", "event_occurred_at", "company_id", <resource>: {full record}}` with `Api-Timestamp`
and `Api-Signature` = hex HMAC-SHA256(secret, "{timestamp}.{body}"). Each record is checked
against housecall.v1.yaml (the GET response schema of its resource); violations are logged
with the delivery. Deliveries go out in order from one sender thread, retried on 5xx, 429 and
dropped connections; `hold` keeps them back so a test can release them in reverse order, and
`redeliver` sends one again byte for byte (HCP delivers at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests
from flask import Blueprint, Response, request

from .contract import contract
from .util import COMPANY_ID, CONTROL_PREFIX, json_response, state

if TYPE_CHECKING:
    from .state import SandboxState

bp = Blueprint("webhooks", __name__, url_prefix=CONTROL_PREFIX)

ATTEMPTS = 3
TIMEOUT = 5.0
LOG_SIZE = 1000


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return HCP's signature of a body at a timestamp."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _occurred_now() -> str:
    """Return now as HCP's event_occurred_at: UTC, milliseconds, `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def violations_of(resource: str, record: Mapping[str, Any]) -> list[str]:
    """Check a record against the definition's GET response for its resource."""
    record_id = str(record.get("id") or "x")
    if resource == "job":
        return contract().check_response("GET", f"/jobs/{record_id}", 200, record)
    if resource == "invoice":
        path = f"/jobs/{record.get('job_id') or 'x'}/invoices"
        return contract().check_response("GET", path, 200, {"invoices": [record]})
    if resource == "estimate":
        return contract().check_response("GET", f"/estimates/{record_id}", 200, record)
    if resource == "lead":
        return contract().check_response("GET", f"/leads/{record_id}", 200, record)
    return []  # no schema in the definition for this record


def emit(st: SandboxState, event: str, resource: str, record: Mapping[str, Any]) -> None:
    """Send one event about a record to the registered URL, if any (lock not held)."""
    with st.lock:
        if st.webhook is None:
            return
        envelope = {
            "event": event,
            "event_occurred_at": _occurred_now(),
            "company_id": COMPANY_ID,
            resource: dict(record),
        }
        entry: dict[str, Any] = {
            "seq": st.webhook_log[-1]["seq"] + 1 if st.webhook_log else 1,
            "event": event,
            "record_id": record.get("id"),
            "body": json.dumps(envelope),
            "violations": violations_of(resource, record),
            "status": None,
            "attempts": 0,
            "error": "",
            "timestamp": None,
            "signature": None,
        }
        st.webhook_log.append(entry)
        del st.webhook_log[:-LOG_SIZE]
        if st.webhook.get("hold"):
            st.webhook_held.append(entry)
            return
    _sender(st).put((entry, False))


def _sender(st: SandboxState) -> queue.Queue[tuple[dict[str, Any], bool]]:
    """Return the state's delivery queue, starting its sender thread on first use."""
    with st.lock:
        if st.webhook_sender is None:
            outbox: queue.Queue[tuple[dict[str, Any], bool]] = queue.Queue()
            thread = threading.Thread(
                target=_send_forever, args=(st, outbox), name="hcp-sandbox-webhooks", daemon=True
            )
            st.webhook_sender = outbox
            thread.start()
        sender: queue.Queue[tuple[dict[str, Any], bool]] = st.webhook_sender
        return sender


def _send_forever(st: SandboxState, outbox: queue.Queue[tuple[dict[str, Any], bool]]) -> None:
    """Deliver queued events one by one, in order."""
    while True:
        entry, exact = outbox.get()
        try:
            deliver(st, entry, exact=exact)
        except Exception as exc:  # a sender that dies would stop every later delivery
            entry["error"] = f"{exc.__class__.__name__}: {exc}"


def deliver(st: SandboxState, entry: dict[str, Any], *, exact: bool = False) -> None:
    """POST one delivery, signed now (or byte for byte as first sent, when `exact`)."""
    with st.lock:
        config = dict(st.webhook or {})
    if not config.get("url"):
        entry["error"] = "no webhook URL registered"
        return
    body = entry["body"].encode()
    if not (exact and entry["timestamp"]):
        entry["timestamp"] = str(int(time.time()))
        entry["signature"] = sign(str(config["secret"]), entry["timestamp"], body)
    headers = {
        "Content-Type": "application/json",
        "Api-Timestamp": entry["timestamp"],
        "Api-Signature": entry["signature"],
    }
    for attempt in range(ATTEMPTS):
        entry["attempts"] += 1
        try:
            answer = requests.post(config["url"], data=body, headers=headers, timeout=TIMEOUT)
            entry["status"], entry["error"] = answer.status_code, ""
            if answer.status_code < 500 and answer.status_code != 429:
                return
        except requests.RequestException as exc:
            entry["status"], entry["error"] = None, exc.__class__.__name__
        time.sleep(0.2 * 2**attempt)


def _public(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "signature"}


def _config_json(st: SandboxState) -> dict[str, Any]:
    """The registration (never the secret) and the deliveries (lock held)."""
    hook = st.webhook or {}
    return {
        "registered": st.webhook is not None,
        "url": hook.get("url"),
        "hold": bool(hook.get("hold")),
        "held": len(st.webhook_held),
        "deliveries": [_public(e) for e in st.webhook_log],
    }


@bp.get("/webhooks")
def get_webhooks() -> Response:
    """The registered URL and every delivery (event, status, attempts, violations, body)."""
    st = state()
    with st.lock:
        return json_response(200, _config_json(st))


@bp.post("/webhooks")
def register() -> Response:
    """Register {"url", "secret", "hold"?, "validate"?}: validated by HCP's handshake first."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not data.get("url") or not data.get("secret"):
        return json_response(400, {"error": {"message": '{"url": …, "secret": …} expected'}})
    url, secret = str(data["url"]), str(data["secret"])
    if data.get("validate", True):
        try:
            answer = requests.post(url, json={"foo": "bar"}, timeout=TIMEOUT)
            status: int | None = answer.status_code
        except requests.RequestException:
            status = None
        if status is None or not 200 <= status < 300:
            message = f"URL validation failed: the endpoint answered {status or 'nothing'}"
            return json_response(422, {"error": {"message": message}})
    st = state()
    with st.lock:
        st.webhook = {"url": url, "secret": secret, "hold": bool(data.get("hold"))}
        return json_response(200, _config_json(st))


@bp.delete("/webhooks")
def unregister() -> Response:
    """Stop sending webhooks (the delivery log stays)."""
    st = state()
    with st.lock:
        st.webhook = None
        st.webhook_held.clear()
        return json_response(200, _config_json(st))


@bp.post("/webhooks/release")
def release() -> Response:
    """Send the held deliveries ({"order": "reverse"} sends the newest first) and stop holding."""
    data = request.get_json(silent=True) or {}
    st = state()
    with st.lock:
        held = list(st.webhook_held)
        st.webhook_held.clear()
        if st.webhook is not None:
            st.webhook["hold"] = False
    if isinstance(data, dict) and data.get("order") == "reverse":
        held.reverse()
    outbox = _sender(st)
    for entry in held:
        outbox.put((entry, False))
    return json_response(200, {"released": len(held)})


@bp.post("/webhooks/redeliver")
def redeliver() -> Response:
    """Send delivery {"seq": n} again: the same bytes and headers ({"exact": false} re-signs)."""
    data = request.get_json(silent=True) or {}
    seq = data.get("seq") if isinstance(data, dict) else None
    st = state()
    with st.lock:
        entry = next((e for e in st.webhook_log if e["seq"] == seq), None)
    if entry is None:
        return json_response(404, {"error": {"message": "no such delivery"}})
    _sender(st).put((entry, bool(data.get("exact", True))))
    return json_response(200, {"redelivered": seq})

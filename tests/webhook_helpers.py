"""Helpers of the webhook tests: HCP's signature computed here on its own (not with our code),
records made in the sandbox over HTTP, the app served over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import requests
from werkzeug.serving import make_server

from hcpform.extensions import db
from hcpform.models import Status, Submission, WebhookEvent
from hcpform.timeutil import utcnow
from tests.factories import make_submission
from tests.helpers import seed_customer

SECRET = "whsec_test_0123456789abcdef"
API = {"Authorization": "Token sandbox-key"}


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Return HCP's headers for a body: Api-Timestamp and the hex HMAC-SHA256 signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Api-Timestamp": ts, "Api-Signature": digest, "Content-Type": "application/json"}


def envelope(event: str, record: dict[str, Any], occurred: str, resource: str = "") -> bytes:
    """Return one delivery's body as HCP sends it."""
    key = resource or event.split(".", 1)[0]
    data = {"event": event, "event_occurred_at": occurred, "company_id": "co_1", key: record}
    return json.dumps(data).encode()


def sandbox_job(sandbox: Any, **job: Any) -> str:
    """Create a customer, an address and a job in the sandbox over HTTP; return the job id."""
    customer_id = seed_customer(sandbox)
    addresses = requests.get(
        f"{sandbox.url}/customers/{customer_id}/addresses", headers=API, timeout=5
    ).json()["addresses"]
    response = requests.post(
        f"{sandbox.url}/jobs",
        json={"customer_id": customer_id, "address_id": addresses[0]["id"], **job},
        headers=API,
        timeout=5,
    )
    response.raise_for_status()
    return str(response.json()["id"])


def synced_submission(app: Any, job_id: str, *, synced_minutes_ago: float = 0) -> int:
    """Add a submission synced to this HCP job; return its id."""
    with app.app_context():
        sub = make_submission(
            status=Status.SYNCED,
            hcp_customer_id="cus_x",
            hcp_job_id=job_id,
            synced_at=utcnow() - timedelta(minutes=synced_minutes_ago),
        )
        db.session.commit()
        return int(sub.id)


def submission(app: Any, sub_id: int) -> Submission:
    """Return a fresh, detached copy of a submission."""
    with app.app_context():
        sub = db.session.get(Submission, sub_id)
        assert sub is not None
        db.session.expunge(sub)
        return sub


def events(app: Any) -> list[WebhookEvent]:
    """Return every stored event (detached)."""
    with app.app_context():
        rows = list(db.session.scalars(db.select(WebhookEvent).order_by(WebhookEvent.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve the app over real HTTP on a free port; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def deliveries(sandbox: Any) -> list[dict[str, Any]]:
    """Return the sandbox's webhook deliveries."""
    return list(requests.get(f"{sandbox.url}/_sandbox/webhooks", timeout=5).json()["deliveries"])

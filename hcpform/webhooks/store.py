"""Receive one delivery: the handshake, the signature check, and storing the event once.

Nothing here applies an event: the view stores it, commits, and enqueues the apply job, so
HCP gets its answer within a few milliseconds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import Headers

from ..connection import connection_row
from ..extensions import db
from ..hcp.payloads import parse_time
from ..models import WebhookEvent
from . import secret, signing

logger = logging.getLogger(__name__)

RESOURCES = ("job", "estimate", "lead", "invoice", "customer", "appointment")


@dataclass
class Received:
    """What became of one delivery: its outcome and the stored event's id."""

    outcome: str  # handshake | refused | malformed | stored | duplicate
    event_id: int | None = None


def resource_of(event: str) -> str:
    """Return the key the record sits under: the event's prefix (`job.appointment.*` →
    appointment)."""
    if event.startswith("job.appointment."):
        return "appointment"
    prefix = event.split(".", 1)[0]
    return prefix if prefix in RESOURCES else prefix[:32]


def receive(body: bytes, headers: Headers, *, now: datetime) -> Received:
    """Check one delivery and store it once; the caller commits (flushes only here)."""
    if signing.is_handshake(body):
        return Received("handshake")
    conn = connection_row()
    timestamp = headers.get("Api-Timestamp")
    ok = signing.verify(
        secret.in_force(conn, now=now),
        timestamp,
        headers.get("Api-Signature"),
        body,
        now=now.timestamp(),
        tolerance=float(current_app.config["WEBHOOK_TOLERANCE_SECONDS"]),
    )
    if not ok or timestamp is None:
        return Received("refused")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        return Received("malformed")
    secret.mark_verified(conn.id, now=now)
    key = signing.dedupe_key(timestamp, body)
    found = db.session.scalar(select(WebhookEvent.id).where(WebhookEvent.dedupe_key == key))
    if found is not None:
        return Received("duplicate", found)
    event = _event_row(data, key, body, now=now)
    try:
        with db.session.begin_nested():
            db.session.add(event)
    except IntegrityError:  # the same delivery, stored by another process a moment ago
        found = db.session.scalar(select(WebhookEvent.id).where(WebhookEvent.dedupe_key == key))
        return Received("duplicate", found)
    return Received("stored", event.id)


def _event_row(data: dict[str, Any], key: str, body: bytes, *, now: datetime) -> WebhookEvent:
    """Build the row of one event from its envelope."""
    name = str(data["event"])[:100]
    resource = resource_of(name)
    record = data.get(resource)
    record_id = str(record.get("id") or "") if isinstance(record, dict) else ""
    return WebhookEvent(
        dedupe_key=key,
        event=name,
        resource=resource,
        record_id=record_id[:64],
        occurred_at=parse_time(data.get("event_occurred_at")),
        received_at=now,
        state="received",
        body=body.decode("utf-8", errors="replace"),
    )

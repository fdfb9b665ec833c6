"""What the Housecall Pro page shows about webhooks: the URL to paste, the secret's state
(never the secret), the last verified delivery and the stored events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import url_for
from sqlalchemy import func, select

from ..extensions import db
from ..models import HcpConnection, WebhookEvent
from ..timeutil import utcnow
from ..webhooks import secret
from ..webhooks.reconcile import webhooks_live


@dataclass
class WebhookPanel:
    """The webhook section's figures."""

    url: str
    source: str  # environment | stored | none
    set_at: datetime | None
    previous_until: datetime | None
    last_verified_at: datetime | None
    live: bool  # webhooks set up: the reconcile stands by
    events: dict[str, int] = field(default_factory=dict)  # state -> count (kept 30 days)


def panel(conn: HcpConnection) -> WebhookPanel:
    """Return the webhook section of the Housecall Pro page."""
    now = utcnow()
    until = conn.webhook_previous_until
    counts = db.session.execute(
        select(WebhookEvent.state, func.count()).group_by(WebhookEvent.state)
    ).all()
    return WebhookPanel(
        url=url_for("hooks.receive", _external=True),
        source=secret.source(conn),
        set_at=conn.webhook_secret_set_at,
        previous_until=until if until is not None and until > now else None,
        last_verified_at=conn.webhook_last_verified_at,
        live=webhooks_live(conn),
        events={str(state): int(count) for state, count in counts},
    )

"""HCP's webhook signing secret: write-only, encrypted like the API key, rotated gently.

`HCP_WEBHOOK_SECRET` in the environment overrides the stored secret. After a new secret is
stored, the previous one is still accepted for WEBHOOK_PREVIOUS_SECRET_HOURS (HCP may still be
sending with it). The secret is never logged, rendered or returned to a page.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, update

from .. import crypto
from ..extensions import db
from ..models import HcpConnection

logger = logging.getLogger(__name__)


def _bound(conn: HcpConnection, which: str) -> str:
    return f"hcp_connection:{conn.id}:{which}"


def source(conn: HcpConnection) -> str:
    """Return where the secret in force comes from: environment, stored or none."""
    if current_app.config.get("HCP_WEBHOOK_SECRET"):
        return "environment"
    return "stored" if conn.webhook_secret_encrypted else "none"


def _open(token: str | None, bound_to: str) -> str | None:
    if not token:
        return None
    try:
        return crypto.decrypt(token, bound_to=bound_to)
    except crypto.SecretError:
        logger.error("A stored webhook signing secret cannot be decrypted; enter it again")
        return None


def in_force(conn: HcpConnection, *, now: datetime) -> list[str]:
    """Return the secrets a delivery may be signed with (the previous one for 24 h)."""
    if source(conn) == "environment":
        return [str(current_app.config["HCP_WEBHOOK_SECRET"])]
    found = [_open(conn.webhook_secret_encrypted, _bound(conn, "webhook"))]
    until = conn.webhook_previous_until
    if until is not None and now < until:
        found.append(_open(conn.webhook_previous_encrypted, _bound(conn, "webhook-previous")))
    return [s for s in found if s]


def save(conn: HcpConnection, value: str, *, now: datetime) -> bool:
    """Store a new secret; keep the current one as the previous for a while. Return True
    when there was one to keep (a rotation). The caller commits."""
    current = _open(conn.webhook_secret_encrypted, _bound(conn, "webhook"))
    rotated = bool(current) and current != value
    if rotated and current:
        hours = float(current_app.config["WEBHOOK_PREVIOUS_SECRET_HOURS"])
        conn.webhook_previous_encrypted = crypto.encrypt(
            current, bound_to=_bound(conn, "webhook-previous")
        )
        conn.webhook_previous_until = now + timedelta(hours=hours)
    conn.webhook_secret_encrypted = crypto.encrypt(value, bound_to=_bound(conn, "webhook"))
    conn.webhook_secret_set_at = now
    db.session.flush()
    return rotated


def forget_previous(conn: HcpConnection) -> None:
    """Stop accepting the previous secret now (the caller commits)."""
    conn.webhook_previous_encrypted = None
    conn.webhook_previous_until = None
    db.session.flush()


def reencrypt(conn: HcpConnection) -> int:
    """Re-encrypt the stored secrets under the newest encryption key; return how many.

    Raises:
        crypto.SecretError: when one cannot be decrypted with the configured keys.
    """
    count = 0
    for column, which in (
        ("webhook_secret_encrypted", "webhook"),
        ("webhook_previous_encrypted", "webhook-previous"),
    ):
        token = getattr(conn, column)
        if token:
            rotated = crypto.rotate(token)
            crypto.decrypt(rotated, bound_to=_bound(conn, which))
            setattr(conn, column, rotated)
            count += 1
    return count


def mark_verified(conn_id: int, *, now: datetime) -> None:
    """Record the time of the last verified delivery (at most one write a minute)."""
    db.session.execute(
        update(HcpConnection)
        .where(
            HcpConnection.id == conn_id,
            or_(
                HcpConnection.webhook_last_verified_at.is_(None),
                HcpConnection.webhook_last_verified_at < now - timedelta(minutes=1),
            ),
        )
        .values(webhook_last_verified_at=now)
        .execution_options(synchronize_session=False)
    )

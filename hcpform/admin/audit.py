"""The audit log: who did what, when and from where. Entries are added, never changed."""

from __future__ import annotations

import hashlib

from flask import g, has_request_context, request

from ..extensions import db
from ..models import AuditEntry
from ..timeutil import utcnow


def client_ip() -> str:
    """Return the client's IP (ProxyFix has already applied TRUSTED_PROXIES)."""
    if not has_request_context():
        return ""
    return (request.remote_addr or "")[:64]


def person_tag(identifier: str) -> str:
    """Return a tombstone for a person's email or phone: a short hash, not the value itself."""
    digest = hashlib.sha256(identifier.strip().lower().encode()).hexdigest()[:16]
    return f"person sha256:{digest}"


def record(
    action: str, *, target: str = "", detail: str = "", admin_email: str | None = None
) -> None:
    """Add an audit entry for the signed-in admin (the caller commits with its change)."""
    if admin_email is None:
        admin = g.get("admin")
        admin_email = admin.email if admin is not None else "cli"
    db.session.add(
        AuditEntry(
            admin_email=admin_email[:254],
            action=action[:64],
            target=target[:200],
            detail=detail[:2000],
            ip=client_ip(),
            created_at=utcnow(),
        )
    )

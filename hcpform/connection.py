"""The business's HCP connection: which URL and key to use, a ready client, and its state."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import select

from .crypto import SecretError, decrypt
from .extensions import db, get_redis
from .hcp.client import HcpAuthError, HcpError, HousecallProClient
from .models import HcpCall, HcpConnection
from .timeutil import utcnow

logger = logging.getLogger(__name__)

KEY_UNREADABLE = "the stored HCP key cannot be decrypted with the current encryption keys"


class KeyUnreadable(HcpAuthError):
    """The stored API key cannot be decrypted (key rotated away, database restored elsewhere).

    An auth error: like a refused key, it waits for an admin to enter the key again.
    """

    def __init__(self, message: str = KEY_UNREADABLE, **kw: Any) -> None:
        super().__init__(message, **kw)


def connection_row() -> HcpConnection:
    """Return the HCP connection settings row (created on first use)."""
    conn = db.session.scalar(select(HcpConnection).order_by(HcpConnection.id).limit(1))
    if conn is None:
        conn = HcpConnection()
        db.session.add(conn)
        db.session.commit()
    return conn


def base_url() -> str:
    """Return HCP's base URL; the word `sandbox` means the built-in sandbox."""
    url: str = current_app.config["HCP_API_BASE_URL"]
    sandbox: str = current_app.config["HCP_SANDBOX_URL"]
    return sandbox if url == "sandbox" else url


def key_source(conn: HcpConnection) -> str:
    """Return where the API key comes from: environment, stored, sandbox or none."""
    if current_app.config.get("HCP_API_KEY"):
        return "environment"
    if conn.api_key_encrypted:
        return "stored"
    if current_app.config["HCP_API_BASE_URL"] == "sandbox":
        return "sandbox"
    return "none"


def api_key(conn: HcpConnection) -> str:
    """Return the API key in force: HCP_API_KEY, else the stored one, else the sandbox's.

    Raises:
        KeyUnreadable: when the stored key cannot be decrypted with the current keys.
    """
    source = key_source(conn)
    if source == "environment":
        return str(current_app.config["HCP_API_KEY"])
    if source == "stored":
        try:
            return decrypt(conn.api_key_encrypted or "", bound_to=f"hcp_connection:{conn.id}")
        except SecretError:
            logger.error("The stored HCP API key cannot be decrypted; enter it again")
            raise KeyUnreadable() from None
    if source == "sandbox":
        return str(current_app.config["HCP_SANDBOX_KEY"])
    return ""


def record_call(record: dict[str, Any]) -> None:
    """Store one HCP call (already redacted by the client) and commit it at once."""
    db.session.add(
        HcpCall(
            submission_id=record.get("submission_id"),
            method=record["method"],
            path=record["path"][:200],
            status=record.get("status"),
            ok=bool(record.get("ok")),
            duration_ms=int(record.get("duration_ms") or 0),
            attempt=int(record.get("attempt") or 1),
            message=(record.get("message") or "")[:500],
            created_at=utcnow(),
        )
    )
    db.session.commit()


def make_client(
    *, timeout: tuple[float, float] | None = None, **context: Any
) -> HousecallProClient:
    """Return a client for the connection in force, recording every call with this context.

    Raises:
        KeyUnreadable: when the stored key cannot be decrypted with the current keys.
    """
    conn = connection_row()
    config = dict(current_app.config)
    config["HCP_API_BASE_URL"] = base_url()
    if timeout is not None:
        config["HCP_CONNECT_TIMEOUT"], config["HCP_READ_TIMEOUT"] = timeout
    client = HousecallProClient.from_config(
        config, api_key=api_key(conn), redis=get_redis(), recorder=record_call
    )
    return client.with_context(**context) if context else client


def mark_disconnected(conn: HcpConnection, message: str) -> None:
    """Open the circuit: no sync calls HCP until a connection test succeeds."""
    conn.state = "disconnected"
    conn.last_message = message[:500]
    conn.last_checked_at = utcnow()
    conn.failing_since = conn.failing_since or conn.last_checked_at
    db.session.commit()


def test_connection(*, scheduled: bool = False) -> tuple[bool, str]:
    """Call GET /company with the key in force; store and return (connected, message).

    Only a refused key (401/403) opens the circuit ("disconnected"); HCP being slow or down
    ("unreachable") leaves the sync retrying by itself. Each failure adds one to the failures
    in a row (and keeps since when); a success clears them. The workers' scheduled check
    (`scheduled`) forgets only the cached company, the admin's button every cached list.
    """
    conn = connection_row()
    if key_source(conn) == "none":
        return _checked(conn, "disconnected", "No API key: enter your HCP API key first.")
    try:
        client = make_client()
        # A connection test must ask HCP, not the cache.
        if scheduled:
            client.invalidate_cache("company")
        else:
            client.invalidate_cache()
        company = client.company()
    except KeyUnreadable as exc:
        return _checked(conn, "disconnected", exc.message)
    except HcpError as exc:
        state = "disconnected" if exc.kind == "auth" else "unreachable"
        return _checked(conn, state, f"{exc.status or 'No answer'}: {exc.message}")
    conn.company_name = (company.get("name") or "")[:200]
    conn.time_zone = (company.get("time_zone") or "")[:64]
    return _checked(conn, "connected", f"Connected to {conn.company_name or 'Housecall Pro'}")


def alert(conn: HcpConnection, *, failures: int) -> dict[str, Any] | None:
    """Return what the admin's banner says when the connection is failing, else None.

    Shown after `failures` failed checks in a row, or at once when HCP refused the key.
    """
    refused = conn.state == "disconnected"
    if not (refused or (conn.check_failures or 0) >= failures):
        return None
    return {
        "refused": refused,
        "since": conn.failing_since or conn.last_checked_at,
        "failures": conn.check_failures or 0,
        "message": conn.last_message,
    }


def _checked(conn: HcpConnection, state: str, message: str) -> tuple[bool, str]:
    """Store the outcome of a connection test, and the failures in a row since when."""
    conn.state = state
    conn.last_message = message[:500]
    conn.last_checked_at = utcnow()
    if state == "connected":
        conn.check_failures, conn.failing_since = 0, None
    else:
        conn.check_failures = (conn.check_failures or 0) + 1
        conn.failing_since = conn.failing_since or conn.last_checked_at
    db.session.commit()
    return state == "connected", conn.last_message

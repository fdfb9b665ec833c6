"""`/healthz`: database, queue and HCP connection state as JSON (503 when the database is down)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Report the state of each part the product depends on."""
    from .queue import get_queue, get_redis, is_embedded

    report: dict[str, object] = {}
    status = 200
    try:
        db.session.execute(text("SELECT 1"))
        report["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "down" here
        db.session.rollback()
        report["database"] = {"ok": False, "error": exc.__class__.__name__}
        status = 503
    try:
        get_redis().ping()
        report["queue"] = {"ok": True, "embedded": is_embedded(), "queued": len(get_queue())}
    except Exception as exc:  # the wizard still saves submissions; they wait for the sweep
        report["queue"] = {"ok": False, "embedded": is_embedded(), "error": exc.__class__.__name__}
    if status == 200:
        from .hcp.connection import connection_row, key_source

        try:
            conn = connection_row()
            report["hcp"] = {
                "state": conn.state,
                "paused": conn.paused,
                "key": key_source(conn),
                "last_checked_at": conn.last_checked_at.isoformat()
                if conn.last_checked_at
                else None,
            }
        except Exception as exc:
            db.session.rollback()
            report["hcp"] = {"state": "unknown", "error": exc.__class__.__name__}
    report["ok"] = status == 200
    response = jsonify(report)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response

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
    from .extensions import get_redis, is_embedded
    from .jobs import get_queue

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
        from .connection import connection_row, key_source

        try:
            conn = connection_row()
            report["hcp"] = {
                "state": conn.state,
                "paused": conn.paused,
                "key": key_source(conn),
                # Why the sync waits (a refused key, a key that cannot be decrypted...).
                "message": conn.last_message if conn.state == "disconnected" else None,
                "last_checked_at": conn.last_checked_at.isoformat()
                if conn.last_checked_at
                else None,
            }
            report["sync"] = backlog()
        except Exception as exc:
            db.session.rollback()
            report["hcp"] = {"state": "unknown", "error": exc.__class__.__name__}
    from .security import proxy_report

    report["proxy"] = proxy_report()  # an untrusted TLS proxy breaks every wizard POST
    report["ok"] = status == 200
    response = jsonify(report)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def backlog() -> dict[str, object]:
    """Return what to alert on: submissions by waiting status and the oldest pending one's age."""
    from sqlalchemy import func, select

    from .models import Status, Submission
    from .timeutil import utcnow

    waiting = (Status.PENDING, Status.SYNCING, Status.WAITING, Status.FAILED)
    rows = db.session.execute(
        select(Submission.status, func.count(), func.min(Submission.created_at))
        .where(Submission.status.in_(waiting))
        .group_by(Submission.status)
    ).all()
    counts: dict[str, int] = {status: 0 for status in waiting}
    oldest = None
    for status, count, first in rows:
        counts[status] = count
        if status != Status.FAILED and first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=utcnow().tzinfo)
            oldest = first if oldest is None else min(oldest, first)
    age = round((utcnow() - oldest).total_seconds()) if oldest else 0
    return {**{str(k): v for k, v in counts.items()}, "oldest_unsynced_seconds": age}

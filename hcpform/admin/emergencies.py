"""Open emergencies: the banner of the dashboard and the submissions list, and "Acknowledge".

Oldest first: the emergency that has waited longest is the one the office must handle first.
An emergency stays open until someone acknowledges it (or it is handled manually in HCP).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import flash, g, redirect, request, url_for
from flask.typing import ResponseReturnValue

from .. import emergency
from ..extensions import db
from ..models import Submission
from ..timeutil import utcnow
from . import bp
from .audit import record

BANNER_LIMIT = 20
BACK = {"dashboard": "admin.dashboard", "submissions": "admin.submissions"}


@dataclass(frozen=True)
class OpenEmergency:
    """One open emergency as the banner shows it."""

    sub: Submission
    age: str


@dataclass(frozen=True)
class Banner:
    """The open emergencies shown (oldest first) and how many are open in all."""

    rows: list[OpenEmergency]
    total: int


def banner() -> Banner:
    """Return the open emergencies for the banner, each with its age."""
    now = utcnow()
    rows, total = emergency.open_emergencies(BANNER_LIMIT)
    return Banner([OpenEmergency(s, emergency.age_text(s.created_at, now)) for s in rows], total)


@bp.post("/emergencies/<int:sub_id>/acknowledge")
def acknowledge_emergency(sub_id: int) -> ResponseReturnValue:
    """Mark an emergency as seen by the office: it leaves the banner (audit-logged)."""
    sub = db.get_or_404(Submission, sub_id)
    if emergency.acknowledge(sub, by=g.admin.email, now=utcnow()):
        record("emergency acknowledged", target=sub.reference)
        db.session.commit()
        flash(
            f"{sub.reference} is acknowledged and leaves the list of open emergencies.", "success"
        )
    else:
        db.session.rollback()
        flash(f"{sub.reference} is not an open emergency (any more).", "info")
    back = request.form.get("back", "")
    if back == "submission":
        return redirect(url_for("admin.submission", sub_id=sub.id), code=303)
    return redirect(url_for(BACK.get(back, "admin.dashboard")), code=303)

"""The admin: sync dashboard, submissions, HCP connection, form settings, privacy and audit.

Every route of this blueprint needs a signed-in admin, except the login page: the gate below
runs before each of them. Admin pages are never framed (security.py sends DENY) nor cached.
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Endpoints an anonymous visitor may reach.
PUBLIC_ENDPOINTS = frozenset({"admin.login"})


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    """Send anyone without a live admin session to the login page."""
    from .auth import current_admin

    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    admin, reason = current_admin()
    if admin is None:
        if request.method == "GET" and request.path.startswith("/admin/"):
            # Kept in the session, not the URL: no open redirect, no query text in links.
            session["admin_next"] = request.full_path.rstrip("?")
        if reason:
            flash(reason, "info")
        return redirect(url_for("admin.login"), code=303)
    g.admin = admin
    return None


@bp.after_request
def no_store(response: Response) -> Response:
    """Keep admin pages (personal data) out of every cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


from . import (  # noqa: E402,F401  (the routes register themselves on bp)
    abandoned,
    auth,
    dashboard,
    emergencies,
    failures,
    forms_io,
    forms_settings,
    health_banner,
    integration,
    marketing,
    out_of_area,
    photos,
    privacy,
    submissions,
    webhooks,
)
from .filters import register_filters  # noqa: E402

register_filters(bp)

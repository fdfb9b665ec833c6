"""Admin accounts and sessions: hashed passwords, login with throttling, timeouts, logout.

A session is a signed cookie holding the admin's id and a fingerprint of (password hash,
session epoch). A new password changes the hash and logging out adds one to the epoch, so
either ends every session of that admin on the server, including a cookie copied earlier.
"""

from __future__ import annotations

import hashlib
import logging
import math
from datetime import datetime, timedelta
from functools import lru_cache

from flask import current_app, flash, g, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import AdminUser
from ..timeutil import utcnow
from . import bp, throttle
from .audit import client_ip, record
from .forms import LoginForm

logger = logging.getLogger(__name__)

# OWASP's scrypt row N=2^15, r=8, p=3 (reliability.md §3.6); werkzeug's default has p=1.
PASSWORD_METHOD = "scrypt:32768:8:3"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256


class AdminError(ValueError):
    """An admin account cannot be created or changed as asked; the message says why."""


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of the password."""
    return generate_password_hash(password, method=PASSWORD_METHOD)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("not a real password, used to even out timing")


def normalise_email(email: str) -> str:
    """Return the form of an admin email used to store and compare it."""
    return (email or "").strip().lower()


def set_admin(email: str, password: str) -> tuple[AdminUser, bool]:
    """Create the admin, or set a new password on an existing one; return (admin, created).

    Raises:
        AdminError: when the email or password is not acceptable.
    """
    email = normalise_email(email)
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise AdminError("Enter an email address, like office@example.com.")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AdminError(
            f"Use a password of {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
        )
    admin = db.session.scalar(select(AdminUser).where(AdminUser.email == email))
    created = admin is None
    if admin is None:
        admin = AdminUser(email=email, password_hash="", created_at=utcnow())
        db.session.add(admin)
    admin.password_hash = hash_password(password)
    db.session.flush()
    return admin, created


def authenticate(email: str, password: str) -> AdminUser | None:
    """Return the admin whose email and password these are, else None (in similar time)."""
    admin = db.session.scalar(
        select(AdminUser).where(func.lower(AdminUser.email) == normalise_email(email))
    )
    if admin is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(admin.password_hash, password):
        return None
    if not admin.password_hash.startswith(PASSWORD_METHOD + "$"):
        admin.password_hash = hash_password(password)  # upgrade older parameters on login
    return admin


def session_fingerprint(admin: AdminUser) -> str:
    """Return a short digest of the password hash and session epoch, which a session must match."""
    material = f"{admin.session_epoch or 0}:{admin.password_hash}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def end_sessions(admin: AdminUser) -> None:
    """End every session of this admin, in this browser and in any other (the caller commits)."""
    # One UPDATE, not read-add-write: two logouts at once still move the epoch on.
    db.session.execute(
        update(AdminUser)
        .where(AdminUser.id == admin.id)
        .values(session_epoch=func.coalesce(AdminUser.session_epoch, 0) + 1)
    )


def start_session(admin: AdminUser, *, now: datetime) -> None:
    """Begin a fresh session for this admin (nothing of the anonymous session survives)."""
    session.clear()
    session["admin_id"] = admin.id
    session["admin_auth"] = session_fingerprint(admin)
    session["admin_login_at"] = now.timestamp()
    session["admin_seen_at"] = now.timestamp()


def current_admin(now: datetime | None = None) -> tuple[AdminUser | None, str]:
    """Return (the signed-in admin, '') or (None, why the session ended, if it did)."""
    admin_id = session.get("admin_id")
    if admin_id is None:
        return None, ""
    now = now or utcnow()
    cfg = current_app.config
    idle = timedelta(minutes=float(cfg["ADMIN_IDLE_MINUTES"])).total_seconds()
    absolute = timedelta(hours=float(cfg["ADMIN_ABSOLUTE_HOURS"])).total_seconds()
    stamp = now.timestamp()
    expired = stamp - float(session.get("admin_seen_at", 0)) > idle or (
        stamp - float(session.get("admin_login_at", 0)) > absolute
    )
    admin = None if expired else db.session.get(AdminUser, admin_id)
    if admin is None or session.get("admin_auth") != session_fingerprint(admin):
        session.clear()
        return None, "Your session has ended. Sign in again." if expired else ""
    session["admin_seen_at"] = stamp
    return admin, ""


def wait_words(seconds: float) -> str:
    """Return a wait in plain words, rounded up: "5 seconds", "1 minute", "15 minutes"."""
    if seconds <= 90:
        count = max(1, math.ceil(seconds))
        return f"{count} second{'s' if count != 1 else ''}"
    count = math.ceil(seconds / 60)
    return f"{count} minute{'s' if count != 1 else ''}"


def too_many_attempts(form: LoginForm, wait: float) -> ResponseReturnValue:
    """Say plainly that sign-in is paused for a while, and for how long, on the login page."""
    message = f"Too many failed sign-in attempts. Wait {wait_words(wait)}, then try again."
    html = render_template("admin/login.html", form=form, error=message)
    return html, 429, {"Retry-After": str(math.ceil(wait))}


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; on good credentials start a new session."""
    form = LoginForm()
    if not form.is_submitted() and current_admin()[0] is not None:
        return redirect(url_for("admin.dashboard"))
    if not form.validate_on_submit():
        return render_template("admin/login.html", form=form), 400 if form.errors else 200
    email = normalise_email(form.email.data or "")[:254]
    # Counted before the password is checked, so parallel guesses cannot pass the count.
    wait = throttle.begin_attempt(email, client_ip())
    if wait is not None:
        logger.warning("Admin login throttled from %s", client_ip())
        return too_many_attempts(form, wait)
    admin = authenticate(form.email.data or "", form.password.data or "")
    throttle.end_attempt(email, client_ip(), ok=admin is not None)
    if admin is None:
        record("login failed", admin_email=email)
        db.session.commit()
        logger.warning("Admin login failed from %s", client_ip())
        error = "The email or password is not right."
        return render_template("admin/login.html", form=form, error=error), 401
    now = utcnow()
    target = session.get("admin_next", "")
    start_session(admin, now=now)
    admin.last_login_at = now
    g.admin = admin
    record("login")
    db.session.commit()
    logger.info("Admin %s signed in", admin.id)
    if not (target.startswith("/admin/") and not target.startswith("//")):
        target = url_for("admin.dashboard")
    return redirect(target, code=303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End this admin's sessions on the server (a copy of the cookie is refused too)."""
    end_sessions(g.admin)
    record("logout")
    db.session.commit()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("admin.login"), code=303)

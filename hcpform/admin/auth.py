"""Admin accounts and sessions: hashed passwords, login with throttling, timeouts, logout."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from functools import lru_cache

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db, limiter
from ..models import AdminUser
from ..timeutil import utcnow
from . import bp
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
    """Return a short digest of the password hash: a new password ends the old sessions."""
    return hashlib.sha256(admin.password_hash.encode()).hexdigest()[:16]


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


def _login_limit() -> str:
    return str(current_app.config["RATELIMIT_LOGIN"])


def _ip_key() -> str:
    return "admin-login-ip:" + client_ip()


def _account_key() -> str:
    # Hashed so that Redis keys hold no email addresses.
    email = normalise_email(request.form.get("email", ""))[:254]
    return "admin-login-account:" + hashlib.sha256(email.encode()).hexdigest()[:32]


def _failed(_response: object) -> bool:
    return bool(g.get("admin_login_failed"))


@bp.errorhandler(429)
def too_many_attempts(_exc: Exception) -> ResponseReturnValue:
    """Say plainly that sign-in is paused for a while, on the login page itself."""
    form = LoginForm()
    message = "Too many failed sign-in attempts. Wait 15 minutes, then try again."
    return render_template("admin/login.html", form=form, error=message), 429


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, key_func=_ip_key, methods=["POST"], deduct_when=_failed)
@limiter.limit(_login_limit, key_func=_account_key, methods=["POST"], deduct_when=_failed)
def login() -> ResponseReturnValue:
    """Show the login form; on good credentials start a new session."""
    if request.method == "GET" and current_admin()[0] is not None:
        return redirect(url_for("admin.dashboard"))
    form = LoginForm()
    if not form.validate_on_submit():
        if request.method == "POST":
            g.admin_login_failed = True
        return render_template("admin/login.html", form=form), 400 if form.errors else 200
    admin = authenticate(form.email.data, form.password.data)
    if admin is None:
        g.admin_login_failed = True
        record("login failed", admin_email=normalise_email(form.email.data)[:254])
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
    """End the session."""
    record("logout")
    db.session.commit()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("admin.login"), code=303)

"""Helpers for the admin tests: make admins and submissions, sign in, read pages."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from werkzeug.security import generate_password_hash

ADMIN_EMAIL = "office@example.com"
ADMIN_PASSWORD = "correct horse battery staple"


def make_admin(
    email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD, *, cheap: bool = True
) -> Any:
    """Add and commit an admin (in an app context). `cheap` skips scrypt to keep tests quick."""
    from hcpform.admin.auth import set_admin
    from hcpform.extensions import db
    from hcpform.models import AdminUser

    if cheap:
        admin = AdminUser(
            email=email, password_hash=generate_password_hash(password, method="pbkdf2:sha256:1000")
        )
        db.session.add(admin)
    else:
        admin, _ = set_admin(email, password)
    db.session.commit()
    return admin


def sign_in(client: Any, admin: Any) -> None:
    """Give the client a live admin session without going through the login form."""
    from hcpform.admin.auth import session_fingerprint
    from hcpform.timeutil import utcnow

    now = utcnow().timestamp()
    with client.session_transaction() as session:
        session["admin_id"] = admin.id
        session["admin_auth"] = session_fingerprint(admin)
        session["admin_login_at"] = now
        session["admin_seen_at"] = now


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """Return the first CSRF token rendered in an admin page."""
    match = CSRF_RE.search(page)
    assert match, "no csrf_token in the page"
    return unescape(match.group(1))


def text(response: Any) -> str:
    """Return a response's body as text."""
    return response.get_data(as_text=True)


def make_submission(**overrides: Any) -> Any:
    """Add and flush a valid submission of the default form, with its step answers."""
    from tests.factories import make_submission as make

    answers = {"zip": "60614", "booking_type": "Drain cleaning", "urgency": "soon"}
    return make(**{"answers": answers, **overrides})

"""CSRF for the wizard without cookies: a signed token bound to the draft, plus Fetch Metadata.

Inside a business's iframe our session cookie is a third-party cookie that browsers drop, so
Flask-WTF's session-bound token cannot work there. Each page instead carries a token signed with
SECRET_KEY over (form slug, draft token); a forged cross-site POST has neither, and browsers
tell us a cross-site POST apart by its `Sec-Fetch-Site` / `Origin` headers.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from wtforms.csrf.core import CSRF
from wtforms.validators import ValidationError

from ..i18n import N_, gettext

SALT = "hcpform-wizard-csrf"
EXPIRED = N_("This page has expired. Check your answers and continue.")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def make_token(form_slug: str, draft_token: str | None) -> str:
    """Return a signed token for this form and draft."""
    return _serializer().dumps({"f": form_slug, "d": draft_token or ""})


def check_token(token: str, form_slug: str, draft_token: str | None) -> bool:
    """Return True when the token was made by us for this form and draft, within the draft TTL."""
    max_age = int(current_app.config["DRAFT_TTL_DAYS"]) * 86400
    try:
        data = _serializer().loads(token or "", max_age=max_age)
    except (BadSignature, SignatureExpired):
        return False
    return (
        isinstance(data, dict)
        and data.get("f") == form_slug
        and data.get("d") == (draft_token or "")
    )


def posted_token_ok(form_slug: str, draft_token: str | None) -> bool:
    """Return True when this POST came from our own page for this form and draft."""
    return not cross_site_request() and check_token(
        request.form.get("csrf_token", ""), form_slug, draft_token
    )


def cross_site_request() -> bool:
    """Return True when the browser says this request came from another site."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return origin.rstrip("/") != request.host_url.rstrip("/")
    return False


class DraftCSRF(CSRF):
    """WTForms CSRF whose context is (form slug, draft token) instead of a session."""

    def setup_form(self, form: Any) -> Any:
        """Take the (slug, token) context from the form's meta, then add the token field."""
        self.context = form.meta.csrf_context
        return super().setup_form(form)

    def generate_csrf_token(self, csrf_token_field: Any) -> str:
        """Return a token signed for this form and draft."""
        return make_token(*self.context)

    def validate_csrf_token(self, form: Any, field: Any) -> None:
        """Refuse a cross-site post, or a token not signed for this form and draft."""
        if cross_site_request() or not check_token(field.data, *self.context):
            raise ValidationError(gettext(EXPIRED))

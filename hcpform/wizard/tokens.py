"""The draft token a wizard request carries: from `?d=`, or on the hosted site a first-party cookie.

Inside a business's iframe the cookie would be a third-party one that browsers drop, so there the
token travels in the URL only.
"""

from __future__ import annotations

import re

from flask import current_app, request
from werkzeug.wrappers import Response

from ..models import Draft, Form

COOKIE = "hcpform_draft"
# A draft token is what submissions.new_token makes: URL-safe base64, nothing else.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$", re.ASCII)


def is_embed() -> bool:
    """Return True when serving the iframe variant."""
    return request.blueprint == "embed"


def well_formed(token: str | None) -> str | None:
    """Return a draft token that has the shape of one, else None (it is looked up, nothing else)."""
    return token if token and TOKEN_RE.match(token) else None


def given_token(form: Form) -> str | None:
    """Return the draft token from the URL, or on the hosted site from our first-party cookie."""
    token = request.args.get("d")
    if not token and not is_embed():
        token = request.cookies.get(f"{COOKIE}_{form.id}")
    return token


def current_token(form: Form) -> str | None:
    """Return the draft token the request carries, when it is well formed."""
    return well_formed(given_token(form))


def with_cookie(response: Response, form: Form, draft: Draft | None) -> Response:
    """Remember the draft on the hosted site so coming back later resumes it (never in iframes)."""
    if is_embed():
        return response
    name = f"{COOKIE}_{form.id}"
    if draft is None or draft.submitted_at:
        response.delete_cookie(name, path=f"/f/{form.slug}/")
    else:
        response.set_cookie(
            name,
            draft.token,
            max_age=int(current_app.config["DRAFT_TTL_DAYS"]) * 86400,
            path=f"/f/{form.slug}/",
            httponly=True,
            samesite="Lax",
            secure=current_app.config["SESSION_COOKIE_SECURE"],
        )
    return response

"""Error pages: clear words and the business's phone number, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from .extensions import db

logger = logging.getLogger(__name__)

MESSAGES = {
    400: (
        "Something in the request was not right",
        "Go back, check what you entered and try again.",
    ),
    403: ("You can't do that", "This page refused the request."),
    404: ("Page not found", "Check the address, or start again from the business's website."),
    405: ("Page not found", "Check the address, or start again from the business's website."),
    413: (
        "That was too much to send",
        "What you sent is larger than we accept. Shorten your answers and try again.",
    ),
    429: (
        "Too many requests",
        "We've had a lot of requests from here. Please wait a while, or call us.",
    ),
    500: (
        "Sorry, something went wrong",
        "We couldn't finish that. Please try again in a few minutes, or call us.",
    ),
    503: (
        "Sorry, the service is unavailable",
        "We couldn't reach our database. Your answers are safe; try again in a few minutes, "
        "or call us.",
    ),
}


def business_contact() -> tuple[str, str, str]:
    """Return (business name, phone, phone for display) of the form in the URL, when readable."""
    from sqlalchemy import select

    from .models import Form
    from .validation import format_phone

    slug = (request.view_args or {}).get("slug")
    if not slug:
        return "", "", ""
    try:
        form = db.session.scalar(select(Form).where(Form.slug == slug))
    except Exception:  # the database itself may be what failed
        db.session.rollback()
        return "", "", ""
    if form is None:
        return "", "", ""
    return form.business_name, form.business_phone, format_phone(form.business_phone)


def render_error(code: int, message: str | None = None):  # noqa: ANN201
    """Render the error page for a status code."""
    title, default = MESSAGES.get(code, MESSAGES[500])
    name, phone, display = business_contact()
    html = render_template(
        "errors/error.html",
        title=title,
        message=message or default,
        business_name=name,
        phone=phone,
        phone_display=display,
        base="embed/base.html" if request.blueprint == "embed" else "base.html",
    )
    return html, code


def register_error_handlers(app: Flask) -> None:
    """Install the handlers for HTTP errors, CSRF, an unreachable database and the rest."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # noqa: ANN202
        if exc.code in (301, 302, 303, 307, 308):
            return exc
        return render_error(exc.code or 500)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):  # noqa: ANN202
        return render_error(400, "This form has expired. Go back, reload the page and try again.")

    @app.errorhandler(OperationalError)
    def database_down(exc: OperationalError):  # noqa: ANN202
        db.session.rollback()
        logger.error("Database unavailable: %s", exc.__class__.__name__)
        return render_error(503)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # noqa: ANN202
        db.session.rollback()
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return render_error(500)

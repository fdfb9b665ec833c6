"""Error pages: clear words and the business's phone number, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from .extensions import db
from .i18n import N_, gettext

logger = logging.getLogger(__name__)

MESSAGES = {
    400: (
        N_("Something in the request was not right"),
        N_("Go back, check what you entered and try again."),
    ),
    403: (N_("You can't do that"), N_("This page refused the request.")),
    404: (
        N_("Page not found"),
        N_("Check the address, or start again from the business's website."),
    ),
    405: (
        N_("Page not found"),
        N_("Check the address, or start again from the business's website."),
    ),
    413: (
        N_("That was too much to send"),
        N_("What you sent is larger than we accept. Shorten your answers and try again."),
    ),
    429: (
        N_("Too many requests"),
        N_("We've had a lot of requests from here. Please wait a while, or call us."),
    ),
    500: (
        N_("Sorry, something went wrong"),
        N_("We couldn't finish that. Please try again in a few minutes, or call us."),
    ),
    503: (
        N_("Sorry, the service is unavailable"),
        N_(
            "We couldn't reach our database. Your answers are safe; try again in a few minutes, "
            "or call us."
        ),
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


def render_error(code: int, message: str | None = None) -> tuple[str, int]:
    """Render the error page for a status code."""
    title, default = MESSAGES.get(code, MESSAGES[500])
    name, phone, display = business_contact()
    html = render_template(
        "errors/error.html",
        title=gettext(title),
        message=gettext(message or default),
        business_name=name,
        phone=phone,
        phone_display=display,
        base="embed/base.html" if request.blueprint == "embed" else "base.html",
    )
    return html, code


# Exceptions that mean "stop the process", not "this request failed": never answered with a page.
FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit)
PLAIN_500 = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>Sorry, something went wrong</title>"
    b"<h1>Sorry, something went wrong</h1><p>We couldn't finish that. Please try again in a few "
    b"minutes, or call us.</p></html>"
)


class ContainBaseExceptions:
    """WSGI middleware: a BaseException that is not an Exception still gets a 500 page.

    Flask's handlers see only Exception; a Rust extension's panic (pyo3's PanicException) is a
    BaseException and would otherwise drop the connection (flask dev) or leave the answer to the
    WSGI server. Stopping the process (KeyboardInterrupt, SystemExit) is not intercepted.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Run the app; answer a BaseException that escapes it with the 500 page."""
        try:
            return self.wsgi_app(environ, start_response)
        except FATAL:
            raise
        except BaseException:  # noqa: BLE001  only what Flask's own handlers could not see
            logger.exception(
                "Unhandled BaseException on %s %s",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
            )
            body, status = self._page(environ)
            start_response(
                f"{status} INTERNAL SERVER ERROR",
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Cache-Control", "no-store"),
                ],
            )
            return [body]

    def _page(self, environ: dict[str, Any]) -> tuple[bytes, int]:
        """Return the usual 500 page, or a plain one when even that can't be rendered."""
        try:
            with self.app.request_context(environ):
                html, status = render_error(500)
                return html.encode(), status
        except Exception:  # the page needs the database and templates; they may be what failed
            return PLAIN_500, 500


def register_error_handlers(app: Flask) -> None:
    """Install the handlers for HTTP errors, CSRF, an unreachable database and the rest."""
    app.wsgi_app = ContainBaseExceptions(app.wsgi_app, app)  # type: ignore[method-assign]

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> HTTPException | tuple[str, int]:
        if exc.code in (301, 302, 303, 307, 308):
            return exc
        return render_error(exc.code or 500)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[str, int]:
        return render_error(400, "This form has expired. Go back, reload the page and try again.")

    @app.errorhandler(OperationalError)
    def database_down(exc: OperationalError) -> tuple[str, int]:
        db.session.rollback()
        logger.error("Database unavailable: %s", exc.__class__.__name__)
        return render_error(503)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[str, int]:
        db.session.rollback()
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return render_error(500)

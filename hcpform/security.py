"""Security headers on every response, framing rules, and the client IP behind proxies."""

from __future__ import annotations

import re

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

ORIGIN_RE = re.compile(
    r"^https?://[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d{1,5})?$"
)
BASE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)


def valid_origin(origin: str) -> bool:
    """Return True for a bare http(s) origin: scheme and host, optional port, nothing else."""
    return bool(ORIGIN_RE.match(origin or ""))


def allow_framing_by(origins: list[str]) -> None:
    """Let this response be framed by these origins only (`'self'` when the list is empty)."""
    good = [o for o in origins if valid_origin(o)]  # re-checked: a bad row can't widen it
    g.frame_ancestors = " ".join(good) if good else "'self'"
    g.parent_origins = good or [request.host_url.rstrip("/")]


def parent_origins() -> list[str]:
    """Return the origins that may frame this page, to which it may post messages (or none)."""
    return list(g.get("parent_origins") or [])


def init_app(app: Flask) -> None:
    """Trust the configured number of proxies, and add the headers to every response."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.jinja_env.globals["parent_origins"] = parent_origins  # embed pages post only to these

    @app.after_request
    def security_headers(response: Response) -> Response:
        ancestors = g.get("frame_ancestors")
        if ancestors:
            response.headers["Content-Security-Policy"] = f"{BASE_CSP}; frame-ancestors {ancestors}"
        else:
            response.headers["Content-Security-Policy"] = f"{BASE_CSP}; frame-ancestors 'none'"
            response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # draft tokens never leave the site
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response

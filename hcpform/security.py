"""Security headers on every response, framing rules, and the client IP behind proxies."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from .timeutil import utcnow

logger = logging.getLogger(__name__)

ORIGIN_RE = re.compile(
    r"^https?://[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d{1,5})?$"
)
BASE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)


PROXY_EXT_KEY = "hcpform.untrusted_proxy"
DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def valid_origin(origin: str) -> bool:
    """Return True for a bare http(s) origin: scheme and host, optional port, nothing else."""
    return bool(ORIGIN_RE.match(origin or ""))


def normalise_origin(text: str) -> str | None:
    """Return the canonical form of an origin, or None when the text is not a bare origin.

    Lower case, no trailing slash, no default port, and an international domain name in its
    ASCII (punycode) form, which is how browsers compare it with `frame-ancestors`.
    """
    origin = (text or "").strip().rstrip("/").lower()
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in DEFAULT_PORTS:
        return None
    host, colon, port = rest.partition(":")
    try:
        host = host.encode("idna").decode("ascii") if host else ""
    except UnicodeError:  # an empty label, a label too long, a character IDNA refuses
        return None
    origin = f"{scheme}://{host}{colon}{port}"
    origin = origin.removesuffix(DEFAULT_PORTS[scheme]) if colon else origin
    return origin if valid_origin(origin) else None


def insecure_origins_refused() -> bool:
    """Return True when plain-http embedding origins are refused (in production)."""
    return bool(current_app.config.get("PRODUCTION"))


def allow_framing_by(origins: list[str]) -> None:
    """Let this response be framed by these origins only (`'self'` when the list is empty)."""
    # Re-checked, as the admin form checks them: a bad or stale row can't widen the policy.
    good = [o for o in (normalise_origin(row) for row in origins) if o]
    if insecure_origins_refused():
        good = [o for o in good if o.startswith("https://")]
    good = list(dict.fromkeys(good))
    g.frame_ancestors = " ".join(good) if good else "'self'"
    g.parent_origins = good or [request.host_url.rstrip("/")]


def note_untrusted_proxy() -> None:
    """Warn once, loudly, when a TLS proxy's `X-Forwarded-Proto: https` is not trusted.

    Without TRUSTED_PROXIES the app believes it is served over http: every wizard POST then
    carries an https `Origin` that looks foreign and fails as "page expired", and links and
    HSTS are wrong. `/healthz` reports what was seen (see `proxy_report`).
    """
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    if request.is_secure or "https" not in forwarded.lower():
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if PROXY_EXT_KEY in app.extensions:
        return
    app.extensions[PROXY_EXT_KEY] = {"seen_at": utcnow().isoformat(timespec="seconds")}
    level = logging.ERROR if app.config.get("PRODUCTION") else logging.WARNING
    logger.log(
        level,
        "Requests arrive with X-Forwarded-Proto: https from %s, but TRUSTED_PROXIES=%s: the app "
        "sees plain http, so every wizard POST fails as 'page expired'. Set "
        "HCPFORM_TRUSTED_PROXIES to the number of proxies in front of the app.",
        request.remote_addr,
        app.config.get("TRUSTED_PROXIES") or 0,
    )


def proxy_report() -> dict[str, Any]:
    """Return the proxy check for `/healthz`: ok, or when an untrusted TLS proxy was seen."""
    seen = current_app.extensions.get(PROXY_EXT_KEY)
    report: dict[str, Any] = {
        "ok": seen is None,
        "trusted_proxies": int(current_app.config.get("TRUSTED_PROXIES") or 0),
    }
    if seen:
        report["untrusted_https_forwarded_at"] = seen["seen_at"]
        report["fix"] = "set HCPFORM_TRUSTED_PROXIES to the number of proxies in front"
    return report


def parent_origins() -> list[str]:
    """Return the origins that may frame this page, to which it may post messages (or none)."""
    return list(g.get("parent_origins") or [])


def init_app(app: Flask) -> None:
    """Trust the configured number of proxies, and add the headers to every response."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.jinja_env.globals["parent_origins"] = parent_origins  # embed pages post only to these
    app.before_request(note_untrusted_proxy)

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

"""The sandbox's Flask app (HCP's gate: 404 page, key, contract) and its threaded server."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import click
from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import (
    control,
    customers,
    estimates,
    invoices,
    jobs,
    leads,
    progress,
    reference,
    schedule,
    staff,
    webhooks,
)
from .contract import UNKNOWN_PARAMETER, Violation, contract
from .faults import FaultMiddleware, is_control
from .state import DEFAULT_BOOKING_WINDOW_MINUTES, SandboxState
from .util import CONTROL_PREFIX, DEFAULT_API_KEY, json_response, state

HTML_404 = """<!DOCTYPE html>
<html>
<head><title>The page you were looking for doesn't exist (404)</title></head>
<body>
<div class="dialog">
<h1>The page you were looking for doesn't exist.</h1>
<p>You may have mistyped the address or the page may have moved.</p>
</div>
</body>
</html>
"""


def _html_404(_exc: Exception | None = None) -> Response:
    return Response(HTML_404, status=404, mimetype="text/html")


def _gate() -> Response | None:
    """Answer as HCP does before any route: unknown path, bad key, bad request, unimplemented."""
    if is_control(request.path):
        return None
    template = request.environ.get("hcp_sandbox.template")
    if template is None:
        # HCP's router answers unknown paths/methods with an HTML 404 before any auth.
        return _html_404()
    if not state().key_is_valid(request.headers.get("Authorization")):
        return json_response(401, {"message": "Unauthorized"})
    body_error = request.environ.get("hcp_sandbox.body_error")
    if body_error:
        return json_response(400, {"error": {"message": body_error}})
    violations: list[Violation] = request.environ.get("hcp_sandbox.violations", [])
    # Unknown query parameter names stay in the request log but are not refused: HCP (a Rails
    # app) ignores them. Bad array syntax, types and enums get HCP's 422 "must be an array".
    errors: dict[str, list[str]] = {}
    for v in violations:
        if v.code != UNKNOWN_PARAMETER:
            errors.setdefault(v.field or "base", []).append(v.message)
    if errors:
        return json_response(422, {"errors": errors})
    if request.url_rule is None:
        message = f"{request.method} {request.path} is in HCP's API but not in the sandbox"
        return json_response(501, {"error": {"message": message}})
    return None


def create_sandbox_app(
    *,
    api_keys: Iterable[str] = (DEFAULT_API_KEY,),
    seed: bool = True,
    job_types: Iterable[str] = (),
    time_zone: str = "America/Chicago",
    faults: dict[str, Any] | None = None,
    rng_seed: int | None = None,
    seed_customers: list[dict[str, Any]] | None = None,
    require_known_lead_source: bool = True,
    booking_window_minutes: int = DEFAULT_BOOKING_WINDOW_MINUTES,
) -> Flask:
    """Build the sandbox: a Flask app answering like HCP's API, plus /_sandbox/ controls.

    job_types are the seeded job types' names (hcpform passes its form template's service
    types, so that a fresh setup maps services to job types by name).
    """
    store = SandboxState(
        api_keys=api_keys,
        seed=seed,
        job_types=job_types,
        time_zone=time_zone,
        faults=faults,
        rng_seed=rng_seed,
        seed_customers=seed_customers,
        require_known_lead_source=require_known_lead_source,
        booking_window_minutes=booking_window_minutes,
    )
    contract()  # load the definition now, not during the first (timed) request
    app = Flask(__name__)
    app.extensions["hcp_sandbox"] = store
    for module in (
        customers,
        jobs,
        invoices,
        estimates,
        leads,
        reference,
        schedule,
        staff,
        control,
        webhooks,
        progress,
    ):
        app.register_blueprint(module.bp)
    app.before_request(_gate)
    app.register_error_handler(404, _html_404)
    app.register_error_handler(405, _html_404)
    app.wsgi_app = FaultMiddleware(app.wsgi_app, store)  # type: ignore[method-assign]
    return app


def get_state(app: Flask) -> SandboxState:
    """Return the sandbox state behind a sandbox app."""
    return app.extensions["hcp_sandbox"]  # type: ignore[no-any-return]


class _Handler(WSGIRequestHandler):
    """Request handler that logs like werkzeug's (a subclass, so HTTP/1.1 stays local to it)."""


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request (tests)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class SandboxServer:
    """The sandbox on a real socket in a daemon thread (port=0 picks a free port)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True, **app_kwargs: Any
    ) -> None:
        self.host = host
        self.port = port
        self.quiet = quiet
        self.app = create_sandbox_app(**app_kwargs)
        self.state = get_state(self.app)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (valid once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; return self."""
        if self._server is not None:
            return self
        handler = _QuietHandler if self.quiet else _Handler
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=handler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"hcp-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (requests still sleeping are abandoned)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str, port: int, **app_kwargs: Any) -> None:
    """Run the sandbox in the foreground until interrupted."""
    app = create_sandbox_app(**app_kwargs)
    server = make_server(host, port, app, threaded=True, request_handler=_Handler)
    keys = ", ".join(sorted(get_state(app).api_keys)) or "(none)"
    click.echo(f"HCP sandbox on http://{host}:{server.server_port}  (valid keys: {keys})")
    click.echo(f"control endpoint: http://{host}:{server.server_port}{CONTROL_PREFIX}/state")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

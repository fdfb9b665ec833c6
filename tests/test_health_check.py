"""The HCP connection health check: scheduled by real workers (one GET /company each time,
never from the cache), and the admin banner after 3 failed checks in a row or one refused key,
saying since when, gone again once a check succeeds."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests

from hcpform import periodic
from hcpform.connection import connection_row
from hcpform.extensions import db
from tests.admin_helpers import text
from tests.helpers import wait_for

pytest_plugins = ["tests.admin_fixtures"]

PAGES = ("/admin/", "/admin/submissions", "/admin/forms", "/admin/abandoned")


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A check every 3 seconds (the default is every 10 minutes)."""
    return {**settings, "HCP_HEALTH_CHECK_MINUTES": 0.05}


def company_calls(sandbox: Any) -> int:
    """Return how many GET /company the sandbox has answered."""
    url = f"{sandbox.url}/_sandbox/requests?method=GET&path=/company"
    return int(requests.get(url, timeout=5).json()["count"])


def check(app: Any) -> str:
    """Run one scheduled check in this process, as a worker's job does."""
    with app.app_context():
        return periodic.check_connection()


def banner(page: str) -> str | None:
    """Return the connection banner's text on an admin page, or None."""
    match = re.search(
        r'<div class="flash flash--error" role="alert" data-hcp-alert>(.*?)</div>', page, re.S
    )
    return " ".join(match.group(1).split()) if match else None


def test_workers_check_the_connection_on_schedule(app, sandbox, start_worker, admin_client):
    assert "Not checked yet" in text(admin_client.get("/admin/"))
    start_worker()

    def checked() -> bool:
        with app.app_context():
            return connection_row().last_checked_at is not None

    wait_for(checked, timeout=30)
    page = text(admin_client.get("/admin/"))
    assert "Not checked yet" not in page and "Connected" in page
    first, started = company_calls(sandbox), time.monotonic()
    # More checks follow on schedule, each one GET /company that asks HCP (not the cache)...
    wait_for(lambda: company_calls(sandbox) >= first + 2, timeout=30)
    elapsed = time.monotonic() - started
    # ... and no more than one per 3-second bucket.
    assert company_calls(sandbox) - first <= elapsed / 3 + 2
    assert banner(text(admin_client.get("/admin/"))) is None


def test_three_failed_checks_in_a_row_show_a_banner_with_since(app, sandbox, admin_client):
    assert check(app) == "connected"
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"rules": [{"kind": "503", "method": "GET", "path": "/company", "times": 3}]},
        timeout=5,
    )
    assert check(app) == "unreachable"
    with app.app_context():
        since = connection_row().failing_since
    assert since is not None
    assert check(app) == "unreachable"
    for path in PAGES:  # two failures: no banner yet
        assert banner(text(admin_client.get(path))) is None, path
    assert check(app) == "unreachable"
    with app.app_context():
        conn = connection_row()
        assert conn.check_failures == 3 and conn.failing_since == since
        from hcpform.admin.filters import admin_time

        with app.test_request_context():
            shown = admin_time(since)
    for path in PAGES:
        text_ = banner(text(admin_client.get(path)))
        assert text_ is not None, path
        assert "failing" in text_ and f"since {shown}" in text_ and "3 checks in a row" in text_
    assert check(app) == "connected"  # recovery clears it
    for path in PAGES:
        assert banner(text(admin_client.get(path))) is None, path
    with app.app_context():
        conn = connection_row()
        assert (conn.check_failures, conn.failing_since) == (0, None)


def test_a_refused_key_shows_the_banner_at_once(app, sandbox, admin_client):
    requests.post(f"{sandbox.url}/_sandbox/keys", json={"valid": ["another-key"]}, timeout=5)
    assert check(app) == "disconnected"
    text_ = banner(text(admin_client.get("/admin/submissions")))
    assert text_ is not None and "refused the API key" in text_ and "since" in text_
    requests.post(f"{sandbox.url}/_sandbox/keys", json={"valid": ["sandbox-key"]}, timeout=5)
    assert check(app) == "connected"
    assert banner(text(admin_client.get("/admin/submissions"))) is None


def test_a_key_refused_during_a_sync_shows_it_too(app, sandbox, admin_client):
    from hcpform.connection import mark_disconnected

    with app.app_context():
        mark_disconnected(connection_row(), "HCP refused the API key (401)")
        db.session.commit()
    assert "refused the API key" in (banner(text(admin_client.get("/admin/"))) or "")


def test_no_key_no_check(app, sandbox):
    app.config["HCP_API_BASE_URL"] = "https://api.example.invalid"
    assert check(app) == "no key"

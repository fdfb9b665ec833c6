"""Access logs of real servers: draft tokens and staff's searches never appear in clear.

A draft token in a URL (`?d=`) lets whoever reads it open and send that person's draft, and
the admin's search terms (`?q=`) are names, phones and emails. Both reach access logs in the
request line and, through `Referer`, on the next request.
"""

from __future__ import annotations

import io
import logging
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import ROOT, free_port, worker_env
from tests.helpers import wait_for

TOKEN = "Zq7draftTOKENsecret_4f1d9b2e7a"
SEARCH = "Zoe Quill"


def browse(base: str) -> None:
    """Open a draft by its link, then search the admin, as a person and staff would."""
    draft_url = f"{base}/f/service-request/?d={TOKEN}"
    requests.get(draft_url, timeout=10, allow_redirects=False)
    requests.get(
        f"{base}/f/service-request/?zip=60614",
        headers={"Referer": draft_url},
        timeout=10,
        allow_redirects=False,
    )
    requests.get(
        f"{base}/admin/submissions",
        params={"status": "failed", "q": SEARCH},
        timeout=10,
        allow_redirects=False,
    )


def assert_nothing_in_clear(log: str) -> None:
    assert "/f/service-request/" in log and "/admin/submissions" in log, log
    for secret in (TOKEN, SEARCH, SEARCH.replace(" ", "+"), SEARCH.replace(" ", "%20")):
        assert secret not in log, f"{secret!r} in the access log:\n{log}"


@pytest.fixture
def werkzeug_log() -> Iterator[io.StringIO]:
    """A handler of its own on werkzeug's logger, as werkzeug adds when the root has none."""
    logger = logging.getLogger("werkzeug")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_the_development_servers_access_log_is_redacted(app, werkzeug_log):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browse(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
    log = werkzeug_log.getvalue()
    assert_nothing_in_clear(log)
    assert "?d=[redacted]" in log and "q=[redacted]" in log
    assert "status=failed" in log  # the rest of the query stays readable


def documented_access_format() -> str:
    """Return the --access-logformat that docs/operations.md recommends."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    match = re.search(r"--access-logformat '([^']+)'", doc)
    assert match, "docs/operations.md shows no --access-logformat"
    return match.group(1)


def run_gunicorn(settings: dict[str, Any], tmp_path: Path, *args: str) -> str:
    """Serve the app with gunicorn, browse it, stop it; return its access log."""
    port = free_port()
    log = tmp_path / f"access-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--access-logfile", str(log), *args, "wsgi:app"],
        env=worker_env(settings, tmp_path),
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def serving() -> bool:
            """gunicorn answers /healthz"""
            assert proc.poll() is None, "gunicorn exited"
            try:
                return requests.get(f"{base}/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(serving, timeout=30)
        browse(base)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return log.read_text()


@pytest.mark.slow
def test_gunicorns_access_log_is_redacted_even_in_its_default_format(app, settings, tmp_path):
    # The default format prints the request line (%(r)s) and the referrer (%(f)s) in full.
    log = run_gunicorn(settings, tmp_path)
    assert_nothing_in_clear(log)
    assert "?d=[redacted]" in log and "q=[redacted]" in log


@pytest.mark.slow
def test_the_documented_gunicorn_access_format_prints_no_query_strings(app, settings, tmp_path):
    fmt = documented_access_format()
    assert "%(r)s" not in fmt and "%(q)s" not in fmt and "%(f)s" not in fmt
    log = run_gunicorn(settings, tmp_path, "--access-logformat", fmt)
    assert_nothing_in_clear(log)
    assert "?" not in log and "[redacted]" not in log  # nothing there to redact

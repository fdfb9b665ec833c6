"""`flask dev`, what `scripts/run` starts: the web app, the embedded worker and the sandbox, each
on its own port, with no Redis."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import free_port
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_dev_serves_the_wizard_and_the_sandbox_on_their_own_ports(tmp_path):
    web, hcp, smtp = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "CI")} | {
        "HCP_API_BASE_URL": "sandbox",
        "HCPFORM_HCP_SANDBOX_URL": f"http://127.0.0.1:{hcp}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}",
        "HCPFORM_MAIL_DEV_PORT": str(smtp),
    }
    flask = [sys.executable, "-m", "flask", "--app", "hcpform"]
    subprocess.run([*flask, "init-db"], env=env, cwd=tmp_path, check=True, capture_output=True)
    log = (tmp_path / "dev.log").open("w")
    server = subprocess.Popen(
        [*flask, "dev", "--port", str(web)], env=env, cwd=tmp_path, stdout=log, stderr=log
    )
    try:

        def up() -> bool:
            """Both ports answer."""
            try:
                health = requests.get(f"http://127.0.0.1:{web}/healthz", timeout=2)
                state = requests.get(f"http://127.0.0.1:{hcp}/_sandbox/state", timeout=2)
            except requests.ConnectionError:
                return False
            return health.status_code == 200 and state.status_code == 200

        wait_for(up, timeout=30)
        assert requests.get(f"http://127.0.0.1:{web}/healthz", timeout=5).json()["queue"][
            "embedded"
        ]
        page = requests.get(f"http://127.0.0.1:{web}/f/service-request/", timeout=5)
        assert page.status_code == 200 and 'name="zip"' in page.text
        assert (
            "customers" in requests.get(f"http://127.0.0.1:{hcp}/_sandbox/state", timeout=5).json()
        )

        # The sandbox signs and sends its webhooks to the app: the loop works with no account.
        def registered() -> bool:
            hooks = requests.get(f"http://127.0.0.1:{hcp}/_sandbox/webhooks", timeout=5).json()
            return bool(hooks["registered"]) and hooks["url"].endswith(f":{web}/hooks/hcp")

        wait_for(registered, timeout=30)
        # Without HCPFORM_MAIL_URL, a local sink prints the app's emails to the console.
        with smtplib.SMTP("127.0.0.1", smtp, timeout=5) as sink:
            sink.sendmail("a@example.com", ["b@example.com"], "Subject: Hello sink\r\n\r\nHi\r\n")
        wait_for(lambda: "Subject: Hello sink" in (tmp_path / "dev.log").read_text(), timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

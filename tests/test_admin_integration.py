"""The HCP connection page: write-only key encrypted at rest, connection test, pause, defaults,
key rotation, and the whole way from a wrong key to a synced job in the sandbox."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from hcpform import crypto
from hcpform.connection import connection_row
from hcpform.extensions import db
from hcpform.jobs import sync_submission
from hcpform.models import AuditEntry, Status, Submission
from tests.admin_helpers import make_submission
from tests.admin_helpers import text as body
from tests.conftest import free_port
from tests.helpers import Wizard, reference_in

pytest_plugins = ["tests.admin_fixtures"]

SECRET_KEY = "hcp-live-0123456789abcdefWXYZ"


def queued_ids(app: Any) -> list[int]:
    from hcpform.jobs import get_queue

    with app.app_context():
        return [job.args[0] for job in get_queue().get_jobs()]


def raw_connection_row(app: Any) -> tuple[str, str]:
    with app.app_context():
        row = db.session.execute(
            text("SELECT api_key_encrypted, api_key_last4 FROM hcp_connection")
        ).one()
        return row[0], row[1]


def test_key_is_write_only_encrypted_at_rest_and_never_shown_or_logged(
    app, admin_client, sandbox, caplog
):
    caplog.set_level(logging.DEBUG)
    requests.post(f"{sandbox.url}/_sandbox/keys", json={"valid": [SECRET_KEY]}, timeout=5)
    pages = []
    response = admin_client.post("/admin/integration/key", data={"api_key": f"  {SECRET_KEY} "})
    assert response.status_code == 303
    pages.append(body(response))
    for url in ("/admin/integration", "/admin/", "/admin/audit", "/admin/forms/service-request"):
        pages.append(body(admin_client.get(url)))
    pages.append(body(admin_client.post("/admin/integration/test", follow_redirects=True)))
    page = pages[1]
    assert "Connected" in page and "••••WXYZ" in page
    assert 'name="api_key"' in page and 'value="' + SECRET_KEY not in page
    for html in pages:
        assert SECRET_KEY not in html
        assert SECRET_KEY[:-4] not in html
    assert SECRET_KEY not in caplog.text
    assert all(SECRET_KEY not in r.getMessage() for r in caplog.records)
    token, last4 = raw_connection_row(app)
    assert last4 == "WXYZ"
    assert SECRET_KEY not in token and token.startswith("gAAAA")  # a Fernet token
    with app.app_context():
        conn = connection_row()
        assert crypto.decrypt(token, bound_to=f"hcp_connection:{conn.id}") == SECRET_KEY
        with pytest.raises(crypto.SecretError):  # bound to its row: useless on another
            crypto.decrypt(token, bound_to="hcp_connection:999")
        actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions == ["key saved", "connection tested", "connection tested"]


def test_a_bad_key_form_is_refused_without_echoing_it(admin_client):
    response = admin_client.post("/admin/integration/key", data={"api_key": "has space inside"})
    assert response.status_code == 400
    page = body(response)
    assert "has space inside" not in page
    assert "paste it again" in page


def test_rotate_encryption_key_re_encrypts_under_the_newest_key(app, admin_client, caplog):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app.config["ENCRYPTION_KEY"] = old
    admin_client.post("/admin/integration/key", data={"api_key": SECRET_KEY})
    before, _ = raw_connection_row(app)
    app.config["ENCRYPTION_KEY"] = f"{new},{old}"
    result = app.test_cli_runner().invoke(args=["rotate-encryption-key"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 stored secrets" in result.output
    after, _ = raw_connection_row(app)
    assert after != before
    app.config["ENCRYPTION_KEY"] = new  # the old key is gone: the secret still opens
    with app.app_context():
        conn = connection_row()
        assert crypto.decrypt(after, bound_to=f"hcp_connection:{conn.id}") == SECRET_KEY
        app.config["ENCRYPTION_KEY"] = old
        with pytest.raises(crypto.SecretError):
            crypto.decrypt(after, bound_to=f"hcp_connection:{conn.id}")
    assert SECRET_KEY not in result.output and SECRET_KEY not in caplog.text


def test_rotation_reports_a_secret_no_key_opens(app, admin_client):
    admin_client.post("/admin/integration/key", data={"api_key": SECRET_KEY})
    app.config["ENCRYPTION_KEY"] = Fernet.generate_key().decode()  # the stored key is lost
    result = app.test_cli_runner().invoke(args=["rotate-encryption-key"])
    assert result.exit_code != 0
    assert "could not be decrypted" in result.output


def test_environment_key_is_said_to_be_in_use(app, admin_client, sandbox):
    app.config["HCP_API_KEY"] = "env-key-1234"
    requests.post(f"{sandbox.url}/_sandbox/keys", json={"valid": ["env-key-1234"]}, timeout=5)
    page = body(admin_client.get("/admin/integration"))
    assert "comes from the <code>HCP_API_KEY</code> environment variable" in page
    page = body(admin_client.post("/admin/integration/test", follow_redirects=True))
    assert "Connected" in page
    assert "env-key-1234" not in page


def test_connection_test_reads_the_company_time_zone_and_resumes_waiting(app, admin_client):
    with app.app_context():
        waiting = make_submission(status="waiting").id
        db.session.commit()
    page = body(admin_client.post("/admin/integration/test", follow_redirects=True))
    assert "Connected." in page and "1 waiting submissions are being sent" in page
    with app.app_context():
        conn = connection_row()
        assert conn.state == "connected" and conn.time_zone and conn.last_checked_at
        assert conn.time_zone in page
        assert db.session.get(Submission, waiting).status == Status.PENDING
    assert queued_ids(app) == [waiting]


def test_page_still_renders_when_hcp_is_unreachable(app, admin_client):
    app.config["HCP_SANDBOX_URL"] = f"http://127.0.0.1:{free_port()}"
    app.config["HCP_CONNECT_TIMEOUT"] = 0.5
    response = admin_client.get("/admin/integration")
    assert response.status_code == 200
    assert "Housecall Pro could not be reached" in body(response)
    response = admin_client.get("/admin/forms/service-request")
    assert response.status_code == 200
    assert "could not be reached" in body(response)
    page = body(admin_client.post("/admin/integration/test", follow_redirects=True))
    assert "Disconnected" in page


def test_pause_keeps_submissions_waiting_and_resume_sends_them(app, admin_client):
    admin_client.post("/admin/integration/pause")
    with app.app_context():
        sub_id = make_submission(status="pending").id
        db.session.commit()
        assert sync_submission(sub_id) == "waiting"
    with app.app_context():
        sub = db.session.get(Submission, sub_id)
        assert sub.status == Status.WAITING and "paused" in sub.last_error
    assert "Sync is paused" in body(admin_client.get("/admin/integration"))
    admin_client.post("/admin/integration/resume")
    with app.app_context():
        assert connection_row().paused is False
        assert db.session.get(Submission, sub_id).status == Status.PENDING
    assert queued_ids(app) == [sub_id]
    with app.app_context():
        actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions == ["pause", "resume"]


def test_defaults_offer_hcp_lists_and_are_saved(app, admin_client, sandbox):
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
    job_type = next(jt for jt in state["job_types"] if jt["name"] == "Water heater")
    page = body(admin_client.get("/admin/integration"))
    assert '<option value="Google">Google</option>' in page
    assert f'<option value="{job_type["id"]}">Water heater</option>' in page
    response = admin_client.post(
        "/admin/integration/defaults",
        data={"lead_source": "Google", "tags": "web, form , web", "job_type_id": job_type["id"]},
    )
    assert response.status_code == 303
    with app.app_context():
        conn = connection_row()
        assert conn.default_lead_source == "Google"
        assert conn.default_tags == ["web", "form"]
        assert conn.default_job_type_id == job_type["id"]
    # A value HCP does not offer is refused.
    admin_client.post("/admin/integration/defaults", data={"lead_source": "Made up"})
    with app.app_context():
        assert connection_row().default_lead_source == "Google"


def test_end_to_end_wrong_key_then_right_key_syncs_the_waiting_submission(
    app, admin_client, sandbox
):
    # 1. A wrong key: the connection test says Disconnected.
    response = admin_client.post("/admin/integration/key", data={"api_key": "wrong-key-0000"})
    assert response.status_code == 303
    page = body(admin_client.get("/admin/integration"))
    assert "Disconnected" in page and "••••0000" in page
    # 2. A homeowner submits through the wizard; the sync waits for the connection.
    wizard = Wizard(app.test_client())
    wizard.complete()
    reference = reference_in(wizard.page)
    with app.app_context():
        sub_id = db.session.scalar(select(Submission.id).where(Submission.reference == reference))
    # The run a worker would make: it takes the wizard's job off the queue and parks the row.
    with app.app_context():
        from hcpform.jobs import get_queue

        get_queue().empty()
        assert sync_submission(sub_id) == "waiting"
    with app.app_context():
        assert db.session.get(Submission, sub_id).status == Status.WAITING
    assert queued_ids(app).count(sub_id) == 0
    # 3. The right key: Connected, and the waiting submission is queued again by itself.
    page = body(
        admin_client.post(
            "/admin/integration/key", data={"api_key": "sandbox-key"}, follow_redirects=True
        )
    )
    assert "Connected." in page and "1 waiting submissions are being sent" in page
    with app.app_context():
        assert db.session.get(Submission, sub_id).status == Status.PENDING
    assert queued_ids(app).count(sub_id) == 1
    # 4. The worker's run syncs it: a customer and a job in the sandbox.
    with app.app_context():
        assert sync_submission(sub_id) == "synced"
    with app.app_context():
        sub = db.session.get(Submission, sub_id)
        assert sub.status == Status.SYNCED and sub.hcp_job_id
        job_id, customer_id = sub.hcp_job_id, sub.hcp_customer_id
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
    jobs = [j for j in state["jobs"] if j["id"] == job_id]
    assert len(jobs) == 1
    assert state["counts"]["jobs"] == 1
    detail = body(admin_client.get(f"/admin/submissions/{sub_id}"))
    assert f"/jobs/{job_id}" in detail and f"/customers/{customer_id}" in detail

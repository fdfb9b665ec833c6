"""Webhooks from HCP: the handshake, the signature (missing, wrong, stale, tampered), each event
stored once, applied by a real worker newest-first, secret rotation and the environment
override, the secret never shown, and events for records we did not create dropped after
30 days. The sandbox sends real signed deliveries over HTTP to the app served over HTTP."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text, update

from hcpform import create_app
from hcpform.connection import connection_row
from hcpform.extensions import db
from hcpform.models import HcpConnection, Status, WebhookEvent
from hcpform.timeutil import utcnow
from hcpform.webhooks import tasks
from tests.admin_helpers import text as page_text
from tests.factories import make_submission
from tests.helpers import wait_for
from tests.webhook_helpers import (
    SECRET,
    deliveries,
    envelope,
    events,
    sandbox_job,
    served,
    signed,
    submission,
    synced_submission,
)

pytest_plugins = ["tests.admin_fixtures"]

JOB = {"id": "job_ours", "work_status": "complete unrated", "total_amount": 25000,
       "outstanding_balance": 25000}  # fmt: skip


def set_secret(admin_client: Any, value: str = SECRET) -> None:
    response = admin_client.post("/admin/integration/webhook-secret", data={"secret": value})
    assert response.status_code == 303, page_text(response)


def stored(app: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def last_verified(app: Any) -> Any:
    with app.app_context():
        return connection_row().webhook_last_verified_at


def test_the_handshake_gets_a_2xx_and_stores_nothing(app, client):
    response = client.post("/hooks/hcp", data=b'{"foo":"bar"}', content_type="application/json")
    assert response.status_code == 200
    assert stored(app) == 0 and last_verified(app) is None


def bad_deliveries() -> list[tuple[str, Any]]:
    """Each case builds its delivery when the test runs (the timestamps are relative to then)."""
    body = envelope("job.completed", JOB, "2026-12-01T10:00:00Z")
    odd = b'{"foo":"baz"}'
    return [
        ("no headers", lambda now: (body, {"Content-Type": "application/json"})),
        ("no signature", lambda now: (body, {"Api-Timestamp": str(now)})),
        ("wrong secret", lambda now: (body, signed(body, secret="not-the-secret-at-all"))),
        ("tampered body", lambda now: (body.replace(b"25000", b"99999"), signed(body))),
        ("six minutes old", lambda now: (body, signed(body, timestamp=now - 301))),
        ("six minutes ahead", lambda now: (body, signed(body, timestamp=now + 301))),
        ("not a number", lambda now: (body, {**signed(body), "Api-Timestamp": "soon"})),
        ("signed wrong", lambda now: (odd, signed(odd, "x" * 9))),
    ]


@pytest.mark.parametrize(
    ("case", "delivery"), bad_deliveries(), ids=[c for c, _ in bad_deliveries()]
)
def test_a_bad_or_missing_signature_gets_401_and_changes_nothing(
    app, client, admin_client, case, delivery
):
    set_secret(admin_client)
    body, headers = delivery(int(time.time()))
    response = client.post("/hooks/hcp", data=body, headers=headers)
    assert response.status_code == 401, case
    assert stored(app) == 0 and last_verified(app) is None


@pytest.mark.both_dbs
def test_a_signed_delivery_is_stored_once_and_its_time_shown(app, client, admin_client):
    set_secret(admin_client)
    body = envelope("job.completed", JOB, "2026-12-01T10:00:00Z")
    headers = signed(body)
    first = client.post("/hooks/hcp", data=body, headers=headers)
    second = client.post("/hooks/hcp", data=body, headers=headers)  # HCP delivered it twice
    assert (first.status_code, first.json["message"]) == (200, "stored")
    assert (second.status_code, second.json["message"]) == (200, "duplicate")
    (event,) = events(app)
    assert (event.event, event.resource, event.record_id) == ("job.completed", "job", "job_ours")
    assert last_verified(app) is not None
    page = page_text(admin_client.get("/admin/integration"))
    assert "http://localhost/hooks/hcp" in page and "None yet" not in page


def test_a_delivery_over_the_size_cap_is_refused(app, client, admin_client):
    set_secret(admin_client)
    app.config["WEBHOOK_MAX_BYTES"] = 1000
    body = envelope("job.updated", {**JOB, "description": "x" * 2000}, "2026-12-01T10:00:00Z")
    assert client.post("/hooks/hcp", data=body, headers=signed(body)).status_code == 413
    assert stored(app) == 0


def test_deliveries_are_rate_limited_per_address(app, client):
    app.config.update(RATELIMIT_ENABLED=True, RATELIMIT_WEBHOOK_PER_IP="2/minute")
    codes = [client.post("/hooks/hcp", data=b'{"foo":"bar"}').status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_secret_rotation_keeps_the_previous_secret_for_24_hours(app, client, admin_client):
    set_secret(admin_client, "old-secret-0123456789")
    set_secret(admin_client, "new-secret-9876543210")

    def deliver(secret: str, n: int) -> int:
        body = envelope("job.updated", {**JOB, "n": n}, "2026-12-01T10:00:00Z")
        return int(client.post("/hooks/hcp", data=body, headers=signed(body, secret)).status_code)

    assert deliver("old-secret-0123456789", 1) == 200
    assert deliver("new-secret-9876543210", 2) == 200
    page = page_text(admin_client.get("/admin/integration"))
    assert "Still accepted until" in page
    with app.app_context():  # a day passes
        until = connection_row().webhook_previous_until
        assert timedelta(hours=23) < until - utcnow() <= timedelta(hours=24)
        db.session.execute(
            update(HcpConnection).values(webhook_previous_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert deliver("old-secret-0123456789", 3) == 401
    assert deliver("new-secret-9876543210", 4) == 200
    assert stored(app) == 3


def test_the_environment_secret_overrides_the_stored_one(app, client, admin_client):
    set_secret(admin_client, "stored-secret-0123456789")
    app.config["HCP_WEBHOOK_SECRET"] = "env-secret-0123456789"
    body = envelope("job.updated", JOB, "2026-12-01T10:00:00Z")
    stale = client.post("/hooks/hcp", data=body, headers=signed(body, "stored-secret-0123456789"))
    assert stale.status_code == 401 and stored(app) == 0
    response = client.post("/hooks/hcp", data=body, headers=signed(body, "env-secret-0123456789"))
    assert response.status_code == 200 and stored(app) == 1
    page = page_text(admin_client.get("/admin/integration"))
    assert "From the <code>HCP_WEBHOOK_SECRET</code> environment variable" in page


def test_hcp_webhook_secret_is_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HCP_WEBHOOK_SECRET", "from-the-environment-123")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    app = create_app(instance_path=str(tmp_path / "instance"))
    assert app.config["HCP_WEBHOOK_SECRET"] == "from-the-environment-123"


def test_the_secret_is_write_only_encrypted_and_never_shown_or_logged(app, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    set_secret(admin_client, f"  {SECRET} ")
    pages = [page_text(admin_client.get(url)) for url in ("/admin/integration", "/admin/audit")]
    refused = admin_client.post("/admin/integration/webhook-secret", data={"secret": "a b c d e f"})
    pages.append(page_text(refused))
    assert refused.status_code == 400 and "has no spaces" in pages[-1]
    assert 'name="secret"' in pages[0] and "Stored (encrypted)" in pages[0]
    for html in pages:
        assert SECRET not in html
    assert SECRET not in caplog.text
    with app.app_context():
        raw = db.session.execute(text("SELECT webhook_secret_encrypted FROM hcp_connection"))
        token = raw.scalar_one()
    assert token and SECRET not in token


def test_rotating_the_encryption_key_re_encrypts_the_signing_secrets(app, client, admin_client):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app.config["ENCRYPTION_KEY"] = old
    set_secret(admin_client, "first-secret-0123456789")
    set_secret(admin_client, SECRET)  # the first one is now the previous one
    app.config["ENCRYPTION_KEY"] = f"{new},{old}"
    result = app.test_cli_runner().invoke(args=["rotate-encryption-key"])
    assert result.exit_code == 0 and "Re-encrypted 2 stored secrets" in result.output
    app.config["ENCRYPTION_KEY"] = new  # the old key is gone: both secrets still verify
    for n, value in enumerate((SECRET, "first-secret-0123456789")):
        body = envelope("job.updated", {**JOB, "n": n}, "2026-12-01T10:00:00Z")
        assert client.post("/hooks/hcp", data=body, headers=signed(body, value)).status_code == 200
    assert SECRET not in result.output


@pytest.mark.both_dbs
def test_an_event_for_a_record_we_did_not_create_is_kept_30_days_then_dropped(
    app, client, admin_client
):
    set_secret(admin_client)
    body = envelope("job.completed", {**JOB, "id": "job_not_ours"}, "2026-12-01T10:00:00Z")
    client.post("/hooks/hcp", data=body, headers=signed(body))
    (event,) = events(app)
    with app.app_context():
        assert tasks.apply_webhook_event(event.id) == "unmatched"
        kept = db.session.get(WebhookEvent, event.id)
        assert kept.body == body.decode()  # kept whole, for diagnosis
        assert tasks.housekeeping()["purged"] == 0
        db.session.execute(
            update(WebhookEvent).values(received_at=utcnow() - timedelta(days=30, minutes=1))
        )
        db.session.commit()
        assert tasks.housekeeping()["purged"] == 1
    assert stored(app) == 0


def register(sandbox: Any, url: str, **extra: Any) -> None:
    response = requests.post(
        f"{sandbox.url}/_sandbox/webhooks",
        json={"url": f"{url}/hooks/hcp", "secret": SECRET, **extra},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_the_sandbox_registers_only_an_url_that_answers_the_handshake(app, sandbox):
    refused = requests.post(
        f"{sandbox.url}/_sandbox/webhooks",
        json={"url": "http://127.0.0.1:9/hooks/hcp", "secret": SECRET},
        timeout=10,
    )
    assert refused.status_code == 422
    with served(app) as url:
        register(sandbox, url)
    assert stored(app) == 0  # the handshake stored nothing


def test_job_completed_and_invoice_paid_fill_the_fields_from_webhooks(
    app, admin_client, sandbox, start_worker
):
    set_secret(admin_client)
    job_id = sandbox_job(sandbox)
    sub_id = synced_submission(app, job_id)
    start_worker()
    with served(app) as url:
        register(sandbox, url)
        control = f"{sandbox.url}/_sandbox"
        requests.post(f"{control}/jobs/{job_id}/start", timeout=5).raise_for_status()
        requests.post(f"{control}/jobs/{job_id}/complete", timeout=5).raise_for_status()
        invoice = requests.post(
            f"{control}/jobs/{job_id}/invoices", json={"amount": 25000}, timeout=5
        ).json()
        requests.post(f"{control}/invoices/{invoice['id']}/pay", timeout=5).raise_for_status()
        wait_for(lambda: submission(app, sub_id).hcp_paid_at is not None, timeout=30)
    sub = submission(app, sub_id)
    assert (sub.hcp_status, sub.hcp_status_source) == ("completed", "webhook")
    assert sub.job_work_status == "complete unrated" and sub.hcp_completed_at is not None
    assert (sub.invoiced_cents, sub.paid_cents, sub.hcp_money_source) == (25000, 25000, "webhook")
    sent = deliveries(sandbox)
    assert [d["event"] for d in sent] == [
        "job.started", "job.completed", "invoice.created", "invoice.payment.succeeded",
        "invoice.paid", "job.paid",
    ]  # fmt: skip
    assert all(d["status"] == 200 and not d["violations"] for d in sent), sent
    wait_for(lambda: all(e.state in ("applied", "stale") for e in events(app)), timeout=20)
    assert all(e.body == "" for e in events(app))  # applied: no personal data kept
    page = page_text(admin_client.get(f"/admin/submissions/{sub_id}"))
    assert "Completed" in page and "$250.00" in page and "from a webhook" in page
    listed = page_text(admin_client.get("/admin/submissions?outcome=completed"))
    assert f"/admin/submissions/{sub_id}" in listed
    assert f"/admin/submissions/{sub_id}" not in page_text(
        admin_client.get("/admin/submissions?outcome=canceled")
    )


def test_out_of_order_and_repeated_deliveries_keep_the_newest_state(
    app, admin_client, sandbox, start_worker
):
    set_secret(admin_client)
    job_id = sandbox_job(sandbox)
    sub_id = synced_submission(app, job_id)
    start_worker()
    with served(app) as url:
        register(sandbox, url, hold=True)
        control = f"{sandbox.url}/_sandbox"
        requests.post(f"{control}/jobs/{job_id}/start", timeout=5).raise_for_status()
        time.sleep(0.01)
        requests.post(f"{control}/jobs/{job_id}/cancel", timeout=5).raise_for_status()
        released = requests.post(
            f"{control}/webhooks/release", json={"order": "reverse"}, timeout=5
        ).json()
        assert released["released"] == 2
        wait_for(lambda: all(d["status"] == 200 for d in deliveries(sandbox)), timeout=20)
        requests.post(f"{control}/webhooks/redeliver", json={"seq": 1}, timeout=5)
        wait_for(lambda: deliveries(sandbox)[0]["attempts"] == 2, timeout=20)
        wait_for(
            lambda: len(events(app)) == 2 and all(e.state != "received" for e in events(app)),
            timeout=30,
        )
    stored_events = events(app)
    assert [e.event for e in stored_events] == ["job.canceled", "job.started"]  # as received
    assert [e.state for e in stored_events] == ["applied", "stale"]
    sub = submission(app, sub_id)
    assert (sub.hcp_status, sub.hcp_status_source) == ("canceled", "webhook")
    assert sub.hcp_canceled_at is not None


def deliver_and_apply(app: Any, client: Any, event: str, record: dict, occurred: str) -> str:
    """Send one signed delivery, then run its apply job (called directly, as RQ would)."""
    body = envelope(event, record, occurred, "appointment" if ".appointment." in event else "")
    response = client.post("/hooks/hcp", data=body, headers=signed(body))
    assert response.status_code == 200
    with app.app_context():
        return tasks.apply_webhook_event(events(app)[-1].id)


def test_estimates_leads_appointments_and_our_marker_are_applied(app, client, admin_client):
    set_secret(admin_client)
    with app.app_context():
        estimate = make_submission(status=Status.SYNCED, hcp_estimate_id="csr_1")
        lead = make_submission(status=Status.SYNCED, hcp_lead_id="lea_1")
        job = make_submission(status=Status.SYNCED, hcp_job_id="job_booked")
        lost_job = make_submission(status=Status.SYNCED)  # its answer never reached us
        db.session.commit()
        ids = estimate.id, lead.id, job.id, lost_job.id
        marker = f"Web request {lost_job.reference} (hcpform ref {lost_job.reference})"
    option = {"id": "est_1", "approval_status": "approved", "total_amount": 90000}
    assert (
        deliver_and_apply(
            app,
            client,
            "estimate.option.approval_status_changed",
            {"id": "csr_1", "work_status": "scheduled", "options": [option]},
            "2026-12-01T10:00:00Z",
        )
        == "applied"
    )
    deliver_and_apply(
        app, client, "lead.lost", {"id": "lea_1", "status": "lost"}, "2026-12-01T10:00:00Z"
    )
    deliver_and_apply(
        app,
        client,
        "job.appointment.scheduled",
        {"id": "appt_1", "job_id": "job_booked", "start_time": "2026-12-02T15:00:00Z"},
        "2026-12-01T10:00:00Z",
    )
    deliver_and_apply(
        app,
        client,
        "job.started",
        {"id": "job_unknown_to_us", "work_status": "in progress", "notes": [{"content": marker}]},
        "2026-12-01T10:00:00Z",
    )
    statuses = [submission(app, i).hcp_status for i in ids]
    assert statuses == ["approved", "lost", "scheduled", "in_progress"]

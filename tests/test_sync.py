"""The sync against the real sandbox over HTTP: exactly one customer, address and job."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.jobs import sync_submission
from hcpform.models import HcpCall, Status, Submission
from hcpform.timeutil import utcnow
from tests.factories import make_submission
from tests.helpers import wait_for

pytestmark = pytest.mark.both_dbs


def state(sandbox: Any) -> dict[str, Any]:
    """Return the sandbox's records."""
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()


def faults(sandbox: Any, *rules: dict[str, Any], **rates: Any) -> None:
    """Script faults (rules are consumed in order) and/or set random fault rates."""
    body: dict[str, Any] = dict(rates)
    if rules:
        body["rules"] = list(rules)
    requests.post(f"{sandbox.url}/_sandbox/faults", json=body, timeout=5).raise_for_status()


def counts(sandbox: Any) -> tuple[int, int, int]:
    """Return how many customers, addresses and jobs the sandbox holds."""
    s = state(sandbox)["counts"]
    return s["customers"], s["addresses"], s["jobs"]


def run_until_done(sub_id: int, *, limit: int = 10) -> str:
    """Run the sync again and again (making retries due at once) until it stops retrying."""
    outcome = ""
    for _ in range(limit):
        outcome = sync_submission(sub_id)
        if outcome not in ("retry", "busy"):
            return outcome
        db.session.execute(
            Submission.__table__.update()
            .where(Submission.id == sub_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    return outcome


def test_new_customer_becomes_customer_address_and_job(app_ctx, sandbox):
    sub = make_submission(urgency="emergency", utm_source="google", utm_campaign="spring")
    db.session.commit()
    assert sync_submission(sub.id) == "synced"
    sub = db.session.get(Submission, sub.id)
    assert sub.status == Status.SYNCED
    assert sub.hcp_customer_id.startswith("cus_") and sub.hcp_address_id.startswith("adr_")
    assert sub.hcp_job_id.startswith("job_")
    assert sub.customer_matched_by == "created"
    assert counts(sandbox) == (1, 1, 1)
    job = state(sandbox)["jobs"][0]
    assert job["customer"]["id"] == sub.hcp_customer_id
    assert job["address"]["id"] == sub.hcp_address_id
    assert job["job_fields"]["job_type"]["name"] == "Drain cleaning"
    assert job["schedule"]["arrival_window"] == 180
    start = sub.scheduled_start.strftime("%Y-%m-%dT%H:%M")
    assert job["schedule"]["scheduled_start"].startswith(start)
    assert "Emergency" in job["tags"] and "Web request" in job["tags"]
    assert job["lead_source"] == "Google"  # the UTM source names an existing HCP lead source
    notes = " ".join(n["content"] for n in job["notes"])
    assert sub.reference in notes and "Kitchen sink" in notes and "spring" in notes
    customer = state(sandbox)["customers"][0]
    assert customer["mobile_number"] == "3125550142"
    calls = db.session.scalars(select(HcpCall).where(HcpCall.submission_id == sub.id)).all()
    assert [(c.method, c.path) for c in calls if c.method == "POST"] == [
        ("POST", "/customers"),
        ("POST", "/jobs"),
    ]


def test_a_preferred_time_becomes_an_unscheduled_job_with_the_preference_in_its_notes(
    app_ctx, sandbox
):
    sub = make_submission(schedule_kind="preference")
    db.session.commit()
    assert sync_submission(sub.id) == "synced"
    job = state(sandbox)["jobs"][0]
    assert not (job.get("schedule") or {}).get("scheduled_start")  # "needs scheduling" in HCP
    assert "Preferred time" in job["tags"]
    notes = " ".join(n["content"] for n in job["notes"])
    assert "Preferred: " in notes and "8–11 am" in notes and "confirm by phone" in notes


def test_returning_customer_by_phone_gets_a_second_job_on_the_same_records(app_ctx, sandbox):
    first = make_submission()
    db.session.commit()
    assert sync_submission(first.id) == "synced"
    second = make_submission(email="other@example.com", street="1234 North Clark Street")
    db.session.commit()
    assert sync_submission(second.id) == "synced"
    second = db.session.get(Submission, second.id)
    assert second.customer_matched_by == "phone"
    assert second.address_reused is True
    assert second.hcp_customer_id == db.session.get(Submission, first.id).hcp_customer_id
    assert counts(sandbox) == (1, 1, 2)


def test_returning_customer_by_email(app_ctx, sandbox):
    first = make_submission()
    db.session.commit()
    sync_submission(first.id)
    second = make_submission(phone="+13125550199", street="77 W Wacker Dr", zip="60601")
    db.session.commit()
    assert sync_submission(second.id) == "synced"
    second = db.session.get(Submission, second.id)
    assert second.customer_matched_by == "email"
    assert second.address_reused is False
    assert counts(sandbox) == (1, 2, 2)


def test_no_match_by_name_alone(app_ctx, sandbox):
    make_submission()
    db.session.commit()
    sync_submission(1)
    other = make_submission(phone="+13125550177", email="another.jane@example.com")
    db.session.commit()
    sync_submission(other.id)
    assert counts(sandbox)[0] == 2


def test_a_500_then_success_retries_without_duplicates(app_ctx, sandbox):
    sub = make_submission()
    db.session.commit()
    faults(sandbox, {"method": "POST", "path": "/jobs", "kind": "500"})
    assert sync_submission(sub.id) == "retry"
    sub = db.session.get(Submission, sub.id)
    assert sub.status == Status.PENDING and sub.next_attempt_at > utcnow()
    assert "500" in sub.last_error
    assert run_until_done(sub.id) == "synced"
    assert counts(sandbox) == (1, 1, 1)


def test_429_waits_at_least_retry_after(app_ctx, sandbox):
    sub = make_submission()
    db.session.commit()
    faults(sandbox, {"method": "POST", "path": "/customers", "kind": "429", "retry_after": "3"})
    before = utcnow()
    assert sync_submission(sub.id) == "retry"
    sub = db.session.get(Submission, sub.id)
    assert sub.next_attempt_at - before >= timedelta(seconds=3)
    # Not due yet: a duplicate delivery does nothing.
    assert sync_submission(sub.id) == "busy"
    due = sub.next_attempt_at
    wait_for(lambda: utcnow() >= due, timeout=10)  # HCP's pause is over when the retry is due
    assert sync_submission(sub.id) == "synced"
    assert counts(sandbox) == (1, 1, 1)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/customers", "timeout"),
        ("/customers/{customer_id}/addresses", "timeout"),
        ("/jobs", "timeout"),
        ("/customers", "commit_then_500"),
        ("/customers/{customer_id}/addresses", "commit_then_500"),
        ("/jobs", "commit_then_500"),
        ("/customers", "commit_then_drop"),
        ("/customers/{customer_id}/addresses", "commit_then_drop"),
        ("/jobs", "commit_then_drop"),
    ],
)
def test_lost_answers_on_each_create_still_make_exactly_one(app_ctx, sandbox, path, kind):
    if "addresses" in path:  # make the address step send a POST: a known customer, a new street
        first = make_submission(street="9 Elm St")
        db.session.commit()
        assert sync_submission(first.id) == "synced"
    sub = make_submission()
    db.session.commit()
    faults(sandbox, {"method": "POST", "path": path, "kind": kind, "seconds": 3})
    assert run_until_done(sub.id) == "synced"
    expected = (1, 2, 2) if "addresses" in path else (1, 1, 1)
    assert counts(sandbox) == expected
    sub = db.session.get(Submission, sub.id)
    assert sub.attempts >= 2


def test_422_fails_with_hcps_message(app_ctx, sandbox):
    sub = make_submission()
    db.session.commit()
    faults(sandbox, {"method": "POST", "path": "/jobs", "kind": "422"})
    assert sync_submission(sub.id) == "failed"
    sub = db.session.get(Submission, sub.id)
    assert sub.status == Status.FAILED and sub.last_error_code == 422
    assert "HCP answered 422" in sub.last_error and len(sub.last_error) > len("HCP answered 422: ")
    assert sync_submission(sub.id) == "skipped (failed)"


def test_missing_job_type_is_a_clear_failure(app_ctx, sandbox):
    sub = make_submission(service_type="Roof repair")
    db.session.commit()
    assert sync_submission(sub.id) == "failed"
    sub = db.session.get(Submission, sub.id)
    assert "No HCP job type matches the service type 'Roof repair'" in sub.last_error
    assert counts(sandbox) == (0, 0, 0)


def test_missing_mapping_fails_with_the_seed_words(app_ctx, sandbox):
    sub = make_submission()
    form = sub.form
    definition = copy.deepcopy(form.definition)
    for step in definition["steps"]:
        for field in step["fields"]:
            if field["hcp_key"] in ("customer_email", "city"):
                field["hcp_key"] = None
    form.definition = definition
    db.session.commit()
    assert sync_submission(sub.id) == "failed"
    assert db.session.get(Submission, sub.id).last_error == (
        "Missing required HousecallPro mappings: customer_email, city"
    )


def test_401_pauses_everything_until_a_good_connection_test(app_ctx, sandbox):
    from hcpform.connection import connection_row, test_connection
    from hcpform.jobs import resume_waiting

    requests.post(f"{sandbox.url}/_sandbox/keys", json={"valid": ["a-new-key"]}, timeout=5)
    first = make_submission()
    second = make_submission(phone="+13125550111", email="b@example.com")
    db.session.commit()
    assert sync_submission(first.id) == "waiting"
    assert connection_row().state == "disconnected"
    calls_before = db.session.query(HcpCall).count()
    assert sync_submission(second.id) == "waiting"
    assert db.session.query(HcpCall).count() == calls_before  # the open circuit calls nobody
    assert db.session.get(Submission, second.id).status == Status.WAITING
    assert "Waiting for the HCP connection" in db.session.get(Submission, second.id).last_error
    ok, message = test_connection()
    assert not ok and "401" in message
    requests.post(f"{sandbox.url}/_sandbox/keys", json={"valid": ["sandbox-key"]}, timeout=5)
    ok, _ = test_connection()
    assert ok and connection_row().state == "connected"
    assert resume_waiting() == 2
    assert sync_submission(first.id) == "synced"
    assert sync_submission(second.id) == "synced"
    assert counts(sandbox) == (2, 2, 2)


def test_paused_sync_keeps_submissions_waiting(app_ctx, sandbox):
    from hcpform.connection import connection_row

    conn = connection_row()
    conn.paused = True
    sub = make_submission()
    db.session.commit()
    assert sync_submission(sub.id) == "waiting"
    assert "paused" in db.session.get(Submission, sub.id).last_error
    assert counts(sandbox) == (0, 0, 0)


def test_rerun_after_success_makes_no_calls(app_ctx, sandbox):
    sub = make_submission()
    db.session.commit()
    sync_submission(sub.id)
    calls = db.session.query(HcpCall).count()
    assert sync_submission(sub.id) == "skipped (synced)"
    assert db.session.query(HcpCall).count() == calls


def test_claim_lets_only_one_run_in(app_ctx, sandbox):
    from hcpform.sync import claim

    sub = make_submission()
    db.session.commit()
    now = utcnow()
    assert claim(sub.id, now=now) is not None
    assert claim(sub.id, now=now) is None  # a second delivery while the lease holds
    assert sync_submission(sub.id) == "busy"
    # Once the lease has run out (the worker died), the next run takes it over.
    later = now + timedelta(seconds=app_ctx.config["SYNC_LEASE_SECONDS"] + 1)
    assert claim(sub.id, now=later) is not None


def test_calls_are_recorded_with_pii_redacted(app_ctx, sandbox):
    sub = make_submission()
    db.session.commit()
    faults(sandbox, {"method": "POST", "path": "/jobs", "kind": "422"})
    sync_submission(sub.id)
    rows = db.session.scalars(select(HcpCall)).all()
    assert {r.path for r in rows} >= {"/customers", "/jobs"}
    assert all(r.duration_ms >= 0 and r.attempt == 1 for r in rows)
    text = " ".join(f"{r.path} {r.message}" for r in rows)
    for secret in ("3125550142", "jane.doe@example.com", "1234 N Clark", "sandbox-key"):
        assert secret not in text


def test_backoff_is_capped_full_jitter_and_honours_retry_after(app_ctx):
    from hcpform.sync import backoff_seconds

    cap = app_ctx.config["SYNC_RETRY_CAP_SECONDS"]
    for attempts in range(1, 30):
        delay = backoff_seconds(attempts)
        assert 1.0 <= delay <= max(1.0, cap)
    assert backoff_seconds(1, retry_after=1.5) >= 1.5
    assert backoff_seconds(1, retry_after=10_000) <= app_ctx.config["SYNC_RETRY_AFTER_MAX_SECONDS"]


def test_retry_window_ends_in_failed(app_ctx, sandbox):
    sub = make_submission()
    sub.first_failure_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    faults(sandbox, {"method": "GET", "path": "/customers", "kind": "503"})
    assert sync_submission(sub.id) == "failed", requests.get(
        f"{sandbox.url}/_sandbox/requests"
    ).json()
    assert "kept failing" in db.session.get(Submission, sub.id).last_error

"""Submissions in the admin: filters, search, pages, CSV export, detail and actions."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from hcpform.extensions import db
from hcpform.models import AuditEntry, Draft, HcpCall, Status, Submission, SyncAttempt
from hcpform.timeutil import utcnow
from tests.admin_helpers import make_submission, text

pytest_plugins = ["tests.admin_fixtures"]


def queued_ids(app: Any) -> list[int]:
    """Return the submission ids waiting in the sync queue."""
    from hcpform.jobs import get_queue

    with app.app_context():
        return [job.args[0] for job in get_queue().get_jobs()]


def refs_in(page: str) -> set[str]:
    import re

    return set(re.findall(r">(HCP-[0-9A-Z]{5})</a>", page))


@pytest.fixture
def mixed(app):
    """Five submissions that differ in every filtered column; returns their references."""
    with app.app_context():
        rows = {
            "a": make_submission(reference="HCP-AAAAA", status="failed", urgency="emergency"),
            "b": make_submission(
                reference="HCP-BBBBB",
                status="synced",
                first_name="Bob",
                last_name="Stone",
                phone="+17735550199",
                email="bob@stone.example",
                service_type="Water heater",
                customer_type="commercial",
            ),
            "c": make_submission(
                reference="HCP-CCCCC", status="pending", created_at=utcnow() - timedelta(days=10)
            ),
            "d": make_submission(reference="HCP-DDDDD", status="quarantined", first_name="Ann"),
            "e": make_submission(reference="HCP-EEEEE", status="waiting", urgency="flexible"),
        }
        db.session.commit()
        return {k: v.reference for k, v in rows.items()}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", {"HCP-AAAAA"}),
        ("service_type=Water+heater", {"HCP-BBBBB"}),
        ("urgency=emergency", {"HCP-AAAAA"}),
        ("customer_type=commercial", {"HCP-BBBBB"}),
        ("form=service-request&status=waiting", {"HCP-EEEEE"}),
        ("q=hcp-ccccc", {"HCP-CCCCC"}),
        ("q=%28773%29+555-0199", {"HCP-BBBBB"}),  # typed as people type it, found by E.164
        ("q=BOB%40stone.example", {"HCP-BBBBB"}),
        ("q=stone.example", set()),  # a name search: nobody is called that
        ("q=%40stone", {"HCP-BBBBB"}),  # part of an email
        ("q=ann+doe", {"HCP-DDDDD"}),
        ("q=0199", {"HCP-BBBBB"}),  # the end of a phone number
        ("status=nonsense", {"HCP-AAAAA", "HCP-BBBBB", "HCP-CCCCC", "HCP-DDDDD", "HCP-EEEEE"}),
    ],
)
def test_filters_and_search(admin_client, mixed, query, expected):
    page = text(admin_client.get(f"/admin/submissions?{query}"))
    assert refs_in(page) == expected


def test_date_range_filter_uses_whole_days(admin_client, mixed):
    today = utcnow().date()
    old = (today - timedelta(days=10)).isoformat()
    page = text(admin_client.get(f"/admin/submissions?date_from={old}&date_to={old}"))
    assert refs_in(page) == {"HCP-CCCCC"}
    page = text(
        admin_client.get(f"/admin/submissions?date_from={(today - timedelta(days=2)).isoformat()}")
    )
    assert "HCP-CCCCC" not in refs_in(page) and len(refs_in(page)) == 4


def test_pages_are_bounded(app, admin_client):
    with app.app_context():
        for _ in range(55):
            make_submission()
        db.session.commit()
    first = text(admin_client.get("/admin/submissions"))
    assert len(refs_in(first)) == 50 and "Page 1 of 2" in first
    assert len(refs_in(text(admin_client.get("/admin/submissions?page=2")))) == 5
    far = admin_client.get("/admin/submissions?page=999")
    assert far.status_code == 200 and refs_in(text(far)) == set()
    assert admin_client.get("/admin/submissions?page=-4").status_code == 200
    assert admin_client.get("/admin/submissions?per_page=100000").status_code == 200


def test_csv_export_of_the_filtered_list_neutralises_formulas(app, admin_client):
    with app.app_context():
        make_submission(
            reference="HCP-FFFFF",
            status="failed",
            first_name='=HYPERLINK("http://evil")',
            last_name="-2+3",
            company="@SUM(A1)",
            description="\tTabbed",
            special_instructions="\rcarriage",
        )
        make_submission(reference="HCP-GGGGG", status="synced")
        db.session.commit()
    response = admin_client.get("/admin/submissions.csv?status=failed")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text(response))))
    assert [r["reference"] for r in rows] == ["HCP-FFFFF"]
    row = rows[0]
    assert row["first_name"] == '\'=HYPERLINK("http://evil")'
    assert row["last_name"] == "'-2+3"
    assert row["company"] == "'@SUM(A1)"
    assert row["description"] == "'\tTabbed"
    assert row["special_instructions"].startswith("'")
    assert row["phone"] == "'+13125550142"  # a leading + is a formula too
    assert row["email"] == "jane.doe@example.com"
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "export"))
        assert entry.target == "submissions CSV" and "status=failed" in entry.detail


def test_detail_shows_answers_attribution_timeline_and_hcp_links(app, admin_client):
    app.config["HCP_WEB_URL"] = "https://pro.example/app"
    with app.app_context():
        sub = make_submission(
            status="synced",
            hcp_customer_id="cus_123",
            hcp_job_id="job_456",
            customer_matched_by="phone",
            utm_source="google",
            utm_campaign="spring<sale>",
            answers={"booking_time": "08-11", "urgency": "soon", "customer_fname": "Jane"},
            booking_window="08-11",
        )
        started = utcnow() - timedelta(minutes=5)
        db.session.add(
            SyncAttempt(
                submission_id=sub.id,
                number=1,
                started_at=started,
                finished_at=started + timedelta(seconds=2),
                outcome="synced",
                message="Job job_456 created in HCP",
                worker="host:1",
            )
        )
        db.session.add(
            HcpCall(
                submission_id=sub.id,
                method="POST",
                path="/jobs",
                status=503,
                ok=False,
                duration_ms=812,
                message="Service unavailable",
                created_at=started + timedelta(seconds=1),
            )
        )
        db.session.commit()
        sub_id = sub.id
    page = text(admin_client.get(f"/admin/submissions/{sub_id}"))
    assert 'href="https://pro.example/app/customers/cus_123"' in page
    assert 'href="https://pro.example/app/jobs/job_456"' in page
    assert "matched by phone" in page
    assert "8–11 am" in page  # the answer with its option label
    assert "Soon – within the next few days" in page
    assert "google" in page and "spring&lt;sale&gt;" in page  # escaped, never raw
    assert "Attempt 1 on host:1" in page and "Job job_456 created in HCP" in page
    assert "POST /jobs" in page and "503" in page and "812 ms" in page
    assert "Service unavailable" in page
    assert admin_client.get("/admin/submissions/999999").status_code == 404


def test_retry_now_resets_the_sync_state_and_enqueues(app, admin_client):
    with app.app_context():
        sub = make_submission(
            status="failed",
            next_attempt_at=utcnow(),
            first_failure_at=utcnow() - timedelta(hours=30),
            lease_token="abc",
            lease_until=utcnow(),
            last_error="HCP answered 422",
        )
        db.session.commit()
        sub_id = sub.id
    response = admin_client.post(f"/admin/submissions/{sub_id}/retry")
    assert response.status_code == 303
    with app.app_context():
        sub = db.session.get(Submission, sub_id)
        assert sub.status == Status.PENDING
        assert sub.next_attempt_at is None and sub.first_failure_at is None
        assert sub.lease_token is None and sub.lease_until is None
        assert sub.enqueued_at is not None
    assert queued_ids(app) == [sub_id]
    assert "is queued" in text(admin_client.get(f"/admin/submissions/{sub_id}"))


def test_retry_is_refused_for_a_synced_submission(app, admin_client):
    with app.app_context():
        sub_id = make_submission(status="synced").id
        db.session.commit()
    admin_client.post(f"/admin/submissions/{sub_id}/retry")
    assert "cannot be retried" in text(admin_client.get(f"/admin/submissions/{sub_id}"))
    assert queued_ids(app) == []


def test_mark_handled_manually_needs_a_note(app, admin_client):
    with app.app_context():
        sub_id = make_submission(status="failed").id
        db.session.commit()
    admin_client.post(f"/admin/submissions/{sub_id}/manual", data={"note": " "})
    with app.app_context():
        assert db.session.get(Submission, sub_id).status == Status.FAILED
    admin_client.post(f"/admin/submissions/{sub_id}/manual", data={"note": "Booked by phone"})
    with app.app_context():
        sub = db.session.get(Submission, sub_id)
        assert (sub.status, sub.manual_note) == (Status.MANUAL, "Booked by phone")
        actions = list(db.session.scalars(select(AuditEntry.action)))
        assert actions == ["manual"]


def test_release_and_delete_only_work_on_quarantined_submissions(app, admin_client):
    with app.app_context():
        spam = make_submission(status="quarantined", spam_reason="hidden field filled in")
        draft = Draft(
            token="t" * 20,
            form_id=spam.form_id,
            answers={},
            started_at=utcnow(),
            expires_at=utcnow() + timedelta(days=1),
        )
        db.session.add(draft)
        db.session.flush()
        spam.draft_id = draft.id
        db.session.add(SyncAttempt(submission_id=spam.id, number=1, outcome="x"))
        kept = make_submission(status="quarantined")
        pending = make_submission(status="pending")
        db.session.commit()
        spam_id, kept_id, pending_id = spam.id, kept.id, pending.id
    # Release: quarantined → pending, enqueued.
    admin_client.post(f"/admin/submissions/{kept_id}/release")
    assert queued_ids(app) == [kept_id]
    admin_client.post(f"/admin/submissions/{pending_id}/release")
    assert "Only a quarantined submission can be released." in text(
        admin_client.get(f"/admin/submissions/{pending_id}")
    )
    # Delete: only quarantined; the draft and sync records go with it.
    admin_client.post(f"/admin/submissions/{pending_id}/delete")
    response = admin_client.post(f"/admin/submissions/{spam_id}/delete")
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(Submission, spam_id) is None
        assert db.session.get(Submission, pending_id) is not None
        assert db.session.get(Submission, kept_id).status == Status.PENDING
        assert db.session.scalar(select(func.count()).select_from(Draft)) == 0
        assert db.session.scalar(select(func.count()).select_from(SyncAttempt)) == 0
        actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions == ["release", "delete"]


def test_bulk_retry_of_all_failed_and_of_ticked_ones(app, admin_client):
    with app.app_context():
        failed = [make_submission(status="failed").id for _ in range(3)]
        waiting = make_submission(status="waiting").id
        synced = make_submission(status="synced").id
        db.session.commit()
    page = text(admin_client.get("/admin/submissions"))
    assert "Retry all failed (3)" in page
    admin_client.post("/admin/submissions/retry", data={"all_failed": "1"})
    assert sorted(queued_ids(app)) == sorted(failed)
    admin_client.post("/admin/submissions/retry", data={"ids": [str(waiting), str(synced)]})
    assert sorted(queued_ids(app)) == sorted([*failed, waiting])  # synced is left alone
    with app.app_context():
        assert db.session.get(Submission, synced).status == Status.SYNCED
        details = list(db.session.scalars(select(AuditEntry.detail).order_by(AuditEntry.id)))
        assert details == ["all failed", f"ids {waiting}"]


def test_a_page_number_too_big_for_a_float_is_ignored(admin_client):
    # WTForms' NumberRange compares through float(): 10**400 overflowed into a 500.
    response = admin_client.get("/admin/submissions", query_string={"page": "9" * 400})
    assert response.status_code == 200

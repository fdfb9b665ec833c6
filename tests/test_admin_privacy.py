"""Privacy requests (find, export, erase a person's data) and the audit log."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from hcpform.extensions import db
from hcpform.models import AuditEntry, Draft, HcpCall, OutOfAreaRequest, Status, Submission
from hcpform.timeutil import utcnow
from tests.admin_helpers import ADMIN_EMAIL, make_submission, text

pytest_plugins = ["tests.admin_fixtures"]

EMAIL = "Jane.Doe@Example.com"


def seed_person(app):
    """Jane's data everywhere, plus someone else's that must stay untouched."""
    with app.app_context():
        form_id = make_submission().form_id  # a first synced submission of Jane
        db.session.rollback()
        now = utcnow()

        def draft(answers, lookup=None):
            row = Draft(
                token=f"tok{len(answers)}{now.timestamp()}{answers.get('customer_fname', '')}",
                form_id=form_id,
                answers=answers,
                lookup=lookup or {},
                started_at=now,
                expires_at=now + timedelta(days=7),
            )
            db.session.add(row)
            db.session.flush()
            return row

        jane_draft = draft({"customer_email": "jane.doe@example.com", "customer_fname": "Jane"})
        synced = make_submission(
            status="synced", hcp_customer_id="cus_jane", hcp_job_id="job_1", draft_id=jane_draft.id
        )
        pending = make_submission(
            status="pending", email="JANE.DOE@example.com", phone="+13125550100"
        )
        draft({"customer_phone": "+13125550142", "customer_fname": "J"})  # unfinished, by phone
        draft({"zip": "60614"}, lookup={"phone": "+13125550142"})  # only the phone lookup
        other_draft = draft({"customer_email": "bob@example.com", "customer_fname": "Bob"})
        other = make_submission(
            first_name="Bob", email="bob@example.com", phone="+17735550199", draft_id=other_draft.id
        )
        db.session.add(OutOfAreaRequest(form_id=form_id, zip="10001", email="jane.doe@example.com"))
        db.session.add(OutOfAreaRequest(form_id=form_id, zip="10002", email="bob@example.com"))
        for sub in (synced, other):
            db.session.add(
                HcpCall(
                    submission_id=sub.id,
                    method="POST",
                    path="/customers",
                    status=201,
                    ok=True,
                    message=f"created for {sub.first_name}",
                )
            )
        db.session.commit()
        return {"synced": synced.id, "pending": pending.id, "other": other.id}


def test_find_by_email_or_phone_shows_what_is_stored(app, admin_client):
    seed_person(app)
    page = text(admin_client.post("/admin/privacy", data={"who": EMAIL}))
    assert "2 submitted request(s)" in page
    assert "1 form(s) in progress or finished" in page
    assert "1 out-of-area request(s)" in page
    assert "customer cus_jane" in page
    page = text(admin_client.post("/admin/privacy", data={"who": "(312) 555-0142"}))
    assert "1 submitted request(s)" in page  # the pending one used another phone
    assert "3 form(s) in progress or finished" in page
    page = text(admin_client.post("/admin/privacy", data={"who": "nobody@example.com"}))
    assert "Nothing is stored about this person." in page
    response = admin_client.post("/admin/privacy", data={"who": "not a person"})
    assert response.status_code == 400
    assert "Enter an email address or a phone number." in text(response)
    # The page says plainly that Housecall Pro's copy is not deleted by us.
    assert "does\nnot delete anything in Housecall Pro" in text(admin_client.get("/admin/privacy"))


def test_export_gives_everything_as_json_and_is_audited(app, admin_client):
    ids = seed_person(app)
    response = admin_client.post("/admin/privacy/export", data={"who": EMAIL})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "jane" not in response.headers["Content-Disposition"].lower()
    data = json.loads(response.get_data())
    assert {s["id"] for s in data["submissions"]} == {ids["synced"], ids["pending"]}
    assert all("token" not in d for d in data["drafts"])
    assert [d["answers"]["customer_fname"] for d in data["drafts"]] == ["Jane"]
    assert [o["zip"] for o in data["out_of_area_requests"]] == ["10001"]
    assert [c["message"] for c in data["hcp_calls"]] == ["created for Jane"]
    assert "Housecall Pro holds its own copy" in data["note"]
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "export"))
        assert entry.target.startswith("person sha256:")
        assert "jane" not in (entry.target + entry.detail).lower()
        assert entry.admin_email == ADMIN_EMAIL


def test_erase_needs_confirmation(app, admin_client):
    ids = seed_person(app)
    response = admin_client.post("/admin/privacy/erase", data={"who": EMAIL})
    assert response.status_code == 400
    assert "Tick the box to confirm" in text(response)
    with app.app_context():
        assert db.session.get(Submission, ids["synced"]).first_name == "Jane"


def test_erase_anonymises_submissions_and_deletes_drafts_and_out_of_area(app, admin_client):
    ids = seed_person(app)
    response = admin_client.post("/admin/privacy/erase", data={"who": EMAIL, "confirm": "y"})
    assert response.status_code == 200
    page = text(response)
    assert "2 submitted request(s) anonymised" in page
    assert "We do not delete\nrecords in Housecall Pro" in page
    assert "/customers/cus_jane" in page
    with app.app_context():
        for key in ("synced", "pending"):
            sub = db.session.get(Submission, ids[key])
            assert (sub.first_name, sub.last_name) == ("Erased", "Erased")
            assert (sub.email, sub.phone, sub.street, sub.description) == ("", "", "", "")
            assert sub.answers == {}
        synced = db.session.get(Submission, ids["synced"])
        assert synced.status == Status.SYNCED and synced.hcp_job_id == "job_1"
        # Not yet sent: it never will be, with erased data.
        assert db.session.get(Submission, ids["pending"]).status == Status.MANUAL
        other = db.session.get(Submission, ids["other"])
        assert (other.first_name, other.email) == ("Bob", "bob@example.com")
        drafts = db.session.scalars(select(Draft)).all()
        assert [d.answers.get("customer_fname") for d in drafts] == ["J", None, "Bob"]
        assert db.session.scalars(select(OutOfAreaRequest.email)).all() == ["bob@example.com"]
        messages = dict(db.session.execute(select(HcpCall.submission_id, HcpCall.message)).all())
        assert messages == {ids["synced"]: "", ids["other"]: "created for Bob"}
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "erase"))
        assert entry.target.startswith("person sha256:") and "jane" not in entry.detail.lower()
    # Found again by email: nothing is left.
    page = text(admin_client.post("/admin/privacy", data={"who": EMAIL}))
    assert "Nothing is stored about this person." in page


def test_erase_by_phone_removes_drafts_that_only_hold_the_phone(app, admin_client):
    seed_person(app)
    admin_client.post("/admin/privacy/erase", data={"who": "312-555-0142", "confirm": "y"})
    with app.app_context():
        names = [d.answers.get("customer_fname") for d in db.session.scalars(select(Draft))]
        assert names == ["Bob"]
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 3


def test_audit_log_lists_actions_and_cannot_be_changed(app, admin_client):
    seed_person(app)
    admin_client.post("/admin/privacy", data={"who": EMAIL})
    admin_client.post("/admin/integration/pause")
    page = text(admin_client.get("/admin/audit"))
    assert "privacy search" in page and "pause" in page and ADMIN_EMAIL in page
    assert "127.0.0.1" in page
    filtered = text(admin_client.get("/admin/audit?action=pause"))
    assert "<td>pause</td>" in filtered and "<td>privacy search</td>" not in filtered
    # No route writes to the audit log except by doing an action: no edit, no delete.
    audit_rules = [r for r in app.url_map.iter_rules() if "audit" in r.rule]
    assert [(r.rule, sorted(r.methods - {"HEAD", "OPTIONS"})) for r in audit_rules] == [
        ("/admin/audit", ["GET"])
    ]
    assert admin_client.post("/admin/audit").status_code == 405

"""Abandoned requests: consent, detection and timing, the admin list, the resume link, the lead
sent to HCP exactly once (across a worker killed mid-send), submissions after it, and erasure."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from hcpform import abandoned, periodic
from hcpform.extensions import db
from hcpform.models import AbandonedRequest, Draft, Form, Submission
from hcpform.timeutil import utcnow
from tests.admin_helpers import text
from tests.helpers import Wizard, person, set_form, step_data, wait_for

pytest_plugins = ["tests.admin_fixtures"]

STEPS = ("location", "service", "description", "contact", "classification", "schedule")


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Short HCP timeouts and lease, so a killed worker's claim runs out within the test."""
    return {
        **settings,
        "HCP_CONNECT_TIMEOUT": 0.2,
        "HCP_READ_TIMEOUT": 1.5,
        "SYNC_RATE_LIMIT_WAIT_SECONDS": 0.1,
        "SYNC_JOB_TIMEOUT": 18,  # 10 calls x 1.8 s
        "SYNC_LEASE_SECONDS": 20,
        "ABANDONED_SWEEP_SECONDS": 1,
        "PUBLIC_URL": "https://forms.example.com",
        "HCP_HEALTH_CHECK_MINUTES": 600,  # out of the way here (tests/test_health_check.py)
    }


def walk(client: Any, *, upto: str = "contact", consent: bool = True, **answers: str) -> str:
    """Walk the wizard through `upto` (ticking the contact consent); return the draft token."""
    wizard = Wizard(client)
    data = person(**answers)
    wizard.open()
    for step in STEPS:
        extra = {"contact_consent": "y"} if step == "contact" and consent else {}
        response = wizard.post({**step_data(wizard.page, step, data), **extra})
        assert response.status_code == 200, (step, wizard.page[:500])
        if step == upto:
            break
    assert wizard.token
    return wizard.token


def age(app: Any, token: str, minutes: float) -> None:
    """Make a draft's last activity `minutes` ago (as if the person left then)."""
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == token))
        draft.updated_at = utcnow() - timedelta(minutes=minutes)
        db.session.commit()


def row_of(app: Any, token: str) -> AbandonedRequest | None:
    """Return the abandoned request of a draft (detached), or None."""
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == token))
        row = db.session.scalar(
            select(AbandonedRequest).where(AbandonedRequest.draft_id == draft.id)
        )
        if row is not None:
            db.session.expunge(row)
        return row


def sweep(app: Any) -> dict[str, int]:
    """Run the periodic abandoned-request job in this process (as a worker would)."""
    with app.app_context():
        return periodic.abandoned_sweep()


def leads_in(sandbox: Any) -> list[dict[str, Any]]:
    """Return the sandbox's leads (with their notes)."""
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=10).json()["leads"]


def test_contact_step_asks_consent_unticked_and_the_draft_keeps_it(app, client):
    wizard = Wizard(client)
    wizard.open()
    data = person()
    for step in ("location", "service", "description"):
        wizard.post(data[step])
    assert 'name="contact_consent"' in wizard.page
    assert "If I don&#39;t finish this request, you may contact me about it" in wizard.page
    assert 'name="contact_consent" value="y" >' in wizard.page  # not ticked
    wizard.post(data["contact"])  # left unticked
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        assert draft.contact_consent_at is None
    wizard.open(f"/f/service-request/contact?d={wizard.token}")
    wizard.post({**data["contact"], "contact_consent": "y"})
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        assert draft.contact_consent_at is not None
    wizard.open(f"/f/service-request/contact?d={wizard.token}")
    assert 'name="contact_consent" value="y" checked' in wizard.page  # kept on the way back


def test_detection_waits_for_the_forms_idle_time_and_needs_consent(app, client):
    with_consent = walk(client)
    without = walk(app.test_client(), consent=False)
    age(app, with_consent, 59)
    age(app, without, 600)
    assert sweep(app)["abandoned"] == 0  # 59 minutes: not yet (the default is 60)
    assert row_of(app, with_consent) is None
    age(app, with_consent, 61)
    with app.app_context():
        before = db.session.scalar(select(Draft).where(Draft.token == with_consent))
        last_activity = before.updated_at
    assert sweep(app)["abandoned"] == 1
    assert row_of(app, with_consent) is not None
    assert row_of(app, without) is None  # no consent: never
    assert sweep(app)["abandoned"] == 0  # once
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == with_consent))
        assert draft.updated_at == last_activity  # the sweep is no activity
        assert draft.expires_at >= last_activity + timedelta(days=30) - timedelta(seconds=1)
    # A form's own idle time: 10 minutes.
    set_form(app, abandoned_after_minutes=10)
    third = walk(app.test_client())
    age(app, third, 11)
    assert sweep(app)["abandoned"] == 1


def test_a_submitted_draft_is_never_abandoned(app, client):
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in STEPS:
        extra = {"contact_consent": "y"} if step == "contact" else {}
        wizard.post({**step_data(wizard.page, step, answers), **extra})
    wizard.post({})
    assert "Request sent" in wizard.page
    age(app, wizard.token, 120)
    assert sweep(app)["abandoned"] == 0


def test_admin_lists_them_with_step_age_service_zip_and_masked_contact(app, client, admin_client):
    token = walk(client, upto="classification")
    age(app, token, 90)
    sweep(app)
    page = text(admin_client.get("/admin/abandoned"))
    assert "Step 6 of 6: Pick a time" in page
    assert "1 h ago" in page
    assert "Drain cleaning" in page and "60614" in page
    assert "(312) 555-0142" not in page and "+13125550142" not in page
    assert "jane.doe@example.com" not in page and "j***@example.com" in page
    row = row_of(app, token)
    assert f"/f/service-request/resume/{row.resume_token}" in page
    assert "Not sent (off for this form)" in page
    # The settings: 30 minutes and "send to HCP", saved and audited.
    with app.app_context():
        form_id = db.session.scalar(select(Form.id).where(Form.slug == "service-request"))
    response = admin_client.post(
        f"/admin/abandoned/settings/{form_id}",
        data={f"f{form_id}-abandoned_after_minutes": "30", f"f{form_id}-abandoned_to_hcp": "y"},
    )
    assert response.status_code == 303
    with app.app_context():
        form = db.session.get(Form, form_id)
        assert (form.abandoned_after_minutes, form.abandoned_to_hcp) == (30, True)
    bad = admin_client.post(
        f"/admin/abandoned/settings/{form_id}",
        data={f"f{form_id}-abandoned_after_minutes": "abc"},
        follow_redirects=True,
    )
    assert "Enter a number of minutes from 5 to 10080" in text(bad)


def test_the_resume_link_opens_the_furthest_step_with_the_answers(app, client):
    token = walk(client, upto="contact")
    age(app, token, 61)
    sweep(app)
    row = row_of(app, token)
    assert row.resume_token != token  # its own token, not the draft's
    stranger = app.test_client()  # another browser: no cookie
    response = stranger.get(f"/f/service-request/resume/{row.resume_token}")
    assert response.status_code == 302
    assert "/f/service-request/classification" in response.headers["Location"]
    page = text(stranger.get(f"/f/service-request/contact?d={token}"))
    assert "Jane" in page and "1234 N Clark St" in page
    # The hosted site remembers it: the form's start page resumes too.
    assert "classification" in stranger.get("/f/service-request/").headers["Location"]


@pytest.mark.parametrize("case", ["wrong", "draft token", "expired", "other form"])
def test_a_wrong_or_expired_resume_link_gets_a_kind_page(app, client, case):
    token = walk(client)
    age(app, token, 61)
    sweep(app)
    row = row_of(app, token)
    link = f"/f/service-request/resume/{row.resume_token}"
    if case == "wrong":
        link = "/f/service-request/resume/not-a-real-token-at-all"
    elif case == "draft token":
        link = f"/f/service-request/resume/{token}"
    elif case == "expired":
        with app.app_context():
            draft = db.session.get(Draft, row.draft_id)
            draft.expires_at = utcnow() - timedelta(seconds=1)
            db.session.commit()
    elif case == "other form":
        with app.app_context():
            from hcpform.database import create_form_from_template

            create_form_from_template("other", "Other")
            db.session.commit()
        link = f"/f/other/resume/{row.resume_token}"
    response = app.test_client().get(link)
    assert response.status_code == 404
    page = text(response)
    assert "This link has expired" in page and "Start a new request" in page
    assert app.test_client().get("/f/service-request/resume/%00%ff").status_code == 404


def test_the_lead_is_sent_once_with_the_tag_note_and_resume_link(app, client, sandbox):
    set_form(app, abandoned_to_hcp=True)
    token = walk(client, upto="classification", utm_source="google")
    age(app, token, 61)
    counts = sweep(app)
    assert counts == {"abandoned": 1, "erased": 0, "leads": 1}
    row = row_of(app, token)
    assert row.lead_state == "sent" and row.hcp_lead_id
    leads = leads_in(sandbox)
    assert [lead["id"] for lead in leads] == [row.hcp_lead_id]
    lead = leads[0]
    assert "web-abandoned" in lead["tags"]
    assert lead["customer"]["id"] == row.hcp_customer_id
    assert f"https://forms.example.com/f/service-request/resume/{row.resume_token}" in lead["note"]
    assert "step 6 of 6 (Pick a time)" in lead["note"]
    assert "Type of service: Drain cleaning" in lead["note"]
    for _ in range(2):  # later sweeps send nothing again
        assert sweep(app)["leads"] == 0
    assert len(leads_in(sandbox)) == 1


def test_a_draft_submitted_before_the_sweep_gets_no_lead(app, client, sandbox, admin_client):
    token = walk(client, upto="classification")
    age(app, token, 61)
    sweep(app)  # listed while the setting is off
    wizard = Wizard(client)
    wizard.open(f"/f/service-request/schedule?d={token}")
    wizard.post(step_data(wizard.page, "schedule", person()))
    wizard.post({})
    assert "Request sent" in wizard.page
    set_form(app, abandoned_to_hcp=True)
    assert sweep(app)["leads"] == 0
    assert leads_in(sandbox) == []
    with app.app_context():
        assert db.session.scalars(select(AbandonedRequest.lead_state)).all() == [""]
    assert "No abandoned requests right now" in text(admin_client.get("/admin/abandoned"))


def finish(app: Any, client: Any, token: str) -> Submission:
    """Come back through the resume link, finish and submit; sync it here; return it."""
    from hcpform import jobs

    row = row_of(app, token)
    wizard = Wizard(client)
    wizard.open(f"/f/service-request/resume/{row.resume_token}")
    answers = person()
    for step in ("classification", "schedule"):
        if f'data-step="{step}"' in wizard.page:
            wizard.post(step_data(wizard.page, step, answers))
    wizard.post({})
    assert "Request sent" in wizard.page, wizard.page[:500]
    with app.app_context():
        sub = db.session.scalar(select(Submission).order_by(Submission.id.desc()))
        assert jobs.sync_submission(sub.id) == "synced"
        sub = db.session.get(Submission, sub.id)
        db.session.expunge(sub)
    return sub


def test_a_submission_after_the_lead_is_linked_to_it_not_a_second_record(app, client, sandbox):
    set_form(app, abandoned_to_hcp=True)
    token = walk(client, upto="contact")
    age(app, token, 61)
    sweep(app)
    lead_id = row_of(app, token).hcp_lead_id
    assert lead_id
    sub = finish(app, client, token)
    assert sub.abandoned_lead_id == lead_id
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=10).json()
    assert state["counts"]["leads"] == 1
    assert sub.hcp_customer_id == row_of(app, token).hcp_customer_id  # one customer, found again
    job = next(j for j in state["jobs"] if j["id"] == sub.hcp_job_id)
    notes = " ".join(n["content"] for n in job.get("notes") or [])
    assert f"Was abandoned lead {lead_id}" in notes


def test_a_leads_only_request_after_the_lead_is_that_lead(app, client, sandbox):
    with app.app_context():
        form = db.session.scalar(select(Form).where(Form.slug == "service-request"))
        form.service_types = [dict(s, creates="lead") for s in form.service_types]
        form.abandoned_to_hcp = True
        db.session.commit()
    token = walk(client, upto="contact")
    age(app, token, 61)
    sweep(app)
    lead_id = row_of(app, token).hcp_lead_id
    sub = finish(app, client, token)
    assert sub.hcp_lead_id == lead_id == sub.abandoned_lead_id
    assert len(leads_in(sandbox)) == 1


def test_a_lost_answer_is_found_again_not_sent_twice(app, client, sandbox):
    set_form(app, abandoned_to_hcp=True)
    token = walk(client, upto="contact")
    age(app, token, 61)
    # HCP makes the lead, then never answers in time (the client's read times out).
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"rules": [{"kind": "timeout", "method": "POST", "path": "/leads", "seconds": 3}]},
        timeout=5,
    )
    assert sweep(app)["leads"] == 0
    row = row_of(app, token)
    assert row.lead_state == "retry" and "lead" in row.creates_sent and row.hcp_lead_id is None
    assert len(leads_in(sandbox)) == 1  # it exists in HCP all the same
    with app.app_context():
        db.session.execute(AbandonedRequest.__table__.update().values(next_attempt_at=utcnow()))
        db.session.commit()
    assert sweep(app)["leads"] == 1
    assert [lead["id"] for lead in leads_in(sandbox)] == [row_of(app, token).hcp_lead_id]


def test_the_lead_is_sent_once_across_a_worker_killed_mid_send(app, client, sandbox, start_worker):
    from tests.conftest import kill_tree

    set_form(app, abandoned_to_hcp=True)
    token = walk(client, upto="contact")
    age(app, token, 61)
    # HCP makes the lead and holds its answer a while: the worker is killed meanwhile.
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"rules": [{"kind": "timeout", "method": "POST", "path": "/leads", "seconds": 1.4}]},
        timeout=5,
    )
    first = start_worker()
    wait_for(lambda: leads_in(sandbox), timeout=60, interval=0.02)
    kill_tree(first)
    first.wait(timeout=10)
    row = row_of(app, token)
    assert row.lead_state == "sending" and "lead" in row.creates_sent, row.lead_state
    assert row.hcp_lead_id is None  # killed before the answer came back
    start_worker()
    start_worker()  # two workers, two sweeps racing for it after the lease runs out
    wait_for(lambda: row_of(app, token).hcp_lead_id, timeout=90)
    time.sleep(3)  # a few more sweeps
    leads = leads_in(sandbox)
    assert [lead["id"] for lead in leads] == [row_of(app, token).hcp_lead_id]
    assert row_of(app, token).lead_state == "sent"


def test_personal_answers_are_erased_when_the_draft_expires(app, client, admin_client):
    token = walk(client)
    age(app, token, 61)
    sweep(app)
    row = row_of(app, token)
    with app.app_context():
        draft = db.session.get(Draft, row.draft_id)
        expires = draft.expires_at
        assert draft.answers["customer_email"] == "jane.doe@example.com"
    # The privacy export finds the draft and its abandoned request, without the resume token.
    export = admin_client.post("/admin/privacy/export", data={"who": "jane.doe@example.com"})
    data = export.get_json()
    assert [d["id"] for d in data["drafts"]] == [row.draft_id]
    assert data["abandoned_requests"][0]["draft_id"] == row.draft_id
    assert row.resume_token not in export.get_data(as_text=True)
    with app.app_context():
        assert abandoned.erase_expired(now=expires - timedelta(seconds=1)) == 0
        assert abandoned.erase_expired(now=expires + timedelta(seconds=1)) == 1
        draft = db.session.get(Draft, row.draft_id)
        assert draft.answers == {} and draft.lookup == {} and draft.erased_at is not None
        assert "jane" not in str(draft.attribution).lower()
        assert abandoned.erase_expired(now=expires + timedelta(days=1)) == 0
    assert app.test_client().get(f"/f/service-request/resume/{row.resume_token}").status_code == 404
    assert "No abandoned requests right now" in text(admin_client.get("/admin/abandoned"))


def test_privacy_erase_deletes_the_draft_and_its_abandoned_request(app, client, admin_client):
    token = walk(client)
    age(app, token, 61)
    sweep(app)
    response = admin_client.post(
        "/admin/privacy/erase", data={"who": "jane.doe@example.com", "confirm": "y"}
    )
    assert response.status_code in (200, 303)
    with app.app_context():
        assert db.session.scalars(select(AbandonedRequest)).all() == []
        assert db.session.scalar(select(Draft).where(Draft.token == token)) is None

"""Spam: a filled honeypot or a too-fast submit is quarantined, never queued, never sent to HCP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Draft, Status, Submission
from tests.helpers import Wizard, person, reference_in


def submission(app: Any, reference: str) -> Submission:
    with app.app_context():
        sub = db.session.scalar(select(Submission).where(Submission.reference == reference))
        db.session.expunge(sub)
        return sub


def queued(app: Any) -> int:
    from hcpform.jobs import get_queue

    with app.app_context():
        queue = get_queue()
        return len(queue) + queue.scheduled_job_registry.count


def hcp_writes(sandbox: Any) -> list[dict[str, Any]]:
    """Return every create sent to the sandbox (the wizard's lookup only reads)."""
    log = requests.get(f"{sandbox.url}/_sandbox/requests?method=POST", timeout=5).json()
    return log["requests"]


def assert_looks_sent(wizard: Wizard) -> str:
    """The bot sees exactly what a person sees: the confirmation with a reference."""
    assert "Request sent" in wizard.page and "What happens next" in wizard.page
    return reference_in(wizard.page)


def assert_never_goes_to_hcp(app: Any, sandbox: Any, reference: str, start_worker: Any) -> None:
    """Not queued at submit, not picked up by the sweep, not synced by a worker."""
    from hcpform.jobs import sweep

    assert queued(app) == 0
    with app.app_context():
        # Never enqueued (enqueued_at is empty), so a pending row would be swept at once.
        assert sweep() == 0
    assert queued(app) == 0
    assert start_worker("--burst").wait(timeout=60) == 0
    assert submission(app, reference).status == Status.QUARANTINED
    assert hcp_writes(sandbox) == []
    counts = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["counts"]
    assert (counts["customers"], counts["addresses"], counts["jobs"]) == (0, 0, 0)


def test_filled_honeypot_on_the_review_page_is_quarantined(client, app, sandbox, start_worker):
    wizard = Wizard(client)
    wizard.complete(submit=False)
    response = wizard.post({"fax_number": "+1 555 0100"})
    assert response.status_code == 200
    ref = assert_looks_sent(wizard)
    sub = submission(app, ref)
    assert sub.status == Status.QUARANTINED and sub.spam_reason == "hidden field filled in"
    assert sub.enqueued_at is None
    assert_never_goes_to_hcp(app, sandbox, ref, start_worker)


def test_filled_honeypot_on_an_earlier_step_is_quarantined_at_submit(client, app, sandbox):
    wizard = Wizard(client)
    answers = person()
    answers["service"]["fax_number"] = "buy cheap pills"
    wizard.complete(answers)
    ref = assert_looks_sent(wizard)
    sub = submission(app, ref)
    assert sub.status == Status.QUARANTINED and sub.spam_reason == "hidden field filled in"
    assert queued(app) == 0 and hcp_writes(sandbox) == []


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A real time trap: a person needs at least 3 s from the first step to the submit."""
    return {**settings, "SPAM_MIN_SECONDS": 3}


def test_too_fast_submit_is_quarantined_and_sees_the_normal_confirmation(
    client, app, sandbox, start_worker
):
    wizard = Wizard(client)
    wizard.complete()  # six steps and a submit in well under 3 s: no person does that
    ref = assert_looks_sent(wizard)
    sub = submission(app, ref)
    assert sub.status == Status.QUARANTINED and sub.spam_reason.startswith("sent ")
    assert_never_goes_to_hcp(app, sandbox, ref, start_worker)


def test_a_person_taking_their_time_is_not_quarantined(client, app, sandbox):
    wizard = Wizard(client)
    wizard.complete(submit=False)
    with app.app_context():  # as if the first step had been filled a minute ago
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        draft.started_at = draft.started_at - timedelta(minutes=1)
        db.session.commit()
    wizard.post({})
    ref = assert_looks_sent(wizard)
    sub = submission(app, ref)
    assert sub.status == Status.PENDING and sub.spam_reason == ""
    assert queued(app) == 1  # and this one is on its way to HCP


def test_spam_and_real_confirmation_pages_are_alike(client, app):
    """Bots can't probe the thresholds: both pages differ only in the reference."""
    quick = Wizard(app.test_client())
    quick.complete()
    slow = Wizard(client)
    slow.complete(submit=False)
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == slow.token))
        draft.started_at = draft.started_at - timedelta(minutes=1)
        db.session.commit()
    slow.post({})
    ref_quick, ref_slow = reference_in(quick.page), reference_in(slow.page)
    assert submission(app, ref_quick).status == Status.QUARANTINED
    assert submission(app, ref_slow).status == Status.PENDING
    assert quick.page.replace(ref_quick, "REF") == slow.page.replace(ref_slow, "REF")


# -- the office decides: release or delete ---------------------------------------------------


def admin_client(app: Any) -> Any:
    """A signed-in admin, and the CSRF token of its pages."""
    import html as html_lib

    from tests.helpers import TOKEN_RE
    from tests.test_security import admin_login

    client = app.test_client()
    admin_login(app, client)
    match = TOKEN_RE.search(client.get("/admin/submissions").get_data(as_text=True))
    client.csrf = html_lib.unescape(match.group(1) or match.group(2))
    return client


def quarantined_submission(client: Any, app: Any) -> Submission:
    wizard = Wizard(client)
    wizard.complete(submit=False)
    wizard.post({"fax_number": "http://spam.example"})
    sub = submission(app, assert_looks_sent(wizard))
    assert sub.status == Status.QUARANTINED
    return sub


def test_released_spam_suspect_is_sent_to_hcp_once(client, app, sandbox, start_worker):
    sub = quarantined_submission(client, app)
    admin = admin_client(app)
    forged = admin.post(f"/admin/submissions/{sub.id}/release", data={"csrf_token": "forged"})
    assert forged.status_code == 400 and submission(app, sub.reference).status == Status.QUARANTINED
    response = admin.post(f"/admin/submissions/{sub.id}/release", data={"csrf_token": admin.csrf})
    assert response.status_code in (302, 303)
    assert submission(app, sub.reference).status == Status.PENDING and queued(app) == 1
    again = admin.post(f"/admin/submissions/{sub.id}/release", data={"csrf_token": admin.csrf})
    assert again.status_code in (302, 303) and queued(app) == 1  # refused: not quarantined now
    assert start_worker("--burst").wait(timeout=60) == 0
    assert submission(app, sub.reference).status == Status.SYNCED
    counts = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["counts"]
    assert (counts["customers"], counts["jobs"]) == (1, 1)


def test_deleted_spam_is_gone_with_its_draft(client, app, sandbox):
    sub = quarantined_submission(client, app)
    admin = admin_client(app)
    response = admin.post(f"/admin/submissions/{sub.id}/delete", data={"csrf_token": admin.csrf})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(Submission, sub.id) is None
        assert db.session.get(Draft, sub.draft_id) is None
    assert queued(app) == 0 and hcp_writes(sandbox) == []
    # Only spam suspects can be deleted this way: a real request stays.
    wizard = Wizard(app.test_client())
    wizard.complete(submit=False)
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        draft.started_at = draft.started_at - timedelta(minutes=1)
        db.session.commit()
    wizard.post({})
    real = submission(app, reference_in(wizard.page))
    refused = admin.post(f"/admin/submissions/{real.id}/delete", data={"csrf_token": admin.csrf})
    assert refused.status_code in (302, 303)
    assert submission(app, real.reference).status == Status.PENDING

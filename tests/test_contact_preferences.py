"""Contact preferences and marketing consent on the contact step (issue 13), with mail off.

The choice reaches HCP (notifications_enabled, a tag, a line in the job notes); the consent,
its wording version and time are kept on the submission, shown to the admin and exported.
Without HCPFORM_MAIL_URL nothing is queued and the admin says mail is off.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from sqlalchemy import func, select

from hcpform import preferences
from hcpform.extensions import db
from hcpform.models import OutboxMessage, Submission
from hcpform.sync import sync_submission
from tests.helpers import Wizard, person, reference_in, set_form, step_data

pytest_plugins = ["tests.admin_fixtures"]

CONTACT_STEPS = ("location", "service", "description")


def to_contact(client: Any) -> Wizard:
    """Walk the wizard up to the contact step."""
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in CONTACT_STEPS:
        wizard.post(answers[step])
    assert 'name="customer_phone"' in wizard.page
    return wizard


def finish(wizard: Wizard, **contact: str) -> str:
    """Post the contact step with extra answers, then the rest; return the reference."""
    answers = person()
    response = wizard.post({**answers["contact"], **contact})
    assert response.status_code == 200
    for step in ("classification", "schedule"):
        wizard.post(step_data(wizard.page, step, answers))
    wizard.post({})
    return reference_in(wizard.page)


def row(app: Any, reference: str) -> Submission:
    """Return a submission by reference (detached)."""
    with app.app_context():
        sub = db.session.scalar(select(Submission).where(Submission.reference == reference))
        db.session.expunge(sub)
    return sub


def test_the_contact_step_asks_how_to_contact_with_the_forms_default_and_consent_unticked(
    app: Any, client: Any
) -> None:
    page = to_contact(client).page
    assert preferences.METHOD_LEGEND in page
    assert 'name="contact_method" value="text" checked' in page  # the form's default
    assert 'value="call" checked' not in page and 'value="email" checked' not in page
    assert 'id="marketing_consent" name="marketing_consent" value="y" >' in page  # unticked
    assert 'name="contact_consent"' in page  # the abandoned-request consent stays
    set_form(app, contact_method_default="email")
    page = to_contact(app.test_client()).page
    assert 'name="contact_method" value="email" checked' in page


def test_call_only_turns_hcp_notifications_off_and_the_consent_is_kept(
    app: Any, client: Any, sandbox: Any
) -> None:
    wizard = to_contact(client)
    reference = finish(wizard, contact_method="call", marketing_consent="y")
    sub = row(app, reference)
    assert sub.contact_method == "call" and sub.marketing_consent
    assert sub.marketing_consent_version == preferences.consent_version()
    assert len(sub.marketing_consent_version) == 12 and sub.marketing_consent_at is not None
    with app.app_context():
        assert sync_submission(sub.id) == "synced"
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
    assert state["customers"][0]["notifications_enabled"] is False
    job = state["jobs"][0]
    assert "Prefers call" in job["tags"]
    assert "Contact preference: a phone call" in " ".join(n["content"] for n in job["notes"])


def test_text_keeps_notifications_on_and_no_consent_is_recorded_unticked(
    app: Any, client: Any, sandbox: Any
) -> None:
    reference = finish(to_contact(client), contact_method="text")
    sub = row(app, reference)
    assert sub.contact_method == "text" and not sub.marketing_consent
    assert sub.marketing_consent_at is None and sub.marketing_consent_version == ""
    with app.app_context():
        assert sync_submission(sub.id) == "synced"
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
    assert state["customers"][0]["notifications_enabled"] is True
    assert "Prefers text" in state["jobs"][0]["tags"]


def test_a_consent_unticked_later_is_not_kept(app: Any, client: Any) -> None:
    wizard = to_contact(client)
    answers = person()
    wizard.post({**answers["contact"], "marketing_consent": "y"})
    wizard.open(wizard.url.replace("/classification", "/contact"))
    assert 'id="marketing_consent" name="marketing_consent" value="y" checked' in wizard.page
    reference = finish(wizard)  # posted again without the box: unticked
    assert not row(app, reference).marketing_consent


def test_an_unknown_choice_gets_a_field_message_not_an_error(app: Any, client: Any) -> None:
    wizard = to_contact(client)
    response = wizard.post({**person()["contact"], "contact_method": "pigeon"})
    assert response.status_code == 400  # a field message, as for any bad answer
    assert preferences.METHOD_INVALID in wizard.page
    assert 'href="#contact_method-1"' in wizard.page  # in the error summary too
    assert 'value="Jane"' in wizard.page  # the other answers stay


def test_the_admin_shows_and_exports_the_preference_and_consent(
    app: Any, client: Any, admin_client: Any
) -> None:
    reference = finish(to_contact(client), contact_method="email", marketing_consent="y")
    sub = row(app, reference)
    page = admin_client.get(f"/admin/submissions/{sub.id}").get_data(as_text=True)
    assert "data-contact-method" in page and "Email</dd>" in page
    assert f"(wording {preferences.consent_version()})" in page
    assert "data-mail-off" in page  # mail is off in these tests
    export = admin_client.post("/admin/privacy/export", data={"who": "jane.doe@example.com"})
    data = json.loads(export.get_data(as_text=True))
    exported = data["submissions"][0]
    assert exported["contact_method"] == "email" and exported["marketing_consent"] is True
    assert exported["marketing_consent_version"] == preferences.consent_version()
    assert exported["marketing_consent_at"]
    assert data["emails"] == []


def test_with_mail_off_nothing_is_queued_and_the_admin_says_so(
    app: Any, client: Any, admin_client: Any
) -> None:
    set_form(app, office_emails=["dispatch@plumbing.example"])
    finish(to_contact(client), contact_method="email")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    page = admin_client.get("/admin/integration").get_data(as_text=True)
    assert 'data-mail="off"' in page and "Mail is off." in page

"""City and state are checked against the ZIP's offline data; a mismatch asks the person."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Draft, Submission
from tests.helpers import Wizard, person, step_data

AUSTIN = {"street": "1200 Barton Springs Rd", "city": "Austin", "state": "TX", "zip": "78704"}


def at_contact(client, zip_code: str = "78704") -> Wizard:
    """Walk a new visitor to the contact step of a request for this ZIP."""
    answers = person()
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": zip_code})
    wizard.post(answers["service"])
    wizard.post(answers["description"])
    assert "Step 4 of 6" in wizard.page
    return wizard


def contact(**address: str) -> dict[str, str]:
    """The contact step's answers at the Austin address, with these parts changed."""
    return {**person()["contact"], **AUSTIN, **address}


def draft_answers(app, wizard: Wizard) -> dict:
    with app.app_context():
        return dict(db.session.scalar(select(Draft).where(Draft.token == wizard.token)).answers)


def test_a_city_and_state_the_zip_does_not_know_are_shown_what_the_zip_says(client, app):
    wizard = at_contact(client)
    response = wizard.post(contact(city="Springfield", state="CA"))
    page = html.unescape(wizard.page)
    assert response.status_code == 400
    assert "ZIP 78704 is Austin, TX" in page
    assert 'href="#address_choice-1"' in page  # in the error summary, linked to the choice
    assert "Use Austin, TX (what ZIP 78704 says)" in page
    assert "Keep what I typed: Springfield, CA" in page
    assert 'value="Springfield"' in page  # what they typed stays in the field
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        assert "contact" not in draft.completed_steps


def test_taking_the_zips_city_and_state_saves_them(client, app):
    wizard = at_contact(client)
    wizard.post(contact(city="Springfield", state="CA"))
    response = wizard.post(contact(city="Springfield", state="CA") | {"address_choice": "zip"})
    assert response.status_code == 200 and "Step 5 of 6" in wizard.page
    answers = draft_answers(app, wizard)
    assert (answers["city"], answers["state"]) == ("Austin", "TX")


def test_keeping_what_was_typed_is_remembered_and_sent(client, app):
    wizard = at_contact(client)
    wizard.post(contact(city="Springfield", state="CA"))
    assert "Keep what I typed" in wizard.page
    response = wizard.post(contact(city="Springfield", state="CA") | {"address_choice": "typed"})
    assert response.status_code == 200 and "Step 5 of 6" in wizard.page
    answers = draft_answers(app, wizard)
    assert (answers["city"], answers["state"]) == ("Springfield", "CA")
    kept = answers["_address_confirmed"]
    assert (kept["city"], kept["state"], kept["zip"], kept["zip_says"]) == (
        "Springfield", "CA", "78704", "Austin, TX",
    )  # fmt: skip
    # Coming back to the step and sending the same address again asks nothing more.
    wizard.open(wizard.url.replace("/classification", "/contact"))
    response = wizard.post(contact(city="Springfield", state="CA"))
    assert response.status_code == 200 and "Step 5 of 6" in wizard.page
    for step in ("classification", "schedule"):
        wizard.post(step_data(wizard.page, step, person()))
    wizard.post({})
    assert "Request sent" in wizard.page
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert (sub.city, sub.state, sub.zip) == ("Springfield", "CA", "78704")


def test_a_confirmation_covers_only_the_address_it_was_given_for(client):
    wizard = at_contact(client)
    wizard.post(contact(city="Springfield", state="CA"))
    stale = contact(city="Shelbyville", state="CA") | {"address_choice": "typed"}
    response = wizard.post(stale)  # the hidden check names Springfield, not Shelbyville
    assert response.status_code == 400
    assert "Keep what I typed: Shelbyville, CA" in html.unescape(wizard.page)


def test_without_a_choice_the_question_stays(client):
    wizard = at_contact(client)
    wizard.post(contact(city="Springfield", state="CA"))
    response = wizard.post(contact(city="Springfield", state="CA"))
    assert response.status_code == 400 and "ZIP 78704 is Austin, TX" in html.unescape(wizard.page)


def test_correcting_the_city_by_hand_is_enough(client):
    wizard = at_contact(client)
    wizard.post(contact(city="Springfield", state="CA"))
    response = wizard.post(contact())
    assert response.status_code == 200 and "Step 5 of 6" in wizard.page


@pytest.mark.parametrize(
    ("zip_code", "city", "state"),
    [
        ("78704", "AUSTIN", "TX"),
        ("78704", " austin. ", "TX"),
        ("63101", "St. Louis", "MO"),
        ("63101", "Saint Louis", "MO"),
        ("33301", "Ft Lauderdale", "FL"),
        ("33301", "Fort Lauderdale", "FL"),
        ("01002", "Pelham", "MA"),  # one of the ZIP's other accepted city names
        ("60614", "Chicago", "IL"),
    ],
)
def test_the_zips_city_names_and_their_common_spellings_pass(client, app, zip_code, city, state):
    wizard = at_contact(client, zip_code)
    response = wizard.post(contact(street="1 Main St", city=city, state=state, zip=zip_code))
    assert response.status_code == 200 and "Step 5 of 6" in wizard.page, wizard.page[:3000]


def test_the_right_city_in_the_wrong_state_is_a_mismatch(client):
    wizard = at_contact(client)
    response = wizard.post(contact(state="CA"))
    assert response.status_code == 400 and "ZIP 78704 is Austin, TX" in html.unescape(wizard.page)

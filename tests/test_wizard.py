"""The six-step wizard through the test client: journey, navigation, drafts, errors, submit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hcpform.extensions import db
from hcpform.models import Draft, Form, OutOfAreaRequest, Status, Submission
from tests.helpers import Wizard, days, person, preferences_only, reference_in

pytestmark = pytest.mark.both_dbs

STEPS = ("location", "service", "description", "contact", "classification", "schedule")


def test_full_journey_creates_one_pending_submission(client, app):
    wizard = Wizard(client)
    wizard.complete()
    ref = reference_in(wizard.page)
    assert "Request sent" in wizard.page
    assert "jane.doe@example.com" not in wizard.page  # the confirmation shows no personal data
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert sub.reference == ref
        assert sub.status == Status.PENDING
        assert sub.phone == "+13125550142"
        assert (sub.first_name, sub.last_name, sub.email) == ("Jane", "Doe", "jane.doe@example.com")
        assert (sub.street, sub.city, sub.state, sub.zip, sub.country) == (
            "1234 N Clark St",
            "Chicago",
            "IL",
            "60614",
            "US",
        )
        assert sub.service_type == "Drain cleaning" and sub.urgency == "soon"
        # The sandbox has open windows: the earliest one is booked (2 h, the default length).
        assert sub.schedule_kind == "booked"
        assert sub.scheduled_end - sub.scheduled_start == timedelta(hours=2)
        assert sub.booking_window.endswith(("am", "pm"))
        assert sub.scheduled_start.astimezone().utcoffset() is not None
        assert sub.terms_version_id is not None
        assert sub.is_first_time_client is True
        assert sub.customer_type == "residential"


def test_each_step_url_has_its_title(client):
    wizard = Wizard(client)
    wizard.open()
    assert "<title>Step 1 of 6: Check your area – Your Home Services</title>" in wizard.page
    wizard.post({"zip": "60614"})
    assert "Step 2 of 6: Choose a service" in wizard.page


def test_back_keeps_answers(client):
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "60614"})
    wizard.post({"booking_type": "Water heater", "urgency": "flexible"})
    wizard.open(wizard.url.replace("/description", "/service"))
    assert "Step 2 of 6" in wizard.page, wizard.url
    assert 'value="Water heater" selected' in wizard.page
    assert 'value="flexible" checked' in wizard.page


@pytest.mark.parametrize("target", STEPS[1:] + ("review",))
def test_skipping_ahead_redirects_to_first_incomplete_step(client, target):
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "60614"})
    token = wizard.token
    response = client.get(f"/f/service-request/{target}?d={token}")
    if target == "service":
        assert response.status_code == 200
    else:
        assert response.status_code == 302
        assert "/f/service-request/service?d=" in response.headers["Location"]


def test_resume_from_draft_token_and_cookie(client, app):
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "60614"})
    wizard.post({"booking_type": "Electrical", "urgency": "soon"})
    token = wizard.token
    # A new browser with only the link resumes at the first incomplete step.
    other = app.test_client()
    response = other.get(f"/f/service-request/?d={token}")
    assert response.status_code == 302 and "/description?d=" in response.headers["Location"]
    # The same browser coming back to the start page is resumed by its first-party cookie.
    response = client.get("/f/service-request/")
    assert response.status_code == 302 and token in response.headers["Location"]


def test_unknown_or_expired_draft_starts_again(client, app):
    response = client.get("/f/service-request/contact?d=nonsense")
    assert response.status_code == 302 and "expired=1" in response.headers["Location"]
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "60614"})
    with app.app_context():
        draft = db.session.scalar(select(Draft))
        draft.expires_at = draft.started_at.replace(year=2000)
        db.session.commit()
    response = client.get(f"/f/service-request/service?d={wizard.token}")
    assert response.status_code == 302 and "expired=1" in response.headers["Location"]


def test_double_submit_gives_one_submission(client, app):
    wizard = Wizard(client)
    wizard.complete(submit=False)
    review_page = wizard.page
    first = wizard.post({}, follow=False)
    wizard.page = review_page
    second = wizard.post({}, follow=False)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    with app.app_context():
        assert db.session.scalar(select(func.count(Submission.id))) == 1
    # Back to a step after submitting lands on the confirmation, not a second request.
    response = client.get(f"/f/service-request/schedule?d={wizard.token}")
    assert "/done?d=" in response.headers["Location"]


def test_returning_to_start_after_submit_begins_a_new_request(client):
    wizard = Wizard(client)
    wizard.complete()
    response = client.get("/f/service-request/")
    assert response.status_code == 200 and "Step 1 of 6" in response.get_data(as_text=True)


def test_errors_have_summary_links_and_keep_what_was_typed(client):
    wizard = Wizard(client)
    wizard.complete(submit=False)
    wizard.open(wizard.url.replace("/review", "/contact"))
    response = wizard.post({
        "customer_phone": "123", "customer_fname": "", "customer_lname": "Doe",
        "customer_email": "not-an-email", "street": "1 Main St", "city": "Chicago",
        "state": "IL", "zip": "60614", "country": "US",
    })  # fmt: skip
    page = wizard.page
    assert response.status_code == 400
    assert "There is a problem" in page
    assert '<a href="#customer_phone">' in page and '<a href="#customer_email">' in page
    assert '<a href="#customer_fname">Enter first name</a>' in page
    assert 'aria-describedby="customer_email-error"' in page
    assert 'value="not-an-email"' in page and 'value="123"' in page
    assert page.count('class="error-message"') == 3
    assert "<title>Error: Step 4 of 6" in page


@pytest.mark.parametrize(
    ("zip_code", "message"),
    [
        ("", "Enter ZIP code"),
        ("6061", "Enter a ZIP code of 5 digits"),
        ("abcde", "Enter a ZIP code of 5 digits"),
        ("00000", "We couldn&#39;t find ZIP 00000"),
        ("60614-12", "Enter a ZIP code of 5 digits"),
    ],
)
def test_zip_validation(client, zip_code, message):
    wizard = Wizard(client)
    wizard.open()
    response = wizard.post({"zip": zip_code})
    assert response.status_code == 400
    assert message in wizard.page


def test_zip_plus_four_is_accepted_and_city_state_prefilled(client):
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "60614-1234"})
    wizard.post({"booking_type": "Other", "urgency": "soon"})
    wizard.post({"booking_reason": "Noise in the walls"})
    assert 'value="Chicago"' in wizard.page
    assert 'value="IL" selected' in wizard.page


def test_out_of_area_zip_gets_a_kind_page_and_keeps_an_email(client, app):
    with app.app_context():
        form = db.session.scalar(select(Form))
        form.service_area_zips = ["60614", "60657"]
        db.session.commit()
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "10001"})
    assert "serve ZIP 10001 yet" in wizard.page
    wizard.post({"email": "bad"})
    assert "Enter an email address" in wizard.page
    wizard.post({"email": "someone@example.com"})
    assert "let you know when we serve your area" in wizard.page
    with app.app_context():
        row = db.session.scalar(select(OutOfAreaRequest))
        assert (row.zip, row.email) == ("10001", "someone@example.com")
    # An in-area ZIP goes on.
    wizard.open("/f/service-request/")
    wizard.open(wizard.url.replace("out-of-area", "location"))
    wizard.post({"zip": "60657"})
    assert "Step 2 of 6" in wizard.page


def test_emergency_shows_the_business_phone_and_goes_on(client):
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "60614"})
    wizard.post({"booking_type": "Plumbing repair", "urgency": "emergency"})
    assert "Step 3 of 6" in wizard.page
    assert 'href="tel:+13125550100"' in wizard.page and "(312) 555-0100" in wizard.page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("customer_phone", "555", "phone number"),
        ("customer_phone", "(312) 555-01423", "phone number"),
        ("customer_email", "jane@", "Enter an email address"),
        ("customer_fname", "x" * 101, "100 characters or fewer"),
        ("customer_lname", "x" * 101, "100 characters or fewer"),
        ("customer_fname", "Ja\x00ne", "special characters"),
        ("state", "ZZ", "Choose one of the options"),
        ("zip", "99999", "We couldn&#39;t find ZIP"),
    ],
)
def test_contact_validation(client, field, value, message):
    wizard = Wizard(client)
    answers = person()
    for step in STEPS[:3]:
        if step == "location":
            wizard.open()
        wizard.post(answers[step])
    data = dict(answers["contact"], **{field: value})
    response = wizard.post(data)
    assert response.status_code == 400
    assert message in wizard.page


def test_phone_is_stored_e164_and_shown_formatted(client, app):
    wizard = Wizard(client)
    wizard.complete(person(customer_phone="312.555.0142"), submit=False)
    assert "(312) 555-0142" in wizard.page
    wizard.post({})
    with app.app_context():
        assert db.session.scalar(select(Submission.phone)) == "+13125550142"


def test_description_limit(client):
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    wizard.post(answers["location"])
    wizard.post(answers["service"])
    assert wizard.post({"booking_reason": "x" * 2001}).status_code == 400
    assert "2,000 characters or fewer" in wizard.page
    assert wizard.post({"booking_reason": "x" * 2000}).status_code == 200
    assert "Step 4 of 6" in wizard.page


def test_commercial_needs_a_company_name(client):
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in STEPS[:4]:
        wizard.post(answers[step])
    response = wizard.post(
        {"isFirstTimeClient": "false", "customerType": "commercial", "company": ""}
    )
    assert response.status_code == 400 and "Enter company name" in wizard.page
    wizard.post({"isFirstTimeClient": "false", "customerType": "commercial", "company": "Acme Ltd"})
    assert "Step 6 of 6" in wizard.page


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (0, "that date has passed"),
        (-3, "that date has passed"),
        (91, "up to 90 days ahead"),
        (None, "Enter the date as YYYY-MM-DD"),
    ],
)
def test_booking_date_rules(client, app, offset, message):
    preferences_only(app)  # the form's own windows: a date and a window
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in STEPS[:5]:
        wizard.post(answers[step])
    value = "not-a-date" if offset is None else days(offset).isoformat()
    response = wizard.post({"booking_date": value, "booking_time": "08-11", "terms": "y"})
    assert response.status_code == 400
    assert message in wizard.page


def test_closed_weekday_is_refused(client, app):
    preferences_only(app)  # the form's own windows: a date and a window
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in STEPS[:5]:
        wizard.post(answers[step])
    sunday = next(days(n) for n in range(2, 10) if days(n).weekday() == 6)
    response = wizard.post(
        {"booking_date": sunday.isoformat(), "booking_time": "08-11", "terms": "y"}
    )
    assert response.status_code == 400 and "closed on Sundays" in wizard.page


def test_terms_and_time_window_are_required(client, app):
    preferences_only(app)  # the form's own windows: a date and a window
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in STEPS[:5]:
        wizard.post(answers[step])
    response = wizard.post(
        {"booking_date": answers["schedule"]["booking_date"], "booking_time": "99-99"}
    )
    assert response.status_code == 400
    assert "Accept the terms" in wizard.page
    assert "Choose one of the options" in wizard.page


def test_forged_or_missing_csrf_is_refused_clearly(client, app):
    wizard = Wizard(client)
    wizard.open()
    response = client.post(
        "/f/service-request/location", data={"zip": "60614", "csrf_token": "forged"}
    )
    assert response.status_code == 400 and "This page has expired" in response.get_data(
        as_text=True
    )
    response = client.post("/f/service-request/location", data={"zip": "60614"})
    assert response.status_code == 400
    # A real token from another draft does not work for this one.
    wizard.post({"zip": "60614"})
    other = Wizard(app.test_client())
    other.open()
    other.post({"zip": "60614"})
    stolen = client.post(
        f"/f/service-request/service?d={other.token}",
        data={"booking_type": "Other", "urgency": "soon", "csrf_token": "x"},
    )
    assert stolen.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(Submission.id))) == 0


def test_cross_site_post_is_refused_even_with_a_token(client):
    wizard = Wizard(client)
    wizard.open()
    from tests.helpers import token_of

    response = client.post(
        "/f/service-request/location",
        data={"zip": "60614", "csrf_token": token_of(wizard.page)},
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    )
    assert response.status_code == 400


def test_prefill_from_the_link(client, app):
    wizard = Wizard(client)
    wizard.open(
        "/f/service-request/?zip=60614&booking_type=Water+heater&utm_source=google&gclid=abc"
    )
    assert 'value="60614"' in wizard.page
    wizard.post({"zip": "60614"})
    assert "Step 2 of 6" in wizard.page, wizard.url
    assert 'value="Water heater" selected' in wizard.page
    with app.app_context():
        draft = db.session.scalar(select(Draft))
        assert draft.attribution["utm_source"] == "google"
        assert draft.attribution["gclid"] == "abc"


def test_attribution_travels_with_the_submission(client, app):
    wizard = Wizard(client)
    wizard.url = "/f/service-request/?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=G1"
    wizard.complete()
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert (sub.utm_source, sub.utm_medium, sub.utm_campaign, sub.click_id) == (
            "google",
            "cpc",
            "spring",
            "G1",
        )
        assert "utm_source=google" in sub.landing_url


def test_garbage_posts_never_give_a_500(client):
    wizard = Wizard(client)
    wizard.open()
    for data in ({"zip": ["1", "2"]}, {"zip": "\x00"}, {"zip": "😀" * 50}, {}, {"csrf_token": ""}):
        assert client.post("/f/service-request/location", data=data).status_code == 400
    assert client.post("/f/service-request/nope", data={}).status_code == 404
    assert client.post("/f/unknown-form/location", data={}).status_code == 404
    assert client.post("/f/service-request/review?d=x", data={}).status_code == 302


def test_oversized_body_gets_a_clear_413(client):
    response = client.post("/f/service-request/location", data={"zip": "1" * 200_000})
    assert response.status_code == 413
    assert "too much" in response.get_data(as_text=True)


def test_wizard_works_without_javascript_markup(client):
    wizard = Wizard(client)
    wizard.open()
    assert "<script" in wizard.page and 'src="/static/js/wizard.js"' in wizard.page
    assert "cdn" not in wizard.page.lower() and "https://" not in wizard.page
    assert 'inputmode="numeric"' in wizard.page and 'autocomplete="postal-code"' in wizard.page

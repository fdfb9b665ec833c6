"""Code-like fields take only ASCII digits after NFKC; no library failure escapes a request."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hcpform import validation, zipgeo
from hcpform.extensions import db
from hcpform.hcp import matching
from hcpform.models import Draft
from tests.helpers import Wizard, person, preferences_only

FULL_WIDTH_ZIP = "\uff19\uff14\uff11\uff10\uff13"  # ９４１０３
ARABIC_INDIC_ZIP = "\u0666\u0660\u0666\u0661\u0664"  # ٦٠٦١٤


@pytest.mark.parametrize(
    "typed",
    [
        FULL_WIDTH_ZIP,
        "\U0001d7d7\U0001d7d2\U0001d7cf\U0001d7ce\U0001d7d1",  # mathematical bold digits
        "\u2079\u2074\u00b9\u2070\u00b3",  # superscripts: NFKC makes all of these ASCII
    ],
)
def test_a_zip_in_compatibility_digits_is_read_as_its_ascii_digits(client, app, typed):
    wizard = Wizard(client)
    wizard.open()
    response = wizard.post({"zip": typed})
    assert response.status_code == 200 and "Step 2 of 6" in wizard.page
    with app.app_context():
        assert db.session.scalar(select(Draft)).answers["zip"] == "94103"


@pytest.mark.parametrize(
    "typed",
    [
        ARABIC_INDIC_ZIP,
        "6061\u200d4",
        "60614\u0301",
        "\u0c66\u0c66\u0c66\u0c66\u0c66",  # Telugu zeros
        "60 614\u2044",  # a fraction slash
    ],
)
def test_digits_of_other_scripts_get_the_zip_message(client, typed):
    wizard = Wizard(client)
    wizard.open()
    response = wizard.post({"zip": typed})
    assert response.status_code == 400
    assert "Enter a ZIP code of 5 digits" in wizard.page


def test_the_zip_table_is_only_ever_asked_about_five_ascii_digits():
    assert validation.parse_zip(FULL_WIDTH_ZIP)[1].zip5 == "94103"
    assert validation.parse_zip("１２３４５-６７８９")[0] == "12345-6789"
    with pytest.raises(validation.Invalid, match="find ZIP 00000"):
        validation.parse_zip("０００００")
    # Arabic-Indic digits pass str.isdigit(): neither the wizard nor the table takes them.
    assert validation.zip_info(ARABIC_INDIC_ZIP) is None
    assert zipgeo.lookup(ARABIC_INDIC_ZIP) is None and zipgeo.lookup(FULL_WIDTH_ZIP) is None


class Panic(BaseException):
    """Stands in for pyo3_runtime.PanicException, which is a BaseException too."""


def test_a_damaged_zip_table_is_the_zip_message_not_a_500(client, monkeypatch, tmp_path):
    damaged = tmp_path / "zip_table.tsv.gz"
    damaged.write_bytes(b"\x1f\x8b truncated")
    monkeypatch.setattr(zipgeo, "TABLE", damaged)
    monkeypatch.setattr(zipgeo, "_loaded", None)
    validation._zip_lookup.cache_clear()
    try:
        wizard = Wizard(client)
        wizard.open()
        response = wizard.post({"zip": "60614"})
    finally:
        validation._zip_lookup.cache_clear()
    assert response.status_code == 400 and "find ZIP 60614" in wizard.page


def test_a_panic_in_the_phone_or_email_library_is_the_field_message(monkeypatch):
    monkeypatch.setattr(validation.phonenumbers, "parse", lambda *a: (_ for _ in ()).throw(Panic()))
    with pytest.raises(validation.Invalid, match="phone number like"):
        validation.parse_phone("(312) 555-0142")

    def bad_email(*args, **kwargs):
        raise Panic()

    monkeypatch.setattr(validation, "validate_email", bad_email)
    with pytest.raises(validation.Invalid, match="email address like"):
        validation.parse_email("jane@example.com")


def test_stopping_the_process_is_never_swallowed(monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(validation.phonenumbers, "parse", interrupted)
    with pytest.raises(KeyboardInterrupt):
        validation.parse_phone("(312) 555-0142")


def test_any_base_exception_in_a_request_gets_the_500_page_not_a_dropped_connection(app):
    from hcpform.wizard import theme

    def boom(*args, **kwargs):
        raise Panic("a library panicked")

    app.view_functions["wizard.theme"] = boom
    app.view_functions["embed.theme"] = boom
    for surface in ("f", "embed"):
        response = app.test_client().get(f"/{surface}/service-request/theme.css")
        page = response.get_data(as_text=True)
        assert response.status_code == 500
        assert "Sorry, something went wrong" in page and "(312) 555-0100" in page
        assert response.headers["Cache-Control"] == "no-store"
    assert theme.theme is not boom


@pytest.mark.parametrize(
    ("phone", "stored"),
    [
        ("\uff13\uff11\uff12 555 0142", "+13125550142"),  # full-width digits: NFKC makes them ASCII
        ("312\u00a0555\u00a00142", "+13125550142"),  # no-break spaces
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_numbers_are_normalised_then_parsed(phone, stored):
    assert validation.parse_phone(phone) == stored


@pytest.mark.parametrize(
    "phone", ["\u0663\u0661\u0662 555 0142", "312 555 0142\u202e", "312-555-O142", "tel:3125550142"]
)
def test_phones_with_anything_but_ascii_digits_get_the_phone_message(client, phone):
    wizard = Wizard(client)
    wizard.complete(person(), submit=False)
    wizard.open(wizard.url.replace("/review", "/contact"))
    response = wizard.post({"customer_phone": phone})
    assert response.status_code == 400
    assert "Enter a phone number like (312) 555-0123" in wizard.page


def test_international_numbers_keep_their_country():
    uk, maine = validation.parse_phone("+44 20 7946 0958"), validation.parse_phone("(207) 946-0958")
    assert uk != maine
    assert matching.phone_query(uk) == "442079460958"
    assert matching.phone_query(maine) == "2079460958"
    # HCP's stored digits read back to the same number, and never to the other one.
    assert matching.phone_e164("442079460958") == uk
    assert matching.phone_e164("2079460958") == maine
    assert matching.phone_e164("+1 (207) 946-0958") == maine
    assert matching.phone_e164("not a phone") == ""


def booking_date(typed: str):
    """Parse a date typed on 2029-12-01 for a business open every day, 90 days ahead."""
    from datetime import UTC, datetime

    return validation.parse_booking_date(
        typed,
        now=datetime(2029, 12, 1, tzinfo=UTC),
        tz_name="America/Chicago",
        horizon_days=90,
        closed_weekdays=[],
        closed_dates=[],
    )


def test_a_full_width_date_is_read_as_ascii():
    from datetime import date

    assert booking_date("\uff12\uff10\uff13\uff10-01-01") == date(2030, 1, 1)


@pytest.mark.parametrize("typed", ["\u0662\u0660\u0663\u0660-01-01", "20300101", "2030-W01-1"])
def test_dates_take_only_yyyy_mm_dd_in_ascii(typed):
    with pytest.raises(validation.Invalid, match="YYYY-MM-DD"):
        booking_date(typed)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("Zoë O'Brien", "Zoë O'Brien"),
        ("Jane\u200b", "Jane"),  # a zero-width space pasted along
        ("\ufeffJane", "Jane"),  # a byte order mark
        ("Jane\u00a0Doe", "Jane Doe"),  # a no-break space
        ("Nasrin\u200cDokht", "Nasrin\u200cDokht"),  # ZWNJ belongs in Persian names
        ("👩🏽\u200d🔧", "👩🏽\u200d🔧"),  # ZWJ joins emoji
        ("שָׁלוֹם", "שָׁלוֹם"),
        ("Jose\u0301", "José"),  # NFC
    ],
)
def test_names_keep_real_writing_and_drop_invisible_characters(typed, kept):
    assert validation.clean_text(typed, max_length=100) == kept


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("\u202eevil\u202c", "special characters"),  # a bidi override
        ("Jane\u2066Doe", "special characters"),  # a bidi isolate
        ("a\x00b", "special characters"),
        ("Jane\x1b[31m", "special characters"),
        ("Jane\ue000", "special characters"),  # private use
        ("Ja\nne", "single line"),
        ("Ja\u2028ne", "single line"),
        ("Z" + "\u0301\u0300\u0302\u0303\u0304\u0305", "accent marks"),
    ],
)
def test_text_that_can_hide_or_disguise_itself_is_refused_clearly(typed, message):
    with pytest.raises(validation.Invalid, match=message):
        validation.clean_text(typed, max_length=100)


def test_a_required_name_of_only_invisible_characters_is_missing(client):
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in ("location", "service", "description"):
        wizard.post(answers[step])
    response = wizard.post({**answers["contact"], "customer_fname": "\u200b\ufeff"})
    assert response.status_code == 400 and "Enter first name" in wizard.page


@pytest.mark.parametrize("choice", ["\uff10\uff18-11", "08-11\u200b", "0\u0668-11", "08\u201011"])
def test_a_look_alike_of_a_choice_is_not_that_choice(client, app, choice):
    preferences_only(app)  # the form's own windows: "08-11" is a choice
    answers = person()
    wizard = Wizard(client)
    wizard.open()
    for step in ("location", "service", "description", "contact", "classification"):
        wizard.post(answers[step])
    response = wizard.post({**answers["schedule"], "booking_time": choice})
    assert response.status_code == 400 and "Choose one of the options shown" in wizard.page


@pytest.mark.parametrize(
    "token_of_draft",
    [
        lambda t: t[:-1] + "\uff21",  # a full-width letter at the end
        lambda t: t + "\u200b",
        lambda t: t + "\x00",
        lambda t: "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in t),
    ],
)
def test_a_draft_token_takes_only_its_own_alphabet(client, token_of_draft):
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "60614"})
    assert client.get(f"/f/service-request/service?d={wizard.token}").status_code == 200
    other = client.application.test_client()  # no cookie: only the URL names the draft
    response = other.get(
        "/f/service-request/service", query_string={"d": token_of_draft(wizard.token)}
    )
    assert response.status_code == 302 and "expired=1" in response.headers["Location"]


def test_admin_list_filters_take_only_ascii_digits(app):
    from tests.factories import make_submission
    from tests.test_security import admin_login

    admin = app.test_client()
    admin_login(app, admin)
    with app.app_context():
        ref = make_submission().reference
        db.session.commit()
    # Python's int() reads ٢ as 2: page 2 would be empty. It is no page number: page 1.
    ignored = admin.get("/admin/submissions", query_string={"page": "\u0662"})
    assert ignored.status_code == 200 and ref in ignored.get_data(as_text=True)
    assert ref not in admin.get("/admin/submissions?page=2").get_data(as_text=True)
    arabic_2100 = "\u0662\u0661\u0660\u0660-\u0660\u0661-\u0660\u0661"  # ٢١٠٠-٠١-٠١
    ignored = admin.get("/admin/submissions", query_string={"date_from": arabic_2100})
    assert ignored.status_code == 200 and ref in ignored.get_data(as_text=True)
    fullwidth_2100 = "\uff12\uff11\uff10\uff10-01-01"  # NFKC: 2100-01-01, a real filter
    applied = admin.get("/admin/submissions", query_string={"date_from": fullwidth_2100})
    assert applied.status_code == 200 and ref not in applied.get_data(as_text=True)

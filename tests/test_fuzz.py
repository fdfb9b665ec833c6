"""Fuzz every wizard step and admin form: no 500s, clear rejections, and everything escaped.

Hypothesis sends arbitrary text from all of Unicode (every script, emoji, NUL, control and
format characters, digits of other scripts and full-width ones, spaces of every kind, combining
marks, overlong values), valid answers with such characters mixed in, wrong shapes (repeated
keys, missing fields, unknown fields), raw bytes that are not UTF-8 (lone surrogates), and
forged, foreign or replayed tokens. A request that raises out of the app (a dropped connection
under a real server) fails like a 500 does. HCPFORM_FUZZ_EXAMPLES sets how many examples each
test tries.
"""

from __future__ import annotations

import html
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Draft, Submission
from tests.helpers import TOKEN_RE, Wizard, person, set_form, token_of

EXAMPLES = int(os.environ.get("HCPFORM_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STEPS = ("location", "service", "description", "contact", "classification", "schedule")
XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
SPECIALS = [
    "Zoë O'Brien-Núñez",
    "مرحبا بالعالم",
    "שָׁלוֹם",
    "😀🔧🚿👩🏽‍🔧",
    "İstanbul ǅ ß ﬁ",
    "e\u0301\u0301\u0301",
    "\u202eevil\u202c",
    "\x00",
    "a\x00b",
    "\r\nSet-Cookie: x=1",
    "javascript:alert(1)",
    "' OR 1=1 --",
    '=HYPERLINK("http://x")',
    "   ",
    "",
    *XSS,
]
ALL_FIELDS = sorted({name for step in person().values() for name in step}) + [
    "fax_number",
    "csrf_token",
    "utm_source",
    "prefill_booking_type",
    "email",
    "unknown_field",
]

# The Unicode classes that look like, or hide inside, what a field documents: digits of other
# scripts (Nd), other numbers (No: ², ①, ¼), spaces (Zs), format characters (Cf: zero-width,
# bidi overrides) and combining marks (Mn, Mc, Me). Surrogates can't be sent as UTF-8 at all
# (the raw-body test sends their bytes).
TRICKY = st.characters(categories=["Nd", "No", "Zs", "Cf", "Mn", "Mc", "Me"])
ANY_CHAR = st.characters(exclude_categories=["Cs"])
DIGIT_ZEROS = (0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0xFF10, 0x1D7CE, 0x1D7F6, 0x2080)


@st.composite
def variant_of(draw: Any, value: str) -> str:
    """A valid value with some characters swapped for look-alikes or followed by tricky ones."""
    out = []
    for ch in value:
        kind = draw(st.sampled_from(["same", "same", "fullwidth", "digit", "insert"]))
        if kind == "fullwidth" and "!" <= ch <= "~":
            out.append(chr(ord(ch) + 0xFEE0))
        elif kind == "digit" and "0" <= ch <= "9":
            out.append(chr(draw(st.sampled_from(DIGIT_ZEROS)) + int(ch)))
        elif kind == "insert":
            out.append(ch + draw(TRICKY))
        else:
            out.append(ch)
    return "".join(out)


texts = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(max_size=40),
    st.text(ANY_CHAR, min_size=1, max_size=200),
    st.text(TRICKY, min_size=1, max_size=40),
    st.builds(lambda c, n: c * n, st.sampled_from("a9é😀<"), st.integers(300, 6000)),
)
values = st.one_of(texts, st.lists(texts, min_size=2, max_size=3))  # a list = a repeated key


def send(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Make a request; an exception out of the app (a dropped connection) fails the test."""
    try:
        return call(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic is a BaseException: catch that too
        if type(exc).__module__.startswith(("_pytest", "hypothesis")):
            raise
        pytest.fail(f"the request raised out of the app (dropped connection): {exc!r}")


def fields_for(step: str) -> st.SearchStrategy[dict[str, Any]]:
    """A step's own fields (some valid, some fuzzed, some missing) plus a few strangers."""
    own = person()[step]
    return st.fixed_dictionaries(
        {},
        optional={
            **{
                name: st.one_of(st.just(value), variant_of(value), values)
                for name, value in own.items()
            },
            **{name: values for name in ALL_FIELDS if name not in own},
        },
    )


def assert_handled(response: Any, *, where: str) -> str:
    """No server error; a rejection says what is wrong; nothing injected comes back raw."""
    page = response.get_data(as_text=True)
    assert response.status_code < 500, (where, response.status_code, page[:800])
    assert response.status_code in (200, 302, 303, 400, 401, 404, 405, 413), (
        where,
        response.status_code,
    )
    if response.status_code == 400:
        assert (
            "error-summary" in page
            or "error-message" in page
            or "Something in the request was not right" in page
            or "This form has expired" in page
        ), (where, page[:800])
    if response.status_code in (302, 303):
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith("//"), location
    for attack in XSS:
        assert attack not in page, (where, attack)
    return page


@pytest.fixture
def walked(client: Any) -> dict[str, Any]:
    """A draft walked to the review page: its token, a good CSRF token, and each step's URL."""
    wizard = Wizard(client)
    wizard.complete(submit=False)
    other = Wizard(client.application.test_client())
    other.complete(submit=False)
    set_form(client.application, service_area_zips=["60614"])
    far = Wizard(client.application.test_client())
    far.open()
    far.post({"zip": "10001"})
    assert "serve ZIP 10001 yet" in far.page
    return {
        "token": wizard.token,
        "csrf": token_of(wizard.page),
        "other_token": other.token,
        "other_csrf": token_of(other.page),
        "far": {
            "token": far.token,
            "csrf": token_of(far.page),
            "other_token": other.token,
            "other_csrf": token_of(other.page),
        },
    }


def draft_state(app: Any, token: str) -> tuple[Any, ...]:
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == token))
        return (dict(draft.answers), list(draft.completed_steps), draft.submitted_at)


CSRF_MODES = st.sampled_from(["good", "forged", "missing", "other_draft", "replayed_other_form"])
TOKEN_MODES = st.sampled_from(["good", "missing", "tampered", "other", "overlong"])


def pick_tokens(walked: dict[str, Any], csrf_mode: str, token_mode: str) -> tuple[str | None, Any]:
    """Return the d= token and the csrf_token value for the chosen kind of (bad) request."""
    token = {
        "good": walked["token"],
        "missing": None,
        "tampered": walked["token"][:-2] + ("AA" if not walked["token"].endswith("AA") else "BB"),
        "other": walked["other_token"],
        "overlong": walked["token"] * 40,
    }[token_mode]
    csrf = {
        "good": walked["csrf"],
        "forged": "ImZvcmdlZCI.forged.signature",
        "missing": None,
        "other_draft": walked["other_csrf"],
        "replayed_other_form": walked["csrf"].replace(".", "x", 1),
    }[csrf_mode]
    return token, csrf


@pytest.mark.parametrize("surface", ["/f", "/embed"])
@FUZZ
@given(data=st.data())
def test_every_step_survives_anything_posted(client, app, walked, surface, data):
    step = data.draw(st.sampled_from(STEPS), label="step")
    form = data.draw(fields_for(step), label="form")
    csrf_mode = data.draw(CSRF_MODES, label="csrf")
    token_mode = data.draw(TOKEN_MODES, label="draft token")
    token, csrf = pick_tokens(walked, csrf_mode, token_mode)
    if csrf is not None and "csrf_token" not in form:
        form["csrf_token"] = csrf
    before = draft_state(app, walked["token"])
    query = {"d": token} if token else {}
    response = send(client.post, f"{surface}/service-request/{step}", data=form, query_string=query)
    assert_handled(response, where=f"{surface} {step}")
    if csrf_mode != "good" and token_mode == "good":
        # A forged or foreign token is refused before anything is stored.
        assert response.status_code in (400, 413), response.status_code
        assert draft_state(app, walked["token"]) == before


CODE_FIELDS = [
    ("location", "zip"),
    ("contact", "zip"),
    ("contact", "customer_phone"),
    ("contact", "state"),
    ("service", "urgency"),
    ("classification", "customerType"),
    ("schedule", "booking_date"),
    ("schedule", "booking_time"),
]


@pytest.mark.parametrize("surface", ["/f", "/embed"])
@FUZZ
@given(data=st.data())
def test_code_like_fields_take_only_what_they_document(client, app, walked, surface, data):
    """A ZIP, phone, date or choice with look-alike characters is refused or read as ASCII."""
    step, name = data.draw(st.sampled_from(CODE_FIELDS), label="field")
    answers = person()[step]
    typed = data.draw(
        st.one_of(variant_of(answers[name]), st.text(TRICKY, min_size=1, max_size=12)),
        label="typed",
    )
    form = {**answers, name: typed, "csrf_token": walked["csrf"]}
    response = send(
        client.post,
        f"{surface}/service-request/{step}",
        data=form,
        query_string={"d": walked["token"]},
    )
    assert_handled(response, where=f"{surface} {step} {name}")
    if response.status_code in (302, 303):  # accepted: what is stored is plain ASCII
        stored = draft_state(app, walked["token"])[0][name]
        assert str(stored).isascii(), (typed, stored)


@FUZZ
@given(data=st.data())
def test_review_and_out_of_area_pages_survive_anything_posted(client, app, walked, data):
    page = data.draw(st.sampled_from(["review", "out-of-area"]), label="page")
    form = data.draw(
        st.fixed_dictionaries({}, optional={"fax_number": values, "email": values, "x": values}),
        label="form",
    )
    csrf_mode = data.draw(CSRF_MODES, label="csrf")
    token_mode = data.draw(TOKEN_MODES, label="draft token")
    token, csrf = pick_tokens(walked if page == "review" else walked["far"], csrf_mode, token_mode)
    if csrf is not None:
        form["csrf_token"] = csrf
    before = draft_state(app, walked["token"]), submission_count(app)
    response = send(
        client.post,
        f"/f/service-request/{page}",
        data=form,
        query_string={"d": token} if token else {},
    )
    assert_handled(response, where=page)
    if csrf_mode != "good" and token_mode == "good" and page == "review":
        assert response.status_code in (400, 413)
        assert (draft_state(app, walked["token"]), submission_count(app)) == before


def submission_count(app: Any) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Submission.id)).all())


@FUZZ
@given(body=st.binary(max_size=300), step=st.sampled_from(STEPS), surrogate=st.booleans())
def test_raw_bodies_that_are_not_utf8_are_refused_cleanly(client, walked, body, step, surrogate):
    if surrogate:  # a lone surrogate as UTF-8 would carry it (the client can't encode one)
        body = b"customer_fname=%ED%A0%80&street=\xed\xb2\x80&zip=" + body
    response = send(
        client.post,
        f"/f/service-request/{step}?d={walked['token']}",
        data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert_handled(response, where=f"raw {step}")


@FUZZ
@given(
    token=st.one_of(st.text(max_size=120), st.text(ANY_CHAR, max_size=80)),
    step=st.sampled_from([*STEPS, "review", "done", "out-of-area"]),
    prefill=st.dictionaries(st.sampled_from(["zip", "booking_type", "utm_source"]), texts),
)
def test_any_draft_token_in_the_url_is_handled(client, token, step, prefill):
    response = send(client.get, f"/f/service-request/{step}", query_string={"d": token, **prefill})
    assert_handled(response, where=f"GET {step}")


@FUZZ
@given(data=st.data())
def test_a_look_alike_of_the_real_draft_token_finds_nothing(client, walked, data):
    token = data.draw(variant_of(walked["token"]), label="token")
    response = send(client.get, "/f/service-request/review", query_string={"d": token})
    assert_handled(response, where="GET review")
    if token != walked["token"]:
        assert response.status_code == 302 and "expired=1" in response.headers["Location"]


@pytest.mark.parametrize("name", XSS)
def test_a_hostile_name_round_trips_escaped(client, app, name, sandbox):
    answers = person(customer_fname=name[:50], booking_reason=f"Leak under sink {name}")
    answers["contact"]["customer_lname"] = "O'Brien"
    wizard = Wizard(client)
    wizard.complete(answers, submit=False)
    review = wizard.page
    assert str(escape(name[:50])) in review  # shown to the person, as text
    assert name not in review
    wizard.post({})
    assert "Request sent" in wizard.page and name not in wizard.page
    from tests.test_security import admin_login

    admin = app.test_client()
    admin_login(app, admin)
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert sub.first_name == name[:50]  # stored as typed; escaped only where shown
    detail = admin.get(f"/admin/submissions/{sub.id}").get_data(as_text=True)
    assert str(escape(name[:50])) in detail and name not in detail
    listing = admin.get("/admin/submissions").get_data(as_text=True)
    assert name not in listing
    csv = admin.get("/admin/submissions.csv").get_data(as_text=True)
    assert "Leak under sink" in csv


# -- admin forms ----------------------------------------------------------------------------


def admin_post_rules(app: Any) -> list[str]:
    """Every admin URL that takes a POST, with sample values for its parts."""
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin.") and "POST" in rule.methods:
            urls.append(
                re.sub(
                    r"<(?:int:)?(\w+)>",
                    lambda m: {"sub_id": "1", "form_id": "1"}.get(m.group(1), "service-request"),
                    rule.rule,
                )
            )
    return sorted(urls)


@pytest.fixture
def admin(app: Any) -> Any:
    """A signed-in admin client with one submission to act on."""
    from tests.factories import make_submission
    from tests.test_security import admin_login

    client = app.test_client()
    admin_login(app, client)
    with app.app_context():
        make_submission()
        db.session.commit()
    page = client.get("/admin/integration").get_data(as_text=True)
    match = TOKEN_RE.search(page)
    client.csrf = html.unescape(match.group(1) or match.group(2))
    return client


def test_admin_has_forms_to_fuzz(app):
    urls = admin_post_rules(app)
    assert "/admin/login" in urls and "/admin/integration/key" in urls and len(urls) >= 10, urls


ADMIN_FIELDS = [
    "email", "password", "api_key", "note", "lead_source", "tags", "job_type_id", "name", "slug",
    "business_name", "business_phone", "allowed_domains", "service_area_zips", "time_windows",
    "submissions_per_hour", "brand_color", "logo_url", "terms", "ids", "query", "confirm",
    "published", "time_zone", "closed_weekdays", "closed_dates", "booking_horizon_days", "who",
]  # fmt: skip


@FUZZ
@given(data=st.data())
def test_every_admin_form_survives_anything_posted(app, admin, sandbox, data):
    url = data.draw(st.sampled_from(admin_post_rules(app)), label="url")
    if url == "/admin/logout":
        url = "/admin/integration/test"  # signing out would end the fuzzing session
    form = data.draw(
        st.fixed_dictionaries({}, optional={name: values for name in ADMIN_FIELDS}), label="form"
    )
    csrf_mode = data.draw(st.sampled_from(["good", "forged", "missing"]), label="csrf")
    if csrf_mode != "missing":
        form["csrf_token"] = admin.csrf if csrf_mode == "good" else "forged-token"
    response = send(admin.post, url, data=form)
    page = assert_handled(response, where=f"admin {url}")
    if csrf_mode != "good":
        assert response.status_code == 413 or (
            response.status_code == 400 and "This form has expired" in page
        ), (url, page[:500])


def test_erase_without_a_valid_person_says_why(admin):
    """A crafted POST (the page always sends a checked person) gets 400 and no message at all."""
    for who in ("", "not an email or phone"):
        response = admin.post("/admin/privacy/erase", data={"csrf_token": admin.csrf, "who": who})
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert "error-message" in page or "error-summary" in page, who


ADMIN_FILTERS = [
    "q", "status", "form", "service_type", "urgency", "customer_type", "date_from", "date_to",
    "page", "action", "who", "days",
]  # fmt: skip
FILTER_VALUES = st.one_of(
    values,
    variant_of("2026-01-31"),
    variant_of("12"),
    variant_of("HCP-7K2Q9"),
    variant_of("(312) 555-0142"),
    variant_of("jane.doe@example.com"),
)


@FUZZ
@given(data=st.data())
def test_every_admin_list_filter_survives_anything(app, admin, data):
    url = data.draw(
        st.sampled_from(
            [
                "/admin/submissions",
                "/admin/submissions.csv",
                "/admin/audit",
                "/admin/",
                "/admin/privacy",
            ]
        ),
        label="url",
    )
    query = data.draw(
        st.fixed_dictionaries({}, optional={name: FILTER_VALUES for name in ADMIN_FILTERS}),
        label="query",
    )
    response = send(admin.get, url, query_string=query)
    assert_handled(response, where=f"admin GET {url}")

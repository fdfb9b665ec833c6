"""Embedding through the test client: framing headers, the loader, URLs that stay under /embed/,
no cookies, attribution and prefill through the iframe, and the weight of every page."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Submission
from tests.helpers import Wizard, person, reference_in, set_form, step_data

SLUG = "service-request"
PAGE_BUDGET = 40 * 1024  # HTML + CSS + JS of one page, uncompressed
OWN = "http://localhost"  # the test client's origin


def frame_ancestors(response: Any) -> str:
    csp = response.headers.get("Content-Security-Policy", "")
    match = re.search(r"frame-ancestors ([^;]*)", csp)
    assert match, csp
    return match.group(1).strip()


def assert_not_framable(response: Any) -> None:
    assert frame_ancestors(response) == "'none'"
    assert response.headers.get("X-Frame-Options") == "DENY"


class Recorder:
    """A test client that keeps every response, so a test can look at each redirect."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.responses: list[Any] = []

    def get(self, *args: Any, **kwargs: Any) -> Any:
        response = self.client.get(*args, **kwargs)
        self.responses.append(response)
        return response

    def post(self, *args: Any, **kwargs: Any) -> Any:
        response = self.client.post(*args, **kwargs)
        self.responses.append(response)
        return response


URL_ATTR_RE = re.compile(r'\s(?:href|src|action)="([^"]*)"')


def urls_in(page: str) -> list[str]:
    return [unescape(u) for u in URL_ATTR_RE.findall(page)]


# --- framing headers ------------------------------------------------------------------------


def test_embed_pages_may_be_framed_by_self_when_no_domain_is_allowed(client):
    response = client.get(f"/embed/{SLUG}/")
    assert response.status_code == 200
    assert frame_ancestors(response) == "'self'"
    assert "X-Frame-Options" not in response.headers  # it would contradict frame-ancestors


def test_embed_pages_may_be_framed_by_the_allowed_domains_only(client, app):
    set_form(app, allowed_domains=[
        "https://www.acmeplumbing.com", "https://acmeplumbing.com",
        "https://*.evil.example", "https:", "https://bad.example/path", "javascript:alert(1)",
        "https://ok.example:8443", "*",
    ])  # fmt: skip
    response = client.get(f"/embed/{SLUG}/")
    assert frame_ancestors(response) == (
        "https://www.acmeplumbing.com https://acmeplumbing.com https://ok.example:8443"
    )
    assert "X-Frame-Options" not in response.headers
    page = response.get_data(as_text=True)
    assert (
        'data-parent-origins="https://www.acmeplumbing.com https://acmeplumbing.com '
        'https://ok.example:8443"' in page
    )


def test_frame_policy_normalises_rows_and_drops_http_in_production(client, app):
    # Rows written before production, or by hand: the policy applies the admin form's rules.
    set_form(app, allowed_domains=[
        "http://shop.example.com", "https://WWW.Example.com:443/", "https://www.example.com",
    ])  # fmt: skip
    response = client.get(f"/embed/{SLUG}/")
    assert frame_ancestors(response) == "http://shop.example.com https://www.example.com"
    app.config["PRODUCTION"] = True
    response = client.get(f"/embed/{SLUG}/")
    assert frame_ancestors(response) == "https://www.example.com"
    assert 'data-parent-origins="https://www.example.com"' in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", ["/", f"/f/{SLUG}/", f"/f/{SLUG}/location", "/healthz", "/admin/", "/static/embed.js",
             f"/f/{SLUG}/theme.css", "/f/no-such-form/", "/nowhere"],
)  # fmt: skip
def test_every_other_page_refuses_framing(client, app, path):
    set_form(app, allowed_domains=["https://www.acmeplumbing.com"])
    assert_not_framable(client.get(path))


def test_embed_errors_and_redirects_keep_the_embed_policy(client, app):
    set_form(app, allowed_domains=["https://www.acmeplumbing.com"])
    # A step that needs a draft redirects to the start, still framable by the business only.
    response = client.get(f"/embed/{SLUG}/service")
    assert response.status_code == 302
    assert urlparse(response.headers["Location"]).path == f"/embed/{SLUG}/"
    assert frame_ancestors(response) == "https://www.acmeplumbing.com"
    # An unknown step of a known form: the error shows inside the business's iframe.
    response = client.get(f"/embed/{SLUG}/nope")
    assert response.status_code == 404
    assert frame_ancestors(response) == "https://www.acmeplumbing.com"
    assert "X-Frame-Options" not in response.headers
    # An unknown form is framable by nobody but us, never by another form's domains.
    response = client.get("/embed/no-such-form/")
    assert response.status_code == 404
    assert frame_ancestors(response) == "'self'"
    # A path no route matches is not an embed page at all.
    response = client.get(f"/embed/{SLUG}/a/b/c")
    assert response.status_code == 404
    assert_not_framable(response)


# --- the loader and the frame script --------------------------------------------------------


def test_loader_is_served_as_small_es5_javascript(client):
    response = client.get("/static/embed.js")
    assert response.status_code == 200
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    source = response.get_data(as_text=True)
    assert len(source.encode()) < 8 * 1024
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)  # comments may say anything
    for es6 in ("=>", "`", "let ", "const ", "class ", "...", "async ", "await "):
        assert es6 not in code, f"{es6!r} is not ES5"
    assert set(re.findall(r"window\.(\w+)\s*=(?!=)", code)) == {"hcpform"}  # one global
    assert "document.currentScript" in code and "script[data-form]" in code
    for name in ("/embed/", "hcpform:resize", "hcpform:step", "hcpform:submitted", "hcpform:hello",
                 "parent_url", "parent_referrer", "parent_origin", "gclid", "gbraid", "wbraid",
                 "utm_source", "data-target"):  # fmt: skip
        assert name in code, name
    response.close()


@pytest.mark.parametrize("name", ["js/frame.js", "js/wizard.js"])
def test_page_scripts_are_es5(client, name):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200 and response.mimetype in (
        "text/javascript", "application/javascript",
    )  # fmt: skip
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", response.get_data(as_text=True), flags=re.S)
    for es6 in ("=>", "`", "let ", "const ", "class "):
        assert es6 not in code, f"{es6!r} in {name}"
    response.close()


def test_frame_script_posts_only_to_allowed_origins(client):
    code = client.get("/static/js/frame.js").get_data(as_text=True)
    assert "postMessage(message, target)" in code  # never "*"
    assert '"*"' not in code and "'*'" not in code
    assert "data-parent-origins" in code and "event.source === parent" in code


def test_only_embed_pages_carry_parent_origins_and_the_frame_script(client):
    hosted = client.get(f"/f/{SLUG}/").get_data(as_text=True)
    embed = client.get(f"/embed/{SLUG}/").get_data(as_text=True)
    assert "data-parent-origins" not in hosted and "frame.js" not in hosted
    assert f'data-parent-origins="{OWN}"' in embed  # no domain allowed: only ourselves
    assert 'src="/static/js/frame.js"' in embed
    assert 'data-step="location" data-step-number="1" data-step-total="6"' in embed
    assert 'class="site-header"' not in embed  # the business's page is around it


# --- the flow inside the iframe -------------------------------------------------------------


def test_embed_flow_stays_under_embed_and_sets_no_cookie(client, app):
    recorder = Recorder(client)
    wizard = Wizard(recorder, base=f"/embed/{SLUG}")
    wizard.open()
    pages = [wizard.page]
    answers = person()
    for step in ("location", "service", "description", "contact", "classification", "schedule"):
        wizard.post(step_data(wizard.page, step, answers))
        pages.append(wizard.page)
    wizard.post({})  # submit from the review page
    pages.append(wizard.page)
    reference = reference_in(wizard.page)
    assert f'data-reference="{reference}"' in wizard.page
    wizard.open(wizard.url.replace("/done", "/location"))  # a visit after sending
    pages.append(wizard.page)

    for response in recorder.responses:
        assert "Set-Cookie" not in response.headers, response.request.path
        if response.status_code in (301, 302, 303):
            assert urlparse(response.headers["Location"]).path.startswith(f"/embed/{SLUG}/")
    for page in pages:
        for url in urls_in(page):
            if url.startswith(("#", "/static/", "tel:", "data:")):
                continue
            assert url.startswith(f"/embed/{SLUG}/"), url
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert (sub.reference, sub.source) == (reference, "embed")


def test_embed_post_from_another_site_is_still_refused(client):
    wizard = Wizard(client, base=f"/embed/{SLUG}")
    wizard.open()
    from tests.helpers import token_of

    response = client.post(
        f"/embed/{SLUG}/location",
        data={"zip": "60614", "csrf_token": token_of(wizard.page)},
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://www.acmeplumbing.com"},
    )
    assert response.status_code == 400
    assert "This page has expired" in response.get_data(as_text=True)


def test_attribution_comes_from_the_parent_page(client, app):
    parent = "https://www.acmeplumbing.com/book?utm_source=facebook&fbclid=zzz"
    query = urlencode({
        "parent_origin": "https://www.acmeplumbing.com",
        "parent_url": parent,
        "parent_referrer": "https://www.google.com/",
        "utm_source": "facebook", "utm_medium": "paid", "utm_campaign": "spring",
        "utm_term": "drain", "utm_content": "ad-1", "gbraid": "GB-1",
    })  # fmt: skip
    wizard = Wizard(client, base=f"/embed/{SLUG}")
    wizard.url = f"/embed/{SLUG}/?{query}"
    wizard.complete()
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert sub.landing_url == parent
        assert sub.referrer == "https://www.google.com/"
        utm = (sub.utm_source, sub.utm_medium, sub.utm_campaign, sub.utm_term, sub.utm_content)
        assert utm == ("facebook", "paid", "spring", "drain", "ad-1")
        assert sub.click_id == "GB-1" and sub.source == "embed"


def test_hosted_page_attribution_uses_its_own_url(client, app):
    wizard = Wizard(client)
    wizard.url = f"/f/{SLUG}/?utm_source=flyer&wbraid=WB-9"
    wizard.complete()
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert sub.landing_url.endswith(f"/f/{SLUG}/?utm_source=flyer&wbraid=WB-9")
        assert (sub.utm_source, sub.click_id, sub.source) == ("flyer", "WB-9", "hosted")


@pytest.mark.parametrize("surface", ["f", "embed"])
def test_prefill_of_non_personal_fields_from_the_link(client, surface):
    wizard = Wizard(client, base=f"/{surface}/{SLUG}")
    wizard.open(f"/{surface}/{SLUG}/?zip=60614&booking_type=Water+heater&urgency=emergency")
    assert 'value="60614"' in wizard.page
    wizard.post({"zip": "60614"})
    assert 'value="Water heater" selected' in wizard.page
    assert re.search(r'value="emergency"\s+checked', wizard.page)


def test_prefill_ignores_values_that_are_not_options(client):
    wizard = Wizard(client, base=f"/embed/{SLUG}")
    wizard.open(f"/embed/{SLUG}/?booking_type=%3Cscript%3E&urgency=whenever")
    wizard.post({"zip": "60614"})
    assert "Step 2 of 6" in wizard.page
    select = wizard.page.split('name="booking_type"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([^"]*)" selected', select) == [""]
    assert not re.search(r'value="[^"]*"\s+checked', wizard.page)
    assert "<script>" not in wizard.page


# --- page weight and third parties ----------------------------------------------------------


def page_weight(client: Any, page: str) -> tuple[int, list[str]]:
    """Return the bytes of a page with its stylesheets and scripts, and any foreign URL."""
    total = len(page.encode())
    foreign = []
    for url in urls_in(page):
        if re.match(r"(?i)^(https?:)?//", url) and not url.startswith(OWN + "/"):
            foreign.append(url)
    for tag in re.findall(r"<(?:link|script)\b[^>]*>", page):
        match = re.search(r'(?:href|src)="([^"]+)"', tag)
        if not match or match.group(1).startswith("data:"):
            continue
        if "stylesheet" in tag or tag.startswith("<script"):
            response = client.get(unescape(match.group(1)))
            assert response.status_code == 200, match.group(1)
            total += len(response.get_data())
            response.close()
    return total, foreign


@pytest.mark.parametrize("surface", ["f", "embed"])
def test_every_page_is_under_40_kb_and_uses_no_other_origin(client, app, surface):
    set_form(app, service_area_zips=["60614"])
    wizard = Wizard(client, base=f"/{surface}/{SLUG}")
    wizard.open()
    pages = {"location": wizard.page}
    wizard.post({})
    pages["location (errors)"] = wizard.page
    answers = person()
    for step in ("location", "service", "description", "contact", "classification", "schedule"):
        wizard.post(step_data(wizard.page, step, answers))
        pages[wizard.url.split("?")[0].rsplit("/", 1)[1]] = wizard.page
    contact = Wizard(client, base=f"/{surface}/{SLUG}")
    contact.url = wizard.url.replace("/review", "/contact")
    contact.open()
    contact.post({name: "" for name in answers["contact"]})
    assert "There is a problem" in contact.page
    pages["contact (errors)"] = contact.page
    wizard.post({})
    pages["done"] = wizard.page
    far = Wizard(app.test_client(), base=f"/{surface}/{SLUG}")
    far.open()
    far.post({"zip": "10001"})
    pages["out-of-area"] = far.page
    assert "We don&#39;t serve" in far.page or "We don't serve" in far.page

    weights = {}
    for name, page in pages.items():
        weight, foreign = page_weight(client, page)
        weights[name] = weight
        assert not foreign, f"{name} references {foreign}"
        assert weight <= PAGE_BUDGET, f"{name}: {weight} bytes"
    print(surface, weights)


# --- branding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("colour", "brand", "text"),
    [("#1d4ed8", "#1d4ed8", "#ffffff"), ("#ffcc00", "#ffcc00", "#111111"),
     ("red;}body{x:y", "#1d4ed8", "#ffffff")],
)  # fmt: skip
def test_brand_colour_is_served_as_css_with_readable_text(client, app, colour, brand, text):
    set_form(app, brand_color=colour)
    for surface in ("f", "embed"):
        page = client.get(f"/{surface}/{SLUG}/").get_data(as_text=True)
        assert f'href="/{surface}/{SLUG}/theme.css"' in page
        assert "style=" not in page and "<style" not in page  # the CSP allows no inline styles
        response = client.get(f"/{surface}/{SLUG}/theme.css")
        assert response.mimetype == "text/css"
        assert response.get_data(as_text=True) == f":root{{--brand:{brand};--brand-text:{text}}}\n"


def test_logo_shows_on_the_hosted_page_only(client, app):
    set_form(app, logo_url="https://cdn.acmeplumbing.com/logo.png")
    hosted = client.get(f"/f/{SLUG}/").get_data(as_text=True)
    assert '<img class="logo" src="https://cdn.acmeplumbing.com/logo.png" alt=""' in hosted
    assert 'class="business-name">Your Home Services<' in hosted  # the name is the text
    embed = client.get(f"/embed/{SLUG}/").get_data(as_text=True)
    assert "logo.png" not in embed  # inside the iframe the business's own page shows its logo


def test_phone_keyboards_and_autofill_on_the_contact_step(client):
    wizard = Wizard(client, base=f"/embed/{SLUG}")
    wizard.open()
    answers = person()
    for step in ("location", "service", "description"):
        wizard.post(step_data(wizard.page, step, answers))
    tags = {
        name: re.search(rf'<input[^>]*\sname="{name}"[^>]*>', wizard.page, re.S).group(0)
        for name in ("customer_phone", "customer_email", "zip", "customer_fname", "street")
    }
    assert all(
        a in tags["customer_phone"] for a in ('type="tel"', 'inputmode="tel"', 'autocomplete="tel"')
    )
    assert all(a in tags["zip"] for a in ('inputmode="numeric"', 'autocomplete="postal-code"'))
    assert (
        'type="email"' in tags["customer_email"]
        and 'autocomplete="email"' in tags["customer_email"]
    )
    assert 'autocomplete="given-name"' in tags["customer_fname"]
    assert 'autocomplete="address-line1"' in tags["street"]
    for name in tags:  # and every input has its label
        assert f'<label class="label" for="{name}">' in wizard.page

"""The homeowner's experience in a real Chromium: phone and desktop sizes, JavaScript off,
keyboard only, inside a cross-origin iframe (resize, events, no cookies), and axe-core on every
page and error state. Screenshots of every step go to tests/artifacts/screenshots/."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from hcpform.extensions import db
from hcpform.models import Submission
from tests.helpers import person, preferences_only, set_form

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
HOST_PAGE = ROOT / "tests" / "browser" / "host.html"
ARTIFACTS = ROOT / "tests" / "artifacts"
SHOTS = ARTIFACTS / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--test-third-party-cookie-phaseout",  # third-party cookies off (the probe below checks it)
]  # fmt: skip
TIMEOUT_MS = 30_000  # a loaded 2-core machine
SLUG = "service-request"
STEPS = ("location", "service", "description", "contact", "classification", "schedule")
TITLES = {
    "location": "Check your area", "service": "Choose a service",
    "description": "Describe the problem", "contact": "Your details",
    "classification": "About you", "schedule": "Pick a time",
}  # fmt: skip
BUSINESS = "Your Home Services"
PHONE, DESKTOP = {"width": 375, "height": 812}, {"width": 1280, "height": 800}
# Every control a finger or mouse aims at must be at least 44 px tall.
TARGETS_JS = """() => [...document.querySelectorAll(
  'main button, main .input, main select, main textarea, main .radio label, main .checkbox label,'
  + ' main .back-link, main .summary-action a, main .error-summary-list a')]
  .filter(e => e.offsetParent !== null)
  .map(e => ({what: e.id || e.getAttribute('for') || e.textContent.trim().slice(0, 30),
              h: e.getBoundingClientRect().height}))
  .filter(t => t.h < 43.5)"""
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
FOCUS_VISIBLE_JS = """() => { const e = document.activeElement, s = getComputedStyle(e);
  return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none'
    || s.backgroundColor === 'rgb(255, 191, 71)'; }"""

AXE_RESULTS: dict[str, list[dict[str, Any]]] = {}


# --- servers and browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright (never Playwright's own download)."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: scripts/test installs it (apt-get install)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "axe-results.json").write_text(json.dumps(AXE_RESULTS, indent=1))


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's source (npm package in tests/browser/, installed by scripts/test)."""
    if not AXE_JS.exists():
        if shutil.which("npm") is None:
            pytest.skip("axe-core is not installed and npm is absent: accessibility checks skipped")
        pytest.fail("axe-core is missing: run `npm ci --prefix tests/browser` (scripts/test does)")
    return AXE_JS.read_text()


@pytest.fixture
def live(app: Any) -> Iterator[str]:
    """The test app over real HTTP on a free port, addressed as http://localhost:<port>."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


class HostSite:
    """A business's website on another origin (http://127.0.0.1:<port>) that embeds the form."""

    def __init__(self, app_url: str) -> None:
        template = HOST_PAGE.read_text()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = urlparse(self.path).path
                if path not in site.snippets:
                    self.send_error(404)
                    return
                body = template.replace("{{SNIPPET}}", site.snippets[path]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        loader = f"{app_url}/static/embed.js"
        self.snippets = {
            "/": f'<script src="{loader}" data-form="{SLUG}" async></script>',
            "/target": (
                f'<div id="booking"><a href="{app_url}/f/{SLUG}/">Request service online</a></div>'
                f'<script src="{loader}" data-form="{SLUG}" data-target="#booking"'
                ' data-booking-type="Water heater" async></script>'
            ),
        }
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host_site(live: str) -> Iterator[HostSite]:
    site = HostSite(live)
    yield site
    site.close()


# --- page helpers ---------------------------------------------------------------------------


def run_axe(target: Any, axe_source: str, label: str) -> None:
    """Run axe-core in a page or frame; fail on any serious or critical violation."""
    if not target.evaluate("() => typeof window.axe === 'object'"):
        target.evaluate(axe_source)  # evaluated through DevTools: the page's CSP stays as it is
    result = target.evaluate(
        """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => (
             {id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))"""
    )
    AXE_RESULTS[label] = result
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe on {label}: {json.dumps(bad, indent=1)}"


def check_layout(page: Any, label: str) -> None:
    """No horizontal scroll, and touch targets of at least 44 px."""
    assert page.evaluate(OVERFLOW_JS) <= 0, f"horizontal scroll on {label}"
    assert page.evaluate(TARGETS_JS) == [], f"small touch targets on {label}"


def shoot(page: Any, name: str, *, frames: bool = False) -> None:
    """Save a full-page screenshot. With a cross-origin iframe, Chromium paints only what is in
    the viewport, so the viewport is made as tall as the page for a moment."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if not frames:
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        return
    size = page.viewport_size
    tall = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": tall})
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def submit(page: Any) -> None:
    """Press the page's main button and wait for the next page."""
    with page.expect_navigation(timeout=TIMEOUT_MS):
        # The unnamed one: the photo step's "Add photos" and "Remove" buttons carry a name.
        page.locator("main form button[type=submit]:not([name])").click()


def fill_step(page: Any, step: str, answers: dict[str, dict[str, str]]) -> None:
    """Answer one step with the mouse and keyboard as a person would."""
    values = dict(answers[step])
    slots = page.locator("input[name='booking_slot']")
    if step == "schedule" and slots.count():  # HCP's open windows: the earliest one
        slots.first.check()
        values.pop("booking_date", None)
        values.pop("booking_time", None)
    for name, value in values.items():
        field = page.locator(f"[name='{name}']").first
        kind = field.evaluate("e => e.type")
        if kind == "radio":
            page.locator(f"input[name='{name}'][value='{value}']").check()
        elif kind == "checkbox":
            if value:
                field.check()
        elif kind.startswith("select"):
            field.select_option(value)
        elif value or field.input_value():
            field.fill(value)


def expect_title(page: Any, pattern: str) -> None:
    title = page.title()
    assert re.fullmatch(pattern, title), title


def walk_wizard(
    page: Any, start_url: str, *, label: str, axe_source: str | None, errors: bool, js: bool
) -> str:
    """Go through the six steps (first sending each one empty when `errors`), review and
    submit; check every page; return the reference shown at the end."""
    answers = person()
    page.goto(start_url)
    for number, step in enumerate(STEPS, start=1):
        expect_title(page, rf"Step {number} of 6: {TITLES[step]} – {BUSINESS}")
        shoot(page, f"{label}-{number:02d}-{step}")
        check_layout(page, f"{label} {step}")
        if axe_source:
            run_axe(page, axe_source, f"{label} {step}")
        if errors:
            clear_step(page)
            submit(page)
            expect_title(page, rf"Error: Step {number} of 6: {TITLES[step]} – {BUSINESS}")
            shoot(page, f"{label}-{number:02d}-{step}-errors")
            check_error_state(page, js=js)
            check_layout(page, f"{label} {step} errors")
            if axe_source:
                run_axe(page, axe_source, f"{label} {step} errors")
        fill_step(page, step, answers)
        submit(page)
    expect_title(page, rf"Check your answers – {BUSINESS}")
    shoot(page, f"{label}-07-review")
    check_layout(page, f"{label} review")
    if axe_source:
        run_axe(page, axe_source, f"{label} review")
    if errors:  # the review page's only error: a page kept open too long (expired token)
        page.locator("input[name=csrf_token]").evaluate("e => e.value = 'expired'")
        submit(page)
        expect_title(page, rf"Error: Check your answers – {BUSINESS}")
        assert "This page has expired" in page.locator("[data-error-summary]").inner_text()
        if js:
            page.wait_for_function(
                "() => document.activeElement.hasAttribute('data-error-summary')"
            )
        check_layout(page, f"{label} review errors")
        if axe_source:
            run_axe(page, axe_source, f"{label} review errors")
    submit(page)
    expect_title(page, rf"Request sent – {BUSINESS}")
    check_layout(page, f"{label} done")
    if axe_source:
        run_axe(page, axe_source, f"{label} done")
    shoot(page, f"{label}-08-done")
    reference = page.locator(".reference").inner_text()
    assert re.fullmatch(r"HCP-[0-9A-Z]{5}", reference)
    return reference


def clear_step(page: Any) -> None:
    """Empty what the step prefilled, so that sending it shows every error."""
    page.evaluate(
        """() => document.querySelectorAll('main form .input, main form textarea').forEach(
             e => { if (e.id !== 'fax_number') e.value = ''; })"""
    )


def check_error_state(page: Any, *, js: bool) -> None:
    """An error summary whose links reach their fields, each error tied to its field."""
    summary = page.locator("[data-error-summary]")
    assert summary.count() == 1
    if js:  # wizard.js moves focus to the summary so it is read out first
        page.wait_for_function(
            "() => document.activeElement.hasAttribute('data-error-summary')",
            timeout=TIMEOUT_MS,
        )
    hrefs = summary.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    for href in hrefs:
        target = page.locator(href)
        assert target.count() == 1, href
        ident = href[1:]
        if ident == "main":
            continue
        name = target.get_attribute("name")
        error_id = f"{name}-error"
        assert page.locator(f"#{error_id}").count() == 1, error_id
        holder = (
            target
            if target.get_attribute("type") != "radio"
            else page.locator(f"fieldset:has(input[name='{name}'])").first  # the outermost
        )
        assert error_id in (holder.get_attribute("aria-describedby") or ""), name


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_full_wizard_with_errors_and_axe(browser, live, app, axe_source, size):
    viewport = PHONE if size == "phone" else DESKTOP
    if size == "desktop":  # a light brand colour: dark text on it, checked by axe for contrast
        set_form(app, brand_color="#7dd3fc")
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    reference = walk_wizard(
        page, f"{live}/f/{SLUG}/", label=size, axe_source=axe_source, errors=True, js=True
    )
    with app.app_context():
        assert db.session.scalar(select(Submission.reference)) == reference
    context.close()


def test_full_wizard_without_javascript(browser, live, app):
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    reference = walk_wizard(
        page, f"{live}/f/{SLUG}/", label="nojs", axe_source=None, errors=True, js=False
    )
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert (sub.reference, sub.source) == (reference, "hosted")
    context.close()


def press_until(page: Any, key: str, selector: str, *, limit: int = 40) -> None:
    """Press a key (Tab) until the element matching `selector` has focus; check it shows."""
    for _ in range(limit):
        page.keyboard.press(key)
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            assert page.evaluate(FOCUS_VISIBLE_JS), f"no visible focus on {selector}"
            return
    raise AssertionError(f"{key} never reached {selector}")


def keyboard_submit(page: Any) -> None:
    """Tab to the main button and press Enter."""
    press_until(page, "Tab", "main form button[type=submit]:not([name])")
    with page.expect_navigation(timeout=TIMEOUT_MS):
        page.keyboard.press("Enter")


def test_keyboard_only(browser, live, app):
    preferences_only(app)  # a date input and window radios (the windows have their own test)
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{live}/f/{SLUG}/")
    keys = page.keyboard

    press_until(page, "Tab", "a.skip-link")
    with page.expect_navigation(timeout=TIMEOUT_MS):  # an empty ZIP: errors, focus on summary
        press_until(page, "Tab", "#zip")
        keys.press("Enter")
    page.wait_for_function("() => document.activeElement.hasAttribute('data-error-summary')")
    press_until(page, "Tab", "[data-error-summary] a")
    keys.press("Enter")  # the summary link takes focus to the field
    page.wait_for_function("() => document.activeElement.id === 'zip'")
    keys.type("60614")
    with page.expect_navigation(timeout=TIMEOUT_MS):
        keys.press("Enter")

    press_until(page, "Tab", "#booking_type")  # service: select by typing, radios by arrows
    keys.type("Drain")
    press_until(page, "Tab", "input[name=urgency]")
    keys.press("ArrowDown")
    keys.press("ArrowDown")
    assert page.locator("input[name=urgency]:checked").get_attribute("value") == "flexible"
    keys.press("ArrowUp")
    shoot(page, "keyboard-02-service-focus")
    keyboard_submit(page)
    expect_title(page, r"Step 3 of 6: .*")

    press_until(page, "Tab", "#booking_reason")
    keys.type("Water heater leaks.")  # the counter follows once typing pauses
    page.locator("#booking_reason-count", has_text="You have 1,981 characters remaining").wait_for()
    keyboard_submit(page)

    answers = person()["contact"]
    press_until(page, "Tab", "#customer_phone")
    keys.type("3125550142")
    for name in ("customer_fname", "customer_lname", "customer_email", "street", "city"):
        press_until(page, "Tab", f"#{name}")
        keys.type(answers[name])
    press_until(page, "Tab", "#state")
    keys.type("Illinois")
    keyboard_submit(page)
    expect_title(page, r"Step 5 of 6: .*")

    press_until(page, "Tab", "input[name=isFirstTimeClient]")
    keys.press("Space")
    press_until(page, "Tab", "input[name=customerType]")
    keys.press("Space")
    keyboard_submit(page)

    press_until(page, "Tab", "#booking_date")
    day = date.fromisoformat(person()["schedule"]["booking_date"])
    keys.type(day.strftime("%m%d%Y"))
    press_until(page, "Tab", "input[name=booking_time]")
    keys.press("Space")
    press_until(page, "Tab", "#terms")
    keys.press("Space")
    press_until(page, "Tab", "main form button[type=submit]:not([name])")
    shoot(page, "keyboard-06-schedule-button-focus")
    keyboard_submit(page)
    expect_title(page, rf"Check your answers – {BUSINESS}")
    press_until(page, "Tab", "a.back-link")
    keyboard_submit(page)
    expect_title(page, rf"Request sent – {BUSINESS}")
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert (sub.service_type, sub.urgency, sub.state) == ("Drain cleaning", "soon", "IL")
        assert sub.booking_date == day and sub.phone == "+13125550142"
    context.close()


def test_reflow_at_320_px_and_200_percent_zoom(browser, live):
    """320 CSS px (400 % zoom of 1280) and 640 px (200 %): no horizontal scroll on any page."""
    answers = person()
    for viewport in ({"width": 320, "height": 640}, {"width": 640, "height": 400}):
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(f"{live}/f/{SLUG}/")
        for step in STEPS:
            check_layout(page, f"{viewport['width']}px {step}")
            fill_step(page, step, answers)
            submit(page)
        check_layout(page, f"{viewport['width']}px review")
        context.close()


def frame_of(page: Any, app_url: str) -> Any:
    """The wizard's frame inside the host page."""
    page.wait_for_function(
        "u => [...document.querySelectorAll('iframe')].some(f => f.src.startsWith(u))", arg=app_url
    )
    return page.frame_locator("iframe")


def test_embedded_in_another_origin(browser, live, app, host_site, axe_source):
    set_form(app, allowed_domains=[host_site.url])
    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    host_url = f"{host_site.url}/?utm_source=newsletter&utm_campaign=spring&gclid=G-123&zip=60614"
    page.goto(host_url)
    frame_of(page, live)
    iframe = page.locator("iframe")
    assert iframe.get_attribute("title") == "Service request form"
    wizard = page.frame_locator("iframe")
    wizard.locator("h1").wait_for()

    def inner() -> Any:
        return next(f for f in page.frames if f.url.startswith(f"{live}/embed/"))

    def height() -> int:
        return round(iframe.bounding_box()["height"])

    def wait_height_matches() -> None:  # the iframe is as tall as the wizard's page
        want = inner().evaluate(
            "() => Math.ceil(document.documentElement.getBoundingClientRect().height)"
        )
        page.wait_for_function(
            "want => Math.abs(document.querySelector('iframe').offsetHeight - want) < 2",
            arg=max(want, 200),
        )

    assert inner().evaluate("() => document.body.dataset.parentOrigins") == host_site.url
    assert inner().locator("#zip").input_value() == "60614"  # prefilled through the loader
    wait_height_matches()
    heights = {"location": height()}
    run_axe(inner(), axe_source, "embed location")
    shoot(page, "embed-phone-01-location", frames=True)
    # An error inside the cross-origin frame: the summary still gets focus, axe still passes.
    first = inner()
    first.locator("#zip").fill("123")
    with first.expect_navigation(timeout=TIMEOUT_MS):
        first.locator("main form button[type=submit]:not([name])").click()
    wizard.locator("[data-error-summary]").wait_for()
    inner().wait_for_function("() => document.activeElement.hasAttribute('data-error-summary')")
    run_axe(inner(), axe_source, "embed location errors")
    wait_height_matches()
    answers = person()
    for step in STEPS:
        current = inner()
        fill_step(current, step, answers)
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")  # the host scrolls
        with current.expect_navigation(timeout=TIMEOUT_MS):
            current.locator("main form button[type=submit]:not([name])").click()
        wizard.locator("h1").wait_for()
        wait_height_matches()
        name = inner().evaluate("() => document.body.dataset.step")
        heights[name] = height()
        # a step change scrolls the host page back to the top of the form
        page.wait_for_function(
            "() => document.querySelector('iframe').getBoundingClientRect().top >= -1"
        )
        if name == "contact":
            shoot(page, "embed-phone-04-contact", frames=True)
    assert len(set(heights.values())) > 2, heights  # the frame followed its content
    assert heights["contact"] > heights["location"] + 300, heights
    final = inner()
    with final.expect_navigation(timeout=TIMEOUT_MS):
        final.locator("main form button[type=submit]:not([name])").click()
    wizard.locator(".reference").wait_for()
    reference = wizard.locator(".reference").inner_text()
    page.wait_for_function("() => window.hcpformEvents.some(e => e.type === 'hcpform:submitted')")
    shoot(page, "embed-phone-08-done", frames=True)
    events = page.evaluate("() => window.hcpformEvents")
    steps = [e["detail"] for e in events if e["type"] == "hcpform:step"]
    assert [s["name"] for s in steps] == [*STEPS, "review"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6, 7]
    assert all(s["form"] == SLUG and s["total"] == 6 for s in steps)
    submitted = [e["detail"] for e in events if e["type"] == "hcpform:submitted"]
    assert submitted == [{"form": SLUG, "reference": reference}]  # the reference, nothing personal
    assert "jane" not in json.dumps(events).lower()

    # No cookie was set or needed on the app's origin, in a browser that refuses third-party
    # cookies in this frame (an unpartitioned cookie does not stick; a partitioned one would).
    assert context.cookies(live) == []
    probe = inner().evaluate(
        """() => { document.cookie = 'probe3p=1; SameSite=None; Secure; Path=/';
                   const blocked = !document.cookie.includes('probe3p');
                   document.cookie = 'probechips=1; SameSite=None; Secure; Partitioned; Path=/';
                   return {blocked, partitioned: document.cookie.includes('probechips')}; }"""
    )
    assert probe == {"blocked": True, "partitioned": True}
    assert page.locator("a.hcpform-fallback").count() == 0
    assert not [m for m in console if "Content Security Policy" in m], console

    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert sub.reference == reference and sub.source == "embed"
        assert (sub.utm_source, sub.utm_campaign, sub.click_id) == ("newsletter", "spring", "G-123")
        assert sub.landing_url == host_url
    context.close()


def test_container_target_and_prefill_through_the_loader(browser, live, app, host_site):
    set_form(app, allowed_domains=[host_site.url])
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{host_site.url}/target")
    frame_of(page, live)
    assert page.locator("#booking iframe").count() == 1
    assert page.locator("#booking a").count() == 0  # the fallback link gave way to the form
    wizard = page.frame_locator("#booking iframe")
    wizard.locator("#zip").fill("60614")
    wizard.locator("main form button[type=submit]:not([name])").click()
    wizard.locator("#booking_type").wait_for()
    assert wizard.locator("#booking_type").input_value() == "Water heater"
    page.wait_for_function("() => window.hcpformEvents.length === 2")
    assert [e["detail"]["name"] for e in page.evaluate("() => window.hcpformEvents")] == [
        "location", "service",
    ]  # fmt: skip
    context.close()


def test_a_host_not_on_the_allow_list_is_refused(browser, live, app, host_site):
    set_form(app, allowed_domains=["https://www.example.com"])
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{host_site.url}/?utm_source=x")
    frame_of(page, live)
    # The loader hears nothing from a refused frame, so it offers the hosted form instead.
    link = page.locator("a.hcpform-fallback")
    link.wait_for(timeout=TIMEOUT_MS)
    assert page.locator("iframe").is_hidden()
    href = urlparse(link.get_attribute("href"))
    assert f"{href.scheme}://{href.netloc}{href.path}" == f"{live}/f/{SLUG}/"
    assert parse_qs(href.query)["utm_source"] == ["x"]
    wizard_frames = [f for f in page.frames if f != page.main_frame]
    for frame in wizard_frames:  # the browser rendered an error page, not the wizard
        try:
            content = frame.evaluate("() => document.body ? document.body.dataset.form || '' : ''")
        except Exception:  # noqa: BLE001  an inaccessible error page is a refusal too
            content = ""
        assert content != SLUG
    assert page.evaluate("() => window.hcpformEvents") == []
    context.close()


def test_out_of_area_page_and_its_error_pass_axe(browser, live, app, axe_source):
    set_form(app, service_area_zips=["60614"])
    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{live}/f/{SLUG}/")
    page.locator("#zip").fill("10001")
    submit(page)
    expect_title(page, rf"We don't serve 10001 yet – {BUSINESS}")
    run_axe(page, axe_source, "out-of-area")
    check_layout(page, "out-of-area")
    page.locator("#email").fill("not-an-email")
    submit(page)
    expect_title(page, rf"Error: We don't serve 10001 yet – {BUSINESS}")
    page.wait_for_function("() => document.activeElement.hasAttribute('data-error-summary')")
    run_axe(page, axe_source, "out-of-area errors")
    shoot(page, "phone-out-of-area-errors")
    context.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_step6_booking_windows_at_375(browser, live, app, axe_source, js):
    """Step 6 offers HCP's open windows grouped by day; "Show more days" works with and
    without JavaScript, and the page passes axe."""
    context = browser.new_context(viewport=PHONE, java_script_enabled=js)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    answers = person()
    page.goto(f"{live}/f/{SLUG}/")
    for step in STEPS[:5]:
        fill_step(page, step, answers)
        submit(page)
    expect_title(page, rf"Step 6 of 6: Pick a time – {BUSINESS}")
    days = page.locator("fieldset[data-slot-day]")
    assert page.locator("fieldset[data-slot-day]:visible").count() == 3
    assert days.count() > 3 and page.locator("input[name='booking_slot']").count() > 6
    check_layout(page, "step 6 windows")
    if js:  # axe runs as a script: the no-JS page is the same markup, checked in the JS run
        run_axe(page, axe_source, "step 6 windows")
    shoot(page, f"step6-booking-windows-{'js' if js else 'nojs'}")
    if js:  # revealed in place, focus on the first new time
        page.locator("[data-show-more]").click()
        page.wait_for_function("() => document.activeElement.name === 'booking_slot'")
        assert "days=" not in page.url
    else:  # a link that reloads with three more days
        with page.expect_navigation(timeout=TIMEOUT_MS):
            page.locator("[data-show-more]").click()
        assert "days=6" in page.url
    assert page.locator("fieldset[data-slot-day]:visible").count() == 6
    if js:
        run_axe(page, axe_source, "step 6 more days")
    submit(page)  # nothing chosen: the error summary reaches the first time
    check_error_state(page, js=js)
    if js:
        run_axe(page, axe_source, "step 6 windows errors")
    page.locator("input[name='booking_slot']").first.check()
    page.locator("#terms").check()
    submit(page)
    expect_title(page, rf"Check your answers – {BUSINESS}")
    assert "Appointment" in page.content()
    submit(page)
    expect_title(page, rf"Request sent – {BUSINESS}")
    assert "Your visit is booked for" in page.content()
    context.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_emergency_step6_at_375(browser, live, app, axe_source, js):
    """An emergency's step 6: call button, the 911 line for gas, the soonest open time first
    and chosen, "As soon as possible"; it passes axe from 320 to 1280 px, and ASAP submits."""
    context = browser.new_context(viewport=PHONE, java_script_enabled=js)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    answers = person(urgency="emergency", booking_reason="I smell gas and a pipe burst upstairs.")
    page.goto(f"{live}/f/{SLUG}/")
    for step in STEPS[:5]:
        fill_step(page, step, answers)
        submit(page)
    expect_title(page, rf"Step 6 of 6: Pick a time – {BUSINESS}")
    panel = page.locator("[data-emergency-mode]")
    assert "leave the house and call 911 first" in panel.inner_text()
    assert page.locator("a[data-call-link]").get_attribute("href") == "tel:+13125550100"
    slots = page.locator("input[name='booking_slot']")
    soonest = page.locator("[data-soonest] input")
    if soonest.count():  # an open time today or tomorrow: first, and already chosen
        assert slots.first.get_attribute("value") == soonest.get_attribute("value")
        assert soonest.is_checked()
    assert page.locator("[data-asap] input").get_attribute("value") == "asap"
    check_layout(page, "emergency step 6")
    shoot(page, f"emergency-step6-{'js' if js else 'nojs'}")
    if js:  # the same markup without JS
        for width in (320, 375, 1280):
            page.set_viewport_size({"width": width, "height": 800})
            check_layout(page, f"emergency step 6 at {width}")
            run_axe(page, axe_source, f"emergency step 6 at {width}")
        page.set_viewport_size(PHONE)
    page.locator("[data-asap] input").check()
    page.locator("#terms").check()
    submit(page)
    expect_title(page, rf"Check your answers – {BUSINESS}")
    assert "As soon as possible" in page.content()
    submit(page)
    expect_title(page, rf"Request sent – {BUSINESS}")
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert (sub.urgency, sub.asap) == ("emergency", True)


# --- photos (step 3) ------------------------------------------------------------------------


def photo_files(tmp_path: Path) -> tuple[Path, Path]:
    """A phone photo (with GPS) and a program renamed to look like one."""
    from tests import images

    good, bad = tmp_path / "IMG_0042.jpg", tmp_path / "setup.jpg"
    good.write_bytes(images.jpeg_with_gps((3000, 2000)))
    bad.write_bytes(images.executable())
    return good, bad


def to_photo_step(page: Any, live: str) -> None:
    answers = person()
    page.goto(f"{live}/f/{SLUG}/")
    for step in ("location", "service"):
        fill_step(page, step, answers)
        submit(page)
    expect_title(page, rf"Step 3 of 6: {TITLES['description']} – {BUSINESS}")


def axe_as_served(browser: Any, page: Any, axe_source: str, label: str) -> None:
    """Run axe on the markup a JavaScript-free page shows: the same HTML and CSS, served again
    to a page that may run scripts (axe is one), without wizard.js changing it."""
    context = browser.new_context(viewport=PHONE)
    copy = context.new_page()
    html, url = page.content(), page.url
    copy.route(url, lambda route: route.fulfill(body=html, content_type="text/html"))
    copy.route("**/wizard.js", lambda route: route.fulfill(body="", content_type="text/javascript"))
    copy.goto(url)
    run_axe(copy, axe_source, label)
    context.close()


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_photo_upload_at_375(browser, live, app, axe_source, js, tmp_path):
    from hcpform.models import Photo

    good, bad = photo_files(tmp_path)
    context = browser.new_context(viewport=PHONE, java_script_enabled=js)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    to_photo_step(page, live)
    label = f"photos {'js' if js else 'no-js'}"

    def axe(state: str) -> None:
        if js:
            run_axe(page, axe_source, f"{label} {state}")
        else:
            axe_as_served(browser, page, axe_source, f"{label} {state}")

    axe("empty")
    page.locator("#booking_reason").fill("Water is leaking under the kitchen sink.")
    page.locator("#photos").set_input_files(str(bad))
    if js:  # refused at once, by the field; nothing else changes
        status = page.locator("[data-photo-status]")
        status.filter(has_text="isn't a photo").wait_for()
        assert "setup.jpg" in status.inner_text()
    else:
        with page.expect_navigation():
            page.locator("[name=photo_action]").click()
        expect_title(page, rf"Error: Step 3 of 6: {TITLES['description']} – {BUSINESS}")
        assert "isn't a photo" in page.locator("#photos-error").inner_text()
        check_error_state(page, js=False)
        assert "kitchen sink" in page.locator("#booking_reason").input_value()
    axe("refused")
    page.locator("#photos").set_input_files(str(good))
    if not js:
        with page.expect_navigation():
            page.locator("[name=photo_action]").click()
    page.locator("[data-photo] img").wait_for()
    assert page.locator("[data-photo] img").evaluate("img => img.naturalWidth") > 0
    assert "1 of 5 photos added" in page.locator("[data-photo-status]").inner_text()
    check_layout(page, label)
    axe("one photo")
    shoot(page, f"photos-{'js' if js else 'no-js'}")
    if js:
        DOCS = ROOT / "docs" / "screenshots"
        page.screenshot(path=str(DOCS / "step3-photos.png"), full_page=True)
    submit(page)
    expect_title(page, rf"Step 4 of 6: {TITLES['contact']} – {BUSINESS}")
    with app.app_context():
        photos = list(db.session.scalars(select(Photo)))
        assert len(photos) == 1 and photos[0].width == 2560 and photos[0].height == 1707
    context.close()


ES_TITLES = {
    "location": "Verifique su zona", "service": "Elija un servicio",
    "description": "Describa el problema", "contact": "Sus datos",
    "classification": "Sobre usted", "schedule": "Elija un horario",
}  # fmt: skip


def test_spanish_wizard_on_a_phone_with_axe(browser, live, app, axe_source):
    """?lang=es: every step in Spanish at 375 px, errors too, axe clean, <html lang="es">."""
    context = browser.new_context(viewport=PHONE)  # Chromium asks for en-US: ?lang= wins
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    answers = person()
    page.goto(f"{live}/f/{SLUG}/?lang=es")
    for number, step in enumerate(STEPS, start=1):
        expect_title(page, rf"Paso {number} de 6: {ES_TITLES[step]} – {BUSINESS}")
        assert page.locator("html").get_attribute("lang") == "es"
        assert page.locator("[data-lang-switch='en']").inner_text() == "English"
        if number == 1:
            shoot(page, "spanish-01-location")
        check_layout(page, f"spanish {step}")
        run_axe(page, axe_source, f"spanish {step}")
        if step in ("location", "contact"):
            clear_step(page)
            submit(page)
            expect_title(page, rf"Error: Paso {number} de 6: {ES_TITLES[step]} – {BUSINESS}")
            assert "Hay un problema" in page.locator("[data-error-summary]").inner_text()
            check_error_state(page, js=True)
            run_axe(page, axe_source, f"spanish {step} errors")
        fill_step(page, step, answers)
        if step == "description":  # wizard.js's own texts follow the page's language
            counter = page.locator("#booking_reason-count")
            page.wait_for_function(
                "() => document.querySelector('#booking_reason-count').textContent"
                ".startsWith('Le quedan')"
            )
            assert "caracteres" in counter.inner_text()
        submit(page)
    expect_title(page, rf"Revise sus respuestas – {BUSINESS}")
    run_axe(page, axe_source, "spanish review")
    submit(page)
    expect_title(page, rf"Solicitud enviada – {BUSINESS}")
    run_axe(page, axe_source, "spanish done")
    with app.app_context():
        assert db.session.scalar(select(Submission.language)) == "es"
    context.close()

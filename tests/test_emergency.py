"""Emergencies (issue 11): step 6's emergency mode, the keyword hint, "As soon as possible",
the job in HCP, the office's log line and the admin's list of open emergencies.

Real parts: the HCP sandbox over HTTP, real Redis, the database, the app's own views. The
sandbox of this module runs in a time zone where it is now early on some day, so that an open
window today or tomorrow exists whatever the hour of the test run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from hcpform import availability, emergency
from hcpform.extensions import db
from hcpform.formdefs import DEFAULT_EMERGENCY_KEYWORDS
from hcpform.models import AuditEntry, Draft, Submission
from hcpform.timeutil import utcnow
from tests.admin_helpers import csrf_of, make_submission, text
from tests.helpers import (
    Wizard,
    job_of,
    person,
    reference_in,
    sandbox_state,
    set_form,
    slots_in,
    sync,
    the_submission,
)
from tests.test_fuzz import FUZZ, assert_handled, texts

pytest_plugins = ["tests.admin_fixtures"]

PHONE_E164 = "+13125550100"  # the default form's business phone
GAS_LINE = "For a gas smell, leave the house and call 911 first."
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def early_zone(now: datetime) -> str:
    """Return a fixed-offset zone where it is now between 5 and 10 in the morning.

    Up to 11 at the module's end leaves a window (2 h lead time) before the 5 pm close.
    """
    for hours in range(-12, 15):
        name = f"Etc/GMT{-hours:+d}"  # POSIX signs: Etc/GMT+5 is five hours behind UTC
        if 5 <= now.astimezone(ZoneInfo(name)).hour <= 10:
            return name
    raise AssertionError("no zone is in the morning now")


@pytest.fixture(scope="module")
def early_sandbox() -> Iterator[Any]:
    """A sandbox whose company is in the morning now (windows open later today, or tomorrow)."""
    from hcpform.formdefs import TEMPLATE_SERVICE_TYPES
    from hcpform_sandbox import SandboxServer

    server = SandboxServer(job_types=TEMPLATE_SERVICE_TYPES, time_zone=early_zone(utcnow()))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(early_sandbox: Any) -> Iterator[Any]:
    """This module's sandbox, reset; every pro works every day; requests checked after."""
    url = early_sandbox.url
    requests.post(f"{url}/_sandbox/reset", timeout=5)
    requests.delete(f"{url}/_sandbox/faults", timeout=5)
    requests.delete(f"{url}/_sandbox/requests", timeout=5)
    requests.post(f"{url}/_sandbox/keys", json={"valid": ["sandbox-key"]}, timeout=5)
    state = requests.get(f"{url}/_sandbox/state", timeout=5).json()
    hours = {e["id"]: {d: ["08:00", "17:00"] for d in DAYS} for e in state["employees"]}
    body = {"working_hours": hours}
    requests.post(f"{url}/_sandbox/schedule", json=body, timeout=5).raise_for_status()
    yield early_sandbox
    bad = requests.get(f"{url}/_sandbox/requests?violations=1", timeout=5).json()
    assert bad["count"] == 0, f"requests that violate housecall.v1.yaml: {bad['requests'][:3]}"


def at_schedule(client: Any, **answers: str) -> Wizard:
    """Return a wizard at step 6 with steps 1 to 5 answered (overriding some answers)."""
    wizard = Wizard(client)
    steps = person(**answers)
    wizard.open()
    for step in ("location", "service", "description", "contact", "classification"):
        wizard.post(steps[step])
    assert "Step 6 of 6" in wizard.page, wizard.page[:2000]
    return wizard


def soonest_expected(sandbox: Any, now: datetime) -> availability.Window:
    """Return the earliest window open today or tomorrow that step 6 may offer (lead time 2 h)."""
    tz = sandbox.state.time_zone  # chosen when the module's sandbox started
    today = now.astimezone(ZoneInfo(tz)).date()
    answer = requests.get(
        f"{sandbox.url}/company/schedule_availability/booking_windows",
        params={"start_date": f"{today}T00:00:00", "show_for_days": 2, "service_duration": 120},
        headers={"Authorization": "Token sandbox-key"},
        timeout=5,
    ).json()["booking_windows"]
    starts = [
        availability.Window(
            datetime.fromisoformat(w["start_time"].replace("Z", "+00:00")),
            datetime.fromisoformat(w["end_time"].replace("Z", "+00:00")),
        )
        for w in answer
        if w["available"]
    ]
    starts = [w for w in starts if w.start >= now + timedelta(hours=2)]
    assert starts, "the sandbox has no open window today or tomorrow"
    return min(starts, key=lambda w: w.start)


def job_type_id(sandbox: Any, name: str) -> str:
    """Return the sandbox's id of a job type."""
    return next(t["id"] for t in sandbox_state(sandbox)["job_types"] if t["name"] == name)


# --- keywords ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("There is a GAS   SMELL in the kitchen", ["gas smell"]),
        ("Ｇａｓ ｓｍｅｌｌ near the stove", ["gas smell"]),  # full-width letters: NFKC
        ("The basement flooded overnight", ["flooded"]),
        ("A burst\npipe under the sink", ["burst pipe"]),
        ("The gassmell is odd; unflooded; sparkingly clean", []),  # whole words only
        ("No heat since Tuesday, and sparking at the panel", ["no heat", "sparking"]),
        ("", []),
    ],
)
def test_keywords_match_whole_words_in_any_case_and_script(text, expected):
    assert emergency.matched_keywords(text, list(DEFAULT_EMERGENCY_KEYWORDS)) == expected


def test_keywords_are_unicode_safe_and_parsed_from_the_admin_text():
    words, problems = emergency.parse_keywords("Überschwemmung\n  leaky   roof , LEAKY ROOF;\n")
    assert (words, problems) == (["Überschwemmung", "leaky roof"], [])
    assert emergency.matched_keywords("ÜBERSCHWEMMUNG im Keller", words) == ["Überschwemmung"]
    assert emergency.matched_keywords("a leaky roof", words) == ["leaky roof"]
    _, problems = emergency.parse_keywords("ok\n\x07bell\n" + "x" * 61)
    assert len(problems) == 2
    assert emergency.mentions_gas("I smell GAS", []) and not emergency.mentions_gas("gaslight", [])


# --- step 6 --------------------------------------------------------------------------------


def test_emergency_step_6_offers_the_soonest_window_first_a_call_link_and_asap(client, sandbox):
    now = utcnow()
    wizard = at_schedule(client, urgency="emergency")
    page = wizard.page
    soonest = soonest_expected(sandbox, now)
    offered = slots_in(page)
    assert offered[0] == soonest.id and offered[1] == emergency.ASAP
    assert offered.count(soonest.id) == 1  # listed first, not again under its day
    assert re.search(rf'value="{soonest.id}"\s+checked', page)  # pre-chosen
    assert "Soonest open time: Today," in page or "Soonest open time: Tomorrow," in page
    assert f'href="tel:{PHONE_E164}" data-call-link' in page and "Call (312) 555-0100" in page
    assert "data-emergency-mode" in page and GAS_LINE not in page
    assert "Is this an emergency?" not in page  # the small notice gives way to the panel


def test_gas_in_the_description_shows_the_911_line(client, sandbox):
    wizard = at_schedule(
        client, urgency="emergency", booking_reason="I smell gas near the water heater."
    )
    assert GAS_LINE in wizard.page and "data-emergency-mode" in wizard.page


def test_urgent_words_without_emergency_only_hint(client, app, sandbox):
    wizard = at_schedule(client, booking_reason="The basement is FLOODED after a gas leak.")
    page = wizard.page
    assert "data-urgent-hint" in page and "Sounds urgent?" in page and GAS_LINE in page
    assert f'href="tel:{PHONE_E164}"' in page
    assert "data-emergency-mode" not in page and 'value="asap"' not in page
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        assert draft.answers["urgency"] == "soon"  # the hint never changes the urgency
    # "asap" is no choice outside emergency mode: a clear message, not a 500.
    response = wizard.post({"booking_slot": "asap", "terms": "y"})
    assert response.status_code == 400 and "no longer open" in wizard.page
    # The keywords are the form's own: with another list, the same words say nothing.
    set_form(app, emergency_keywords=["leaky roof"])
    assert "data-urgent-hint" not in at_schedule(app.test_client()).page
    calm = at_schedule(app.test_client(), booking_reason="Water comes in: a LEAKY roof.")
    assert "data-urgent-hint" in calm.page and GAS_LINE not in calm.page


# --- submit and sync -----------------------------------------------------------------------


def test_asap_books_the_earliest_window_with_the_emergency_job_type(client, app, sandbox):
    now = utcnow()
    set_form(app, emergency_job_type_id=job_type_id(sandbox, "Water heater"))
    wizard = at_schedule(client, urgency="emergency")
    soonest = soonest_expected(sandbox, now)
    wizard.post({"booking_slot": "asap", "terms": "y"})
    assert "Check your answers" in wizard.page and "As soon as possible" in wizard.page
    assert 'data-schedule-kind="asap"' in wizard.page
    wizard.post({})
    assert "Your visit is booked for" in wizard.page
    ref = reference_in(wizard.page)
    sub = the_submission(app, ref)
    assert (sub.asap, sub.schedule_kind, sub.scheduled_start) == (True, "booked", soonest.start)
    sync(app, ref)
    job = job_of(sandbox, ref)
    assert job["schedule"]["scheduled_start"] == soonest.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "Emergency" in job["tags"] and "ASAP" not in job["tags"]
    assert job["job_fields"]["job_type"]["id"] == job_type_id(sandbox, "Water heater")
    notes = " ".join(n["content"] for n in job["notes"])
    assert "EMERGENCY" in notes and "earliest possible visit" in notes


def test_asap_with_no_window_today_or_tomorrow_is_unscheduled_and_tagged(client, app, sandbox):
    set_form(app, lead_time_minutes=3 * 24 * 60)  # nothing open before the day after tomorrow
    wizard = at_schedule(client, urgency="emergency")
    assert "Soonest open time" not in wizard.page and 'value="asap"' in wizard.page
    assert slots_in(wizard.page)[0] == "asap"
    wizard.post({"booking_slot": "asap", "terms": "y"})
    wizard.post({})
    assert 'data-schedule-kind="asap"' in wizard.page and "right away" in wizard.page
    ref = reference_in(wizard.page)
    sub = the_submission(app, ref)
    assert (sub.asap, sub.schedule_kind, sub.scheduled_start) == (True, "preference", None)
    sync(app, ref)
    job = job_of(sandbox, ref)
    assert not job["schedule"]["scheduled_start"]
    assert {"Emergency", "ASAP"} <= set(job["tags"]) and "Preferred time" not in job["tags"]
    # No emergency job type mapped: the service type's own.
    assert job["job_fields"]["job_type"]["id"] == job_type_id(sandbox, "Drain cleaning")
    assert "call them now" in " ".join(n["content"] for n in job["notes"])


def test_asap_on_preferred_times_needs_no_day_and_is_unscheduled(client, app, sandbox):
    set_form(app, scheduling_mode="preferences")  # HCP's calendar is not asked
    wizard = at_schedule(client, urgency="emergency")
    assert 'name="booking_slot"' not in wizard.page and 'value="asap"' in wizard.page
    wizard.post({"booking_date": "", "booking_time": "asap", "terms": "y"})
    assert "Check your answers" in wizard.page and "As soon as possible" in wizard.page
    assert 'data-schedule-kind="asap"' in wizard.page and "right away" in wizard.page
    wizard.post({})
    ref = reference_in(wizard.page)
    assert "call you right away" in wizard.page
    sub = the_submission(app, ref)
    assert (sub.asap, sub.schedule_kind, sub.booking_date) == (True, "preference", None)
    sync(app, ref)
    job = job_of(sandbox, ref)
    assert not job["schedule"]["scheduled_start"]
    assert {"Emergency", "ASAP"} <= set(job["tags"])
    assert "call them now" in " ".join(n["content"] for n in job["notes"])


def test_asap_is_no_choice_without_an_emergency(client, app, sandbox):
    set_form(app, scheduling_mode="preferences")
    wizard = at_schedule(client, urgency="soon")
    assert 'value="asap"' not in wizard.page
    response = wizard.post({"booking_date": "", "booking_time": "asap", "terms": "y"})
    assert response.status_code == 400 and "Choose one of the options shown" in wizard.page


def test_a_chosen_window_in_emergency_mode_books_it(client, app, sandbox):
    wizard = at_schedule(client, urgency="emergency")
    later = slots_in(wizard.page)[2]  # a window after the soonest and ASAP
    wizard.post({"booking_slot": later, "terms": "y"})
    wizard.post({})
    sub = the_submission(app, reference_in(wizard.page))
    assert (sub.asap, sub.schedule_kind) == (False, "booked")
    assert availability.Window(sub.scheduled_start, sub.scheduled_end).id == later


def test_an_emergency_is_logged_for_the_office_without_personal_data(client, app, sandbox, caplog):
    caplog.set_level(logging.INFO)
    wizard = at_schedule(client, urgency="emergency")
    wizard.post({"terms": "y"})  # the soonest window, pre-chosen
    wizard.post({})
    ref = reference_in(wizard.page)
    alerts = [r for r in caplog.records if r.levelno == logging.WARNING and ref in r.getMessage()]
    assert len(alerts) == 1
    line = alerts[0].getMessage()
    assert "Emergency request" in line and "Drain cleaning" in line and "ZIP 606…" in line
    for personal in ("Jane", "Doe", "555", "jane.doe", "Clark", "60614"):
        assert personal not in line
    # A request that is no emergency makes no such line.
    caplog.clear()
    Wizard(app.test_client()).complete()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# --- the admin -----------------------------------------------------------------------------


def test_dashboard_lists_open_emergencies_oldest_first_with_their_age(app, admin_client):
    now = utcnow()
    with app.app_context():
        newer = make_submission(urgency="emergency", created_at=now - timedelta(minutes=12))
        older = make_submission(urgency="emergency", created_at=now - timedelta(minutes=75))
        make_submission(urgency="soon", reference="HCP-CALM1")
        make_submission(urgency="emergency", status="quarantined", reference="HCP-SPAM1")
        make_submission(urgency="emergency", emergency_acknowledged_at=now, reference="HCP-SEEN1")
        db.session.commit()
        refs = (older.reference, newer.reference)
    page = text(admin_client.get("/admin/"))
    assert "Open emergencies (2)" in page
    banner = page[page.index("data-open-emergencies") : page.index("</section>")]
    assert banner.index(refs[0]) < banner.index(refs[1])  # the longest waiting first
    assert "1 h 15 min ago" in banner and "12 min ago" in banner
    for other in ("HCP-CALM1", "HCP-SPAM1", "HCP-SEEN1"):
        assert other not in banner


def test_acknowledge_clears_an_emergency_with_csrf_and_an_audit_entry(app, admin_client):
    with app.app_context():
        sub = make_submission(urgency="emergency")
        db.session.commit()
        sub_id, ref = sub.id, sub.reference
    app.config["WTF_CSRF_ENABLED"] = True
    url = f"/admin/emergencies/{sub_id}/acknowledge"
    assert admin_client.post(url, data={"back": "dashboard"}).status_code == 400  # no token
    page = text(admin_client.get("/admin/"))
    assert "Open emergencies (1)" in page
    response = admin_client.post(url, data={"csrf_token": csrf_of(page), "back": "dashboard"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/"
    page = text(admin_client.get("/admin/"))
    assert "data-open-emergencies" not in page and "acknowledged" in page
    again = admin_client.post(url, data={"csrf_token": csrf_of(page)})
    assert again.status_code == 303
    with app.app_context():
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "emergency acknowledged")
        ).all()
        assert [(e.target, e.admin_email) for e in entries] == [(ref, entries[0].admin_email)]
        row = db.session.get(Submission, sub_id)
        assert row.emergency_acknowledged_at is not None and row.emergency_acknowledged_by
    detail = text(admin_client.get(f"/admin/submissions/{sub_id}"))
    assert "Acknowledged by" in detail


def test_submissions_list_shows_open_emergencies_first_with_their_age(app, admin_client):
    now = utcnow()
    with app.app_context():
        make_submission(
            urgency="emergency", reference="HCP-EMRG1", created_at=now - timedelta(hours=3)
        )
        make_submission(urgency="soon", reference="HCP-NEWER", created_at=now)
        db.session.commit()
    page = text(admin_client.get("/admin/submissions"))
    assert page.index("HCP-EMRG1") < page.index("HCP-NEWER")
    assert "3 h ago" in page and "(open)" in page
    # Filtered, the list is just the filter's rows, newest first.
    filtered = text(admin_client.get("/admin/submissions?urgency=soon"))
    assert "data-open-emergencies" not in filtered and "HCP-EMRG1" not in filtered


def test_form_settings_save_keywords_and_the_emergency_job_type(app, admin_client, sandbox):
    page = text(admin_client.get("/admin/forms/service-request"))
    assert "Words that sound urgent" in page and "gas smell" in page
    water = job_type_id(sandbox, "Water heater")
    assert f'value="{water}"' in page
    with app.app_context():
        from tests.factories import default_form

        form = default_form()
        data = {
            "name": form.name, "published": "y", "sync_enabled": "y",
            "submissions_per_hour": "150", "service_types-0-name": "Drain cleaning",
            "service_types-0-job_type_id": "", "service_types-0-creates": "job",
            "time_windows": "08:00-11:00 8–11 am", "booking_horizon_days": "90",
            "scheduling_mode": "booked", "booking_days": "14", "lead_time_minutes": "120",
            "terms": form.current_terms.text if form.current_terms else "Terms.",
            "brand_color": "#1d4ed8", "business_phone": "(312) 555-0100",
        }  # fmt: skip
    bad = admin_client.post(
        "/admin/forms/service-request", data={**data, "emergency_keywords": "ok\n\x07"}
    )
    assert bad.status_code == 400 and "is not a word or phrase" in text(bad)
    good = admin_client.post(
        "/admin/forms/service-request",
        data={**data, "emergency_keywords": "Leaky roof\nno heat", "emergency_job_type_id": water},
    )
    assert good.status_code == 303, text(good)[:3000]
    with app.app_context():
        form = default_form()
        assert form.emergency_keywords == ["Leaky roof", "no heat"]
        assert form.emergency_job_type_id == water


def test_age_text():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    ages = [emergency.age_text(now - timedelta(minutes=m), now) for m in (0, 12, 60, 61, 2880)]
    assert ages == ["just now", "12 min ago", "1 h ago", "1 h 1 min ago", "2 days ago"]


# --- fuzz ----------------------------------------------------------------------------------


@FUZZ
@given(description=texts, slot=st.one_of(texts, st.sampled_from(["asap", "ASAP", "ａｓａｐ"])))
def test_emergency_step_6_never_fails_on_any_input(app, sandbox, description, slot):
    """Any description (keyword matching) and any chosen time: a page or a field error, no 500."""
    wizard = Wizard(app.test_client())  # a new visitor each time
    steps = person(urgency="emergency")
    wizard.open()
    for step in ("location", "service"):
        wizard.post(steps[step])
    response = wizard.post({"booking_reason": description, "special_instructions": ""})
    assert_handled(response, where="description")
    if "Step 4 of 6" not in wizard.page:
        assert response.status_code in (400, 413)  # a description refused, saying why
        return
    for step in ("contact", "classification"):
        wizard.post(steps[step])
    assert "Step 6 of 6" in wizard.page
    response = wizard.post({"booking_slot": slot, "terms": "y"})
    assert_handled(response, where="schedule")
    if slot == "asap":
        assert "Check your answers" in wizard.page
    elif slot not in slots_in(wizard.page):
        assert response.status_code in (400, 413)  # a field error, or a body far too large

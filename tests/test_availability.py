"""Step 6 offers HCP's open booking windows: real sandbox over HTTP, real Redis, real database."""

from __future__ import annotations

import html
import re
import threading
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select

from hcpform import availability
from hcpform.extensions import db, get_redis
from hcpform.models import Draft, Status, Submission
from hcpform.timeutil import utcnow
from tests.helpers import (
    Wizard,
    action_of,
    hidden_inputs,
    job_of,
    person,
    preferences_only,
    reference_in,
    sandbox_state,
    set_form,
    slots_in,
    sync,
    the_submission,
    token_of,
    walk_in_job,
)

WINDOWS_PATH = "/company/schedule_availability/booking_windows"
CHICAGO = ZoneInfo("America/Chicago")


def pro_ids(sandbox: Any) -> dict[str, str]:
    """Return the sandbox's employees' ids by first name."""
    return {e["first_name"]: e["id"] for e in sandbox_state(sandbox)["employees"]}


def only_marcus(sandbox: Any, hours: tuple[str, str] = ("08:00", "17:00")) -> None:
    """Leave one bookable pro, Marcus, working weekdays `hours`: each window has room for one."""
    ids = pro_ids(sandbox)
    weekdays = ("monday", "tuesday", "wednesday", "thursday", "friday")
    body = {
        "working_hours": {
            ids["Marcus"]: {d: list(hours) for d in weekdays},
            ids["Dana"]: {},
            ids["Tom"]: {},
        }
    }
    requests.post(f"{sandbox.url}/_sandbox/schedule", json=body, timeout=5).raise_for_status()


def windows_calls(sandbox: Any) -> int:
    """Return how many booking-window requests the sandbox has answered."""
    log = requests.get(
        f"{sandbox.url}/_sandbox/requests", params={"path": WINDOWS_PATH}, timeout=5
    ).json()
    return int(log["count"])


def at_schedule(client: Any) -> Wizard:
    """Return a wizard at step 6 with steps 1 to 5 answered."""
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in ("location", "service", "description", "contact", "classification"):
        wizard.post(answers[step])
    assert "Step 6 of 6" in wizard.page
    return wizard


def at_review(client: Any, slot: str | None = None) -> Wizard:
    """Return a wizard on the review page, having chosen `slot` (else the earliest open one)."""
    wizard = at_schedule(client)
    chosen = slot or slots_in(wizard.page)[0]
    wizard.post({"booking_slot": chosen, "terms": "y"})
    assert "Check your answers" in wizard.page, wizard.page[:3000]
    return wizard


def starts(page: str) -> list[datetime]:
    """Return the start times (UTC) of the windows a page offers."""
    found = [availability.parse_window_id(s) for s in slots_in(page)]
    return [w.start for w in found if w is not None]


def book_in_hcp(sandbox: Any, window: availability.Window) -> None:
    """Put an unassigned job of another customer in HCP in that window (as the office would)."""
    walk_in_job(
        sandbox,
        window.start.isoformat().replace("+00:00", "Z"),
        window.end.isoformat().replace("+00:00", "Z"),
    )


def test_step_6_offers_only_open_windows_grouped_by_day(client, sandbox):
    only_marcus(sandbox, ("12:00", "17:00"))  # mornings: nobody bookable works them
    wizard = at_schedule(client)
    offered = starts(wizard.page)
    assert offered, wizard.page[:3000]
    local = [s.astimezone(CHICAGO) for s in offered]
    assert {t.hour for t in local} == {12, 14}  # 12–2 pm and 2–4 pm; never 8 or 10 am
    assert all(t.weekday() < 5 for t in local)  # nobody bookable works on Saturday
    # One group of radios per day, named by its legend; later days wait for "Show more days".
    assert wizard.page.count("data-slot-day") == len({t.date() for t in local})
    first_day = local[0].date()
    assert f'<legend class="slot-day__heading">{first_day:%A}, {first_day:%B} {first_day.day}' in (
        wizard.page
    )
    assert "Show more days" in wizard.page and " hidden>" in wizard.page
    # Every window offered is one HCP calls available.
    answer = requests.get(
        f"{sandbox.url}{WINDOWS_PATH}",
        params={"start_date": f"{first_day}T00:00:00", "show_for_days": 14,
                "service_duration": 120},
        headers={"Authorization": "Token sandbox-key"},
        timeout=5,
    ).json()["booking_windows"]  # fmt: skip
    available = {w["start_time"] for w in answer if w["available"]}
    assert {s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in offered} <= available
    assert any(not w["available"] for w in answer)  # there were taken ones to leave out


def test_show_more_days_without_javascript(client, sandbox):
    wizard = at_schedule(client)
    assert wizard.page.count("data-slot-day>") == 3  # the first three days; the rest hidden
    more = re.search(r'href="([^"]+)" data-show-more', wizard.page)
    assert more, "no Show more days link"
    wizard.open(html.unescape(more.group(1)))
    assert "Step 6 of 6" in wizard.page and wizard.page.count("data-slot-day>") == 6


def test_a_windows_answer_is_cached_for_a_minute_per_service(client, app, sandbox):
    at_schedule(client)
    at_schedule(app.test_client())  # a second visitor, same service: the cache answers
    assert windows_calls(sandbox) == 1


def test_lead_time_is_respected(client, app, sandbox):
    now = utcnow()
    soonest = min(starts(at_schedule(client).page))
    assert soonest >= now + timedelta(hours=2)  # the default lead time
    set_form(app, lead_time_minutes=3 * 24 * 60)
    later = starts(at_schedule(app.test_client()).page)
    assert soonest < now + timedelta(days=3) <= min(later)


def test_the_booked_window_becomes_a_scheduled_job(client, app, sandbox):
    wizard = at_review(client)
    window = availability.parse_window_id(
        next(v for v in hidden_or_answers(app, wizard).values() if availability.parse_window_id(v))
    )
    assert "Appointment" in wizard.page and "book this time" in wizard.page
    wizard.post({})
    assert "Your visit is booked for" in wizard.page
    ref = reference_in(wizard.page)
    assert the_submission(app, ref).schedule_kind == "booked"
    sync(app, ref)
    job = job_of(sandbox, ref)
    assert job["schedule"]["scheduled_start"] == window.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert job["schedule"]["scheduled_end"] == window.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "Preferred time" not in job["tags"]


def hidden_or_answers(app: Any, wizard: Wizard) -> dict[str, str]:
    """Return the draft's string answers."""
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        return {k: v for k, v in draft.answers.items() if isinstance(v, str)}


def test_a_window_taken_between_view_and_submit_sends_back_to_step_6(client, app, sandbox):
    only_marcus(sandbox)
    wizard = at_review(client)
    chosen = hidden_or_answers(app, wizard)["booking_time"]
    window = availability.parse_window_id(chosen)
    book_in_hcp(sandbox, window)  # the office filled it meanwhile
    wizard.post({})
    assert "/schedule" in wizard.url and "That time was just taken" in wizard.page
    assert chosen not in slots_in(wizard.page)  # the list is fresh, not the cached one
    answers = hidden_or_answers(app, wizard)
    assert answers["customer_fname"] == "Jane" and answers["street"] == "1234 N Clark St"
    assert "booking_time" not in answers
    with app.app_context():
        assert db.session.scalar(select(Submission)) is None
    # They pick another time and the request goes through.
    wizard.post({"booking_slot": slots_in(wizard.page)[0], "terms": "y"})
    wizard.post({})
    assert "Request sent" in wizard.page


@pytest.mark.both_dbs
def test_two_people_racing_for_the_last_window_one_gets_it(app, sandbox):
    only_marcus(sandbox)  # one bookable pro: each window takes one booking
    first, second = at_review(app.test_client()), at_review(app.test_client())
    chosen = hidden_or_answers(app, first)["booking_time"]
    assert hidden_or_answers(app, second)["booking_time"] == chosen
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def send(name: str, wizard: Wizard) -> None:
        payload = {**hidden_inputs(wizard.page), "csrf_token": token_of(wizard.page)}
        barrier.wait()
        results[name] = wizard.client.post(action_of(wizard.page), data=payload)

    threads = [threading.Thread(target=send, args=(n, w)) for n, w in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    places = sorted(results[n].headers["Location"] for n in ("a", "b"))
    assert sum("/done" in p for p in places) == 1, places
    assert sum("/schedule" in p and "taken=1" in p for p in places) == 1, places
    with app.app_context():
        subs = db.session.scalars(select(Submission)).all()
        assert len(subs) == 1 and subs[0].schedule_kind == "booked"
        ref = subs[0].reference
    sync(app, ref)
    window = availability.parse_window_id(chosen)
    in_window = [
        j for j in sandbox_state(sandbox)["jobs"]
        if (j.get("schedule") or {}).get("scheduled_start")
        == window.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    ]  # fmt: skip
    assert len(in_window) == 1


def test_a_booked_window_waiting_for_its_sync_is_not_offered_again(client, app, sandbox):
    only_marcus(sandbox)
    first = at_review(client)
    chosen = hidden_or_answers(app, first)["booking_time"]
    first.post({})
    assert "Request sent" in first.page  # not synced yet: HCP still calls the window open
    assert chosen not in slots_in(at_schedule(app.test_client()).page)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "503"},
        {"kind": "429", "retry_after": "30"},
        "windows off",
    ],
    ids=["hcp-down", "rate-limited", "no-booking-windows"],
)
def test_when_hcp_cannot_answer_preferred_times_make_an_unscheduled_job(
    client, app, sandbox, fault
):
    if fault == "windows off":
        requests.post(
            f"{sandbox.url}/_sandbox/schedule", json={"booking_windows": False}, timeout=5
        ).raise_for_status()
    else:
        rule = {"method": "GET", "path": WINDOWS_PATH, "times": 10, **fault}
        requests.post(
            f"{sandbox.url}/_sandbox/faults", json={"rules": [rule]}, timeout=5
        ).raise_for_status()
    wizard = at_schedule(client)
    assert "data-preferred-times" in wizard.page and "call you to confirm" in wizard.page
    assert not slots_in(wizard.page) and 'name="booking_time"' in wizard.page
    wizard.post(person()["schedule"])
    assert "preferred time" in wizard.page and "Preferred date" in wizard.page
    wizard.post({})
    assert "This is a preferred time, not yet booked" in wizard.page
    ref = reference_in(wizard.page)
    assert the_submission(app, ref).schedule_kind == "preference"
    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
    with app.app_context():  # the 429's shared pause would hold the sync back too: end it
        redis = get_redis()
        for key in redis.scan_iter("hcpform:hcp:rl:*"):
            redis.delete(key)
    sync(app, ref)
    job = job_of(sandbox, ref)
    assert not (job.get("schedule") or {}).get("scheduled_start")  # needs scheduling
    assert "Preferred time" in job["tags"]
    notes = " ".join(n["content"] for n in job["notes"])
    assert "Preferred: " in notes and "8–11 am" in notes


def test_hcp_down_at_submit_keeps_the_request_as_a_preferred_time(client, app, sandbox):
    wizard = at_review(client)
    rule = {"method": "GET", "path": WINDOWS_PATH, "kind": "503", "times": 5}
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"rules": [rule]}, timeout=5)
    wizard.post({})
    assert "This is a preferred time, not yet booked" in wizard.page
    ref = reference_in(wizard.page)
    sub = the_submission(app, ref)
    assert sub.schedule_kind == "preference" and sub.scheduled_start is not None
    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
    sync(app, ref)
    job = job_of(sandbox, ref)
    assert not (job.get("schedule") or {}).get("scheduled_start")
    assert "Preferred time" in job["tags"]


def test_preferences_only_never_asks_hcp_for_windows(client, app, sandbox):
    preferences_only(app)
    wizard = at_schedule(client)
    assert "These are preferred times" in wizard.page and not slots_in(wizard.page)
    wizard.post(person()["schedule"])
    wizard.post({})
    ref = reference_in(wizard.page)
    assert windows_calls(sandbox) == 0
    with app.app_context():
        assert db.session.scalar(select(Submission.status)) == Status.PENDING
    sync(app, ref)
    assert "Preferred time" in job_of(sandbox, ref)["tags"]

"""Recurring maintenance: the opt-in on step 6, the job's notes, follow-ups made once when due,
synced like any other request, and stopped by the office.

Real parts: the wizard through the test client, the sandbox over HTTP, real Redis (the sweep
enqueues), SQLite and PostgreSQL, `flask sweep` processes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hcpform import jobs, recurring, validation
from hcpform.extensions import db
from hcpform.jobs import sync_submission
from hcpform.models import AuditEntry, Status, Submission
from hcpform.timeutil import add_months, utcnow
from tests.admin_helpers import text
from tests.conftest import worker_env
from tests.factories import default_form, make_submission
from tests.helpers import Wizard, person, reference_in, step_data
from tests.test_sync import state

pytest_plugins = ["tests.admin_fixtures"]
OFFER = "Repeat this visit every 3 months"
STEPS = ("location", "service", "description", "contact", "classification")


def repeats(frequency: str, name: str = "Drain cleaning") -> None:
    """Make one service type of the default form repeat (inside an app context)."""
    form = default_form()
    form.service_types = [
        {**s, "repeats": frequency} if s["name"] == name else dict(s) for s in form.service_types
    ]
    db.session.commit()


def at_schedule(client: Any, answers: dict[str, Any] | None = None) -> Wizard:
    """Walk the wizard to step 6."""
    wizard = Wizard(client)
    wizard.open()
    for step in STEPS:
        wizard.post(step_data(wizard.page, step, answers or person()))
    assert 'data-step="schedule"' in wizard.page
    return wizard


def today() -> Any:
    return validation.today_in(default_form().time_zone, utcnow())


def original(**overrides: Any) -> Submission:
    """Add a request for a quarterly visit three months ago whose first follow-up is due today."""
    visit = add_months(today(), -3)
    values = {
        "booking_date": visit,
        "schedule_kind": "preference",
        "scheduled_start": None,
        "scheduled_end": None,
        "repeat_every": "quarterly",
        "next_follow_up": add_months(visit, 3),
    }
    sub = make_submission(**(values | overrides))
    db.session.commit()
    return sub


def follow_ups_of(sub_id: int) -> list[Submission]:
    db.session.expire_all()
    return list(db.session.scalars(select(Submission).where(Submission.follow_up_of == sub_id)))


# -- the homeowner's opt-in ---------------------------------------------------------------


def test_the_opt_in_is_offered_unticked_only_for_a_recurring_service_type(app, client, sandbox):
    with app.app_context():
        repeats("quarterly")
    page = at_schedule(client).page
    assert OFFER in page and "data-repeat-offer" in page
    (box,) = re.findall(r'<input type="checkbox" id="repeat_visit"[^>]*>', page)
    assert "checked" not in box  # unticked by default
    other = at_schedule(app.test_client(), person(booking_type="Plumbing repair")).page
    assert "data-repeat-offer" not in other and "Repeat this visit" not in other


def test_a_ticked_opt_in_shows_on_the_review_and_sets_the_series(app, client, sandbox):
    with app.app_context():
        repeats("quarterly")
    wizard = at_schedule(client)
    wizard.post(step_data(wizard.page, "schedule", person()) | {"repeat_visit": "y"})
    assert "Check your answers" in wizard.page
    assert "Repeat this visit" in wizard.page and "Yes, every 3 months" in wizard.page
    wizard.post({})
    reference = reference_in(wizard.page)
    with app.app_context():
        sub = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert sub.repeat_every == "quarterly" and sub.booking_date is not None
        assert sub.next_follow_up == add_months(sub.booking_date, 3)
        assert sync_submission(sub.id) == "synced"
    job = state(sandbox)["jobs"][0]
    notes = " ".join(n["content"] for n in job["notes"])
    assert (
        "Recurring maintenance: every 3 months; follow-up requests are created by hcpform" in notes
    )
    assert "Recurring maintenance" not in job["tags"]  # the tag marks the follow-ups


def test_unticked_means_no_series_and_no_note(app, client, sandbox):
    with app.app_context():
        repeats("monthly")
    wizard = at_schedule(client)
    assert "Repeat this visit every month" in wizard.page
    wizard.post(step_data(wizard.page, "schedule", person()))
    assert "Repeat this visit" in wizard.page and ">No<" in wizard.page
    wizard.post({})
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert (sub.repeat_every, sub.next_follow_up) == ("", None)
        assert sync_submission(sub.id) == "synced"
    notes = " ".join(n["content"] for n in state(sandbox)["jobs"][0]["notes"])
    assert "Recurring maintenance" not in notes


def test_a_tampered_opt_in_for_a_service_type_that_does_not_repeat_is_refused(app, client):
    wizard = at_schedule(client)  # Drain cleaning does not repeat here
    assert "data-repeat-offer" not in wizard.page
    response = wizard.post(step_data(wizard.page, "schedule", person()) | {"repeat_visit": "y"})
    assert response.status_code == 400
    assert "This service can&#39;t be repeated" in wizard.page
    assert 'href="#repeat_visit"' in wizard.page  # in the error summary, tied to the box
    wizard.post(step_data(wizard.page, "schedule", person()))  # unticked: goes on
    assert "Check your answers" in wizard.page and "Repeat this visit" not in wizard.page
    wizard.post({})
    with app.app_context():
        assert db.session.scalar(select(Submission.repeat_every)) == ""


def test_an_opt_in_outlived_by_its_service_type_is_dropped_at_submit(app, client):
    with app.app_context():
        repeats("yearly")
    wizard = at_schedule(client)
    wizard.post(step_data(wizard.page, "schedule", person()) | {"repeat_visit": "y"})
    with app.app_context():
        repeats("")  # the office stopped offering it meanwhile
    wizard.post({})
    with app.app_context():
        assert db.session.scalar(select(Submission.repeat_every)) == ""


# -- the follow-ups ---------------------------------------------------------------------------


@pytest.mark.both_dbs
def test_the_sweep_makes_the_follow_up_when_it_falls_due_exactly_once(app_ctx, redis_server):
    sub = original(next_follow_up=today() + timedelta(days=1))
    jobs.sweep()
    assert follow_ups_of(sub.id) == []  # not due yet
    sub.next_follow_up = today()
    db.session.commit()
    jobs.sweep()
    jobs.sweep()
    (follow_up,) = follow_ups_of(sub.id)
    assert follow_up.follow_up_due == today() and follow_up.status == Status.PENDING
    assert follow_up.enqueued_at is not None  # the same sweep put it on the queue
    assert (follow_up.phone, follow_up.street, follow_up.service_type) == (
        sub.phone,
        sub.street,
        sub.service_type,
    )
    assert follow_up.booking_date is None and follow_up.scheduled_start is None
    assert follow_up.repeat_every == "" and follow_up.draft_id is None
    db.session.refresh(sub)
    assert sub.next_follow_up == add_months(sub.booking_date, 6)


@pytest.mark.both_dbs
def test_two_sweeps_at_once_make_one_follow_up_per_due_day(app, redis_server):
    with app.app_context():
        ids = [original().id for _ in range(5)]
    barrier = threading.Barrier(2)
    made: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context():
                barrier.wait()
                made.append(recurring.create_due_follow_ups(utcnow()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(made[0] + made[1]) == sorted(set(made[0] + made[1]))
    assert len(made[0]) + len(made[1]) == 5
    with app.app_context():
        for sid in ids:
            assert len(follow_ups_of(sid)) == 1


def test_two_sweep_processes_at_once_make_one_follow_up(app, settings, tmp_path):
    with app.app_context():
        sid = original().id
    env = worker_env(settings, tmp_path)
    command = [sys.executable, "-m", "flask", "--app", "hcpform", "sweep"]
    procs = [
        subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    with app.app_context():
        assert len(follow_ups_of(sid)) == 1


def test_the_database_refuses_a_second_follow_up_for_one_day(app_ctx):
    sub = original()
    due = sub.next_follow_up
    db.session.add(recurring.build_follow_up(sub, due, now=utcnow()))
    db.session.commit()
    db.session.add(recurring.build_follow_up(sub, due, now=utcnow()))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_missed_sweeps_make_one_follow_up_then_count_from_the_visit(app_ctx):
    visit = add_months(today(), -7)
    sub = original(booking_date=visit, next_follow_up=add_months(visit, 3))
    assert len(recurring.create_due_follow_ups(utcnow())) == 1
    db.session.refresh(sub)
    assert sub.next_follow_up == add_months(visit, 9)  # 3 and 6 months passed: one request
    assert recurring.create_due_follow_ups(utcnow()) == []


def test_a_follow_up_syncs_to_an_unscheduled_job_tagged_recurring(app_ctx, sandbox):
    sub = original()
    assert sync_submission(sub.id) == "synced"
    db.session.refresh(sub)
    jobs.sweep()
    (follow_up,) = follow_ups_of(sub.id)
    assert sync_submission(follow_up.id) == "synced"
    db.session.refresh(follow_up)
    assert follow_up.hcp_customer_id == sub.hcp_customer_id  # the same customer, found again
    assert follow_up.hcp_address_id == sub.hcp_address_id
    job = next(j for j in state(sandbox)["jobs"] if j["id"] == follow_up.hcp_job_id)
    assert not (job.get("schedule") or {}).get("scheduled_start")  # needs scheduling
    assert job["work_status"] == "needs scheduling"
    assert "Recurring maintenance" in job["tags"] and "Preferred time" not in job["tags"]
    notes = " ".join(n["content"] for n in job["notes"])
    assert f"Follow-up of HCP job {sub.hcp_job_id} / reference {sub.reference}" in notes
    assert f"hcpform ref {follow_up.reference}" in notes


# -- the office -------------------------------------------------------------------------------


def test_admin_shows_the_series_and_stop_repeating_ends_it(app, admin_client):
    with app.app_context():
        sub = original()
        recurring.create_due_follow_ups(utcnow())
        (follow_up,) = follow_ups_of(sub.id)
        ids, ref = (sub.id, follow_up.id), sub.reference
        db.session.refresh(sub)
        next_day = sub.next_follow_up
    page = text(admin_client.get(f"/admin/submissions/{ids[0]}"))
    assert f"data-next-follow-up>{next_day.isoformat()}<" in page and "Stop repeating" in page
    page = text(admin_client.get(f"/admin/submissions/{ids[1]}"))
    assert f'Follow-up of <a href="/admin/submissions/{ids[0]}">{ref}</a>' in page
    listing = text(admin_client.get("/admin/submissions"))
    assert f'follow-up of <a href="/admin/submissions/{ids[0]}">{ref}</a>' in listing

    assert admin_client.get(f"/admin/submissions/{ids[0]}/stop-repeating").status_code == 405
    response = admin_client.post(f"/admin/submissions/{ids[0]}/stop-repeating")
    assert response.status_code == 303
    page = text(admin_client.get(f"/admin/submissions/{ids[0]}"))
    assert "no longer repeats" in page and "Stop repeating</button>" not in page
    assert "None: stopped on" in page
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "stop repeating"))
        assert entry is not None and entry.target == ref
        assert recurring.create_due_follow_ups(utcnow() + timedelta(days=400)) == []
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 2


def test_stop_repeating_needs_the_csrf_token(app, admin_client):
    with app.app_context():
        sid = original().id
    app.config["WTF_CSRF_ENABLED"] = True
    assert admin_client.post(f"/admin/submissions/{sid}/stop-repeating").status_code == 400
    with app.app_context():
        assert db.session.get(Submission, sid).next_follow_up is not None


def test_the_form_settings_mark_a_service_type_recurring(app, admin_client):
    from tests.test_admin_forms import current_values

    url = "/admin/forms/service-request"
    data = current_values(admin_client, url)
    assert data["service_types-0-repeats"] == ""
    data["service_types-1-repeats"] = "quarterly"
    assert admin_client.post(url, data=data).status_code == 303
    with app.app_context():
        types = default_form().service_types
    assert types[1]["repeats"] == "quarterly" and "repeats" not in types[0]
    assert current_values(admin_client, url)["service_types-1-repeats"] == "quarterly"
    data["service_types-1-repeats"] = "weekly"
    assert admin_client.post(url, data=data).status_code == 400


def test_due_days_count_from_the_visit_day_at_the_end_of_a_month(app_ctx):
    from datetime import date

    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert add_months(date(2027, 11, 30), 3) == date(2028, 2, 29)
    sub = original(repeat_every="monthly", booking_date=date(2027, 1, 31))
    assert recurring.following_due(sub, date(2027, 2, 28)) == date(2027, 3, 31)
    assert recurring.following_due(sub, date(2027, 3, 31)) == date(2027, 4, 30)

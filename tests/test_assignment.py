"""Who does the work: the pro a booked job goes to, its dispatch, the admin's editor and page.

Real parts: the sandbox over HTTP (each request checked against HCP's definition), the
database, Redis, the sync run in this process, the admin through the test client.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.jobs import sync_submission
from hcpform.models import Form, HcpConnection, Submission
from tests.admin_helpers import text
from tests.factories import default_form, make_submission
from tests.helpers import walk_in_job
from tests.test_admin_forms import current_values, form_row
from tests.test_sync import faults, run_until_done, state

pytest_plugins = ["tests.admin_fixtures"]
pytestmark = pytest.mark.both_dbs

AUTH = {"Authorization": "Token sandbox-key"}
CHICAGO = ZoneInfo("America/Chicago")
URL = "/admin/forms/service-request"


def pros(sandbox: Any) -> dict[str, str]:
    """Return the sandbox's employees' ids by first name."""
    return {e["first_name"]: e["id"] for e in state(sandbox)["employees"]}


def rules(**values: Any) -> Form:
    """Set the default form's assignment settings; service_employees sets Drain cleaning's pros."""
    form = default_form()
    employees = values.pop("service_employees", None)
    if employees is not None:
        form.service_types = [
            {**s, "employee_ids": employees} if s["name"] == "Drain cleaning" else dict(s)
            for s in form.service_types
        ]
    for name, value in values.items():
        setattr(form, name, value)
    db.session.commit()
    return form


def seed_job(sandbox: Any, start: datetime, hours: float, employee_ids: list[str]) -> None:
    """Put another customer's job for these pros in HCP (as the office would)."""
    end = start + timedelta(hours=hours)
    walk_in_job(sandbox, start.isoformat(), end.isoformat(), employee_ids)


def synced(sub: Submission) -> Submission:
    """Sync a submission to the end and return it fresh."""
    db.session.commit()
    assert run_until_done(sub.id) == "synced"
    return db.session.get(Submission, sub.id)


def job_in_hcp(sandbox: Any, sub: Submission) -> dict[str, Any]:
    """Return the HCP job the submission made."""
    return next(j for j in state(sandbox)["jobs"] if j["id"] == sub.hcp_job_id)


def assigned(job: dict[str, Any]) -> list[str]:
    """Return the ids of a job's assigned pros."""
    return [e["id"] for e in job["assigned_employees"]]


def calls(sandbox: Any, method: str, path: str) -> int:
    """Return how many such requests the sandbox answered."""
    log = requests.get(f"{sandbox.url}/_sandbox/requests", params={"path": path}, timeout=5)
    return sum(1 for r in log.json()["requests"] if r["method"] == method)


def local_day(sub: Submission) -> datetime:
    """Return local midnight of the submission's booked day."""
    assert sub.scheduled_start is not None
    start = sub.scheduled_start.astimezone(CHICAGO)
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


# ---------------------------------------------------------------- the choice


def test_the_service_types_pros_take_it(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(service_employees=[staff["Dana"]])
    sub = synced(make_submission())
    job = job_in_hcp(sandbox, sub)
    assert assigned(job) == [staff["Dana"]]
    assert (sub.hcp_employee_id, sub.hcp_employee_name) == (staff["Dana"], "Dana Whitfield")
    assert "Needs assignment" not in job["tags"]
    assert job["schedule"]["arrival_window"] == 180  # the window's minutes (8–11 am)
    # One eligible pro: nobody's jobs need counting.
    assert calls(sandbox, "GET", "/jobs") == 0


def test_without_listed_pros_only_those_booked_online_are_eligible(app_ctx, sandbox):
    staff = pros(sandbox)
    sub = synced(make_submission())
    # Marcus, Dana and Tom can be booked online; Luis and Priya cannot.
    assert sub.hcp_employee_id in {staff["Marcus"], staff["Dana"], staff["Tom"]}
    assert calls(sandbox, "GET", "/jobs") == 1


def test_territories_narrow_the_pros_by_zip(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(territories={staff["Marcus"]: ["787"], staff["Dana"]: ["606"], staff["Tom"]: ["78745"]})
    chicago = synced(make_submission())  # 60614
    assert chicago.hcp_employee_id == staff["Dana"]
    austin = synced(make_submission(reference="HCP-AUS01", zip="78745", email="b@example.com",
                                    phone="+13125550199"))  # fmt: skip
    assert austin.hcp_employee_id == min(staff["Marcus"], staff["Tom"])  # both cover it: tie


def test_hcps_service_zones_can_decide_who_covers_a_zip(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(use_service_zones=True, territories={staff["Tom"]: ["606"]})  # zones win
    south = synced(make_submission(zip="78745"))  # South Austin: Tom and Luis (not bookable)
    assert south.hcp_employee_id == staff["Tom"]
    elsewhere = synced(make_submission(zip="60614", email="c@example.com", phone="+13125550111"))
    assert elsewhere.hcp_employee_id is None
    assert "service zone with ZIP 60614" in elsewhere.assignment_note
    assert "Needs assignment" in job_in_hcp(sandbox, elsewhere)["tags"]


def test_the_least_busy_pro_that_day_gets_the_job(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(service_employees=[staff["Marcus"], staff["Dana"]])
    sub = make_submission()
    db.session.commit()
    day = local_day(sub)
    # Marcus has two jobs that afternoon, Dana one: Dana whatever the ids' order.
    seed_job(sandbox, day.replace(hour=13), 1, [staff["Marcus"]])
    seed_job(sandbox, day.replace(hour=15), 1, [staff["Marcus"]])
    seed_job(sandbox, day.replace(hour=14), 1, [staff["Dana"]])
    seed_job(sandbox, day + timedelta(days=1, hours=13), 1, [staff["Dana"]])  # another day
    sub = synced(sub)
    assert sub.hcp_employee_id == staff["Dana"]
    assert sub.assignment_note == "Least busy of 2 eligible pros that day (1 job)"
    assert assigned(job_in_hcp(sandbox, sub)) == [staff["Dana"]]


def test_a_pro_with_a_job_at_that_time_is_passed_over(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(service_employees=[staff["Marcus"], staff["Dana"]])
    sub = make_submission()
    db.session.commit()
    day = local_day(sub)
    start = sub.scheduled_start.astimezone(CHICAGO)
    seed_job(sandbox, start + timedelta(minutes=30), 1, [staff["Marcus"]])  # overlaps
    seed_job(sandbox, day.replace(hour=13), 1, [staff["Dana"]])
    seed_job(sandbox, day.replace(hour=15), 1, [staff["Dana"]])
    assert synced(sub).hcp_employee_id == staff["Dana"]  # busier, but free at that time


def test_a_tie_goes_to_the_same_pro_every_time(app_ctx, sandbox):
    staff = pros(sandbox)
    both = [staff["Dana"], staff["Marcus"]]
    first = make_submission()
    db.session.commit()
    day = first.booking_date + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    chosen = []
    for sub, order in ((first, both), (make_submission(booking_date=day), both[::-1])):
        rules(service_employees=order)  # the order listed does not matter
        chosen.append(synced(sub).hcp_employee_id)
    assert chosen == [min(both), min(both)]  # two days, no jobs: a tie each time


def test_a_pro_chosen_for_a_job_not_sent_yet_counts_as_taken(app_ctx, sandbox):
    from hcpform.connection import make_client
    from hcpform.sync.records import ensure_assignment

    staff = pros(sandbox)
    rules(service_employees=[staff["Marcus"], staff["Dana"]])
    first = make_submission()
    second = make_submission(email="g@example.com", phone="+13125550126")
    db.session.commit()
    # The first one's pro is chosen (and stored), its job not created yet: HCP can't see it.
    ensure_assignment(make_client(), first, "America/Chicago")
    assert first.hcp_employee_id == min(staff["Marcus"], staff["Dana"])
    other = synced(second)
    assert other.hcp_employee_id == max(staff["Marcus"], staff["Dana"])
    assert synced(first).hcp_employee_id == min(staff["Marcus"], staff["Dana"])  # kept


def day_job_reads(sandbox: Any) -> int:
    """Return how many times the sandbox listed a day's jobs (the assignment's count)."""
    log = requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()["requests"]
    return sum(
        1
        for r in log
        if r["method"] == "GET" and r["path"] == "/jobs" and "scheduled_start_min" in r["query"]
    )


def test_the_days_jobs_are_read_once_a_minute_and_our_own_since_still_count(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(service_employees=[staff["Marcus"], staff["Dana"]])
    first = synced(make_submission())
    second = synced(make_submission(email="g@example.com", phone="+13125550126"))
    # One read for both: the first job, sent after it, is counted from our own records, so
    # the second (same window) goes to the other pro rather than double-booking the first.
    assert day_job_reads(sandbox) == 1
    assert {first.hcp_employee_id, second.hcp_employee_id} == {staff["Marcus"], staff["Dana"]}
    assert assigned(job_in_hcp(sandbox, second)) == [second.hcp_employee_id]


def test_no_eligible_pro_leaves_the_job_unassigned_and_tagged(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(service_employees=[staff["Marcus"]], territories={staff["Marcus"]: ["787"]})
    sub = synced(make_submission())
    job = job_in_hcp(sandbox, sub)
    assert job["assigned_employees"] == [] and "Needs assignment" in job["tags"]
    assert sub.hcp_employee_id is None and sub.assigned_at is not None
    assert sub.assignment_note == "No eligible pro covers ZIP 60614"


def test_a_preferred_time_is_never_assigned(app_ctx, sandbox):
    sub = synced(make_submission(schedule_kind="preference"))
    job = job_in_hcp(sandbox, sub)
    assert job["assigned_employees"] == [] and job["work_status"] == "needs scheduling"
    assert {"Needs assignment", "Preferred time"} <= set(job["tags"])
    assert calls(sandbox, "GET", "/jobs") == 0 and calls(sandbox, "GET", "/employees") == 0


def test_a_booked_estimate_gets_its_pro_too(app_ctx, sandbox):
    staff = pros(sandbox)
    form = rules(service_employees=[staff["Tom"]])
    form.service_types = [
        {**s, "creates": "estimate"} if s["name"] == "Drain cleaning" else s
        for s in form.service_types
    ]
    db.session.commit()
    sub = synced(make_submission())
    estimate = next(e for e in state(sandbox)["estimates"] if e["id"] == sub.hcp_estimate_id)
    assert [e["id"] for e in estimate["assigned_employees"]] == [staff["Tom"]]


# ---------------------------------------------------------------- the choice is kept, dispatch


def test_a_resumed_sync_sends_the_same_pro_and_counts_once(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(service_employees=[staff["Marcus"], staff["Dana"]])
    sub = make_submission()
    db.session.commit()
    faults(sandbox, {"method": "POST", "path": "/jobs", "kind": "commit_then_drop"})
    sub = synced(sub)
    assert sub.attempts >= 2 and state(sandbox)["counts"]["jobs"] == 1
    assert assigned(job_in_hcp(sandbox, sub)) == [sub.hcp_employee_id]
    log = requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()["requests"]
    lists = [r["query"] for r in log if r["method"] == "GET" and r["path"] == "/jobs"]
    # One count of the day's jobs for the choice; one list of the customer's jobs to find ours.
    assert len([q for q in lists if "scheduled_start_min" in q]) == 1
    assert len([q for q in lists if "customer_id" in q]) == 1


def test_dispatch_is_sent_once_when_the_form_says_so(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(service_employees=[staff["Dana"]], dispatch_jobs=True)
    sub = make_submission()
    db.session.commit()
    faults(sandbox, {"method": "PUT", "path": "/jobs/{job_id}/dispatch", "kind": "500"})
    assert sync_submission(sub.id) == "retry"  # the job exists; its dispatch failed
    sub = synced(sub)
    assert sub.dispatched_at is not None
    dispatches = state(sandbox)["dispatches"]
    assert [(d["job_id"], d["employee_ids"]) for d in dispatches] == [
        (sub.hcp_job_id, [staff["Dana"]])
    ]
    assert state(sandbox)["counts"]["jobs"] == 1
    # Once synced, nothing is sent again.
    assert sync_submission(sub.id).startswith("skipped")
    assert len(state(sandbox)["dispatches"]) == 1


def test_a_refused_dispatch_or_zone_lookup_never_fails_the_request(app_ctx, sandbox):
    # HCP's definition grants both to application keys only: a company key may get a 403.
    staff = pros(sandbox)
    rules(service_employees=[staff["Dana"]], dispatch_jobs=True)
    faults(sandbox, {"method": "PUT", "path": "/jobs/{job_id}/dispatch", "kind": "403"})
    sub = synced(make_submission())
    assert sub.hcp_employee_id == staff["Dana"] and sub.dispatched_at is None
    assert sub.assignment_note.endswith("Housecall Pro refused the dispatch (403)")
    rules(use_service_zones=True)
    faults(sandbox, {"method": "GET", "path": "/service_zones", "kind": "403"})
    other = synced(make_submission(zip="78745", email="f@example.com", phone="+13125550125"))
    assert other.hcp_employee_id is None and "did not answer who can take it (403)" in (
        other.assignment_note
    )
    assert "Needs assignment" in job_in_hcp(sandbox, other)["tags"]
    assert db.session.scalar(select(HcpConnection.state)) != "disconnected"


def test_no_dispatch_when_off_or_unassigned(app_ctx, sandbox):
    staff = pros(sandbox)
    rules(service_employees=[staff["Dana"]])
    assert synced(make_submission()).dispatched_at is None
    rules(dispatch_jobs=True, territories={staff["Dana"]: ["787"]})
    unassigned = synced(make_submission(email="d@example.com", phone="+13125550123"))
    assert unassigned.hcp_employee_id is None and unassigned.dispatched_at is None
    assert state(sandbox)["dispatches"] == []


# ---------------------------------------------------------------- the admin


def test_the_admin_page_shows_the_pro_and_the_dispatch(app, admin_client, sandbox):
    with app.app_context():
        staff = pros(sandbox)
        rules(service_employees=[staff["Dana"]], dispatch_jobs=True)
        done = synced(make_submission()).id
        rules(service_employees=[staff["Dana"]], territories={staff["Dana"]: ["787"]})
        needs = synced(make_submission(email="e@example.com", phone="+13125550124")).id
    page = text(admin_client.get(f"/admin/submissions/{done}"))
    assert f"Assigned to Dana Whitfield ({staff['Dana']})" in page
    assert "Dispatched to Dana Whitfield" in page
    assert f"Dana Whitfield ({staff['Dana']}), dispatched" in page
    other = text(admin_client.get(f"/admin/submissions/{needs}"))
    assert "Needs assignment" in other and "No eligible pro covers ZIP 60614" in other
    assert "Assigned to" not in other


def test_the_editor_saves_pros_length_territories_and_dispatch(app, admin_client, sandbox):
    staff = pros(sandbox)
    page = text(admin_client.get(URL))
    assert "Dana Whitfield" in page and "Priya Shah (not booked online)" in page
    data = current_values(admin_client)
    row = next(
        k.split("-")[1] for k, v in data.items() if re.fullmatch(r"service_types-\d+-name", k)
        and v == "Drain cleaning"
    )  # fmt: skip
    data[f"service_types-{row}-employee_ids"] = [staff["Dana"], staff["Marcus"]]
    data[f"service_types-{row}-duration_minutes"] = "90"
    data["territories"] = "Dana Whitfield: 787, 60614\nmarcus reyes → 606"
    data["dispatch_jobs"] = "y"
    response = admin_client.post(URL, data=data)
    assert response.status_code == 303, text(response)[:3000]
    form = form_row(app)
    drain = next(s for s in form.service_types if s["name"] == "Drain cleaning")
    assert drain["employee_ids"] == sorted([staff["Dana"], staff["Marcus"]])
    assert drain["duration_minutes"] == 90
    assert form.territories == {staff["Dana"]: ["60614", "787"], staff["Marcus"]: ["606"]}
    assert form.dispatch_jobs is True and form.use_service_zones is False
    # The page shows the saved values, and saving it unchanged keeps them.
    again = admin_client.post(URL, data=current_values(admin_client))
    assert again.status_code == 303
    assert form_row(app).territories == form.territories
    assert next(s for s in form_row(app).service_types if s["name"] == "Drain cleaning") == drain


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        (
            "territories",
            "Nobody Here: 787",
            "Line 1: Nobody Here is not an employee in Housecall Pro",
        ),
        (
            "territories",
            "Dana Whitfield: 78",
            "use 5-digit ZIPs or 3- or 4-digit prefixes; not: 78",
        ),
        ("territories", "Dana Whitfield 787", "write it like Marcus Reyes: 787, 78745"),
        ("territories", "Dana Whitfield: 787\nDana Whitfield: 606", "is already listed"),
        ("duration_minutes", "ten", "Write the visit length in minutes, from 15 to 1440"),
        ("duration_minutes", "5", "Write the visit length in minutes, from 15 to 1440"),
        ("employee_ids", "pro_made_up", "is not a valid choice"),
    ],
)
def test_the_editor_names_bad_input(app, admin_client, sandbox, field, typed, message):
    data = current_values(admin_client)
    if field == "territories":
        data["territories"] = typed
    else:
        data[f"service_types-0-{field}"] = typed
    response = admin_client.post(URL, data=data)
    assert response.status_code == 400
    assert message in text(response).replace("&#39;", "'")
    assert form_row(app).territories == {} and "employee_ids" not in form_row(app).service_types[0]


def test_the_editor_marks_pros_hcp_no_longer_has(app, admin_client, sandbox):
    with app.app_context():
        rules(service_employees=["pro_gone"], territories={"pro_gone": ["787"]})
    page = text(admin_client.get(URL))
    assert "pro_gone (no longer in HCP)" in page
    assert "Drain cleaning names the pro pro_gone, who is no longer in Housecall Pro" in page
    assert "Territories names the pro pro_gone" in page
    # Saved unchanged, the stored id stays (ticked) until someone unticks it.
    assert admin_client.post(URL, data=current_values(admin_client)).status_code == 303
    drain = next(s for s in form_row(app).service_types if s["name"] == "Drain cleaning")
    assert drain["employee_ids"] == ["pro_gone"]
    assert form_row(app).territories == {"pro_gone": ["787"]}

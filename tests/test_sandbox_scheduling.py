"""The sandbox's scheduling model over real HTTP: working hours, booking windows, dispatch,
service zones, estimates and leads (the ground issue 11's availability and assignment stand on).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.test_hcp_sandbox import ADDRESS, ID_RE, Hcp

MONDAY, TUESDAY, SATURDAY, SUNDAY = "2030-03-04", "2030-03-05", "2030-03-02", "2030-03-03"
WINDOWS = "/company/schedule_availability/booking_windows"
# America/Chicago is UTC-6 in early March 2030: 8:00 local is 14:00Z.
AT_8, AT_11, AT_14 = "T14:00:00Z", "T17:00:00Z", "T20:00:00Z"


@pytest.fixture
def hcp(sandbox: Any) -> Iterator[Hcp]:
    client = Hcp(sandbox.url)
    yield client
    client.session.close()


def pros(hcp: Hcp) -> dict[str, str]:
    """Employee ids by first name."""
    listing = hcp.get("/employees", params={"page_size": 50}).json()["employees"]
    return {e["first_name"]: e["id"] for e in listing}


def windows(hcp: Hcp, day: str, duration: int = 180, days: int = 1, **params: Any) -> dict:
    """Booking windows as {start_time: available}."""
    query = {"start_date": day, "show_for_days": days, "service_duration": duration, **params}
    response = hcp.get(WINDOWS, params=query)
    assert response.status_code == 200, response.text
    return {w["start_time"]: w["available"] for w in response.json()["booking_windows"]}


def book(
    hcp: Hcp, customer: dict[str, Any], start: str, end: str, staff: list[str] | None = None
) -> dict[str, Any]:
    """Create a scheduled job (naive times are the company's)."""
    body: dict[str, Any] = {
        "customer_id": customer["id"],
        "address_id": customer["addresses"][0]["id"],
        "schedule": {"scheduled_start": start, "scheduled_end": end, "arrival_window": 60},
    }
    if staff is not None:
        body["assigned_employee_ids"] = staff
    response = hcp.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_booked_window_is_no_longer_available(hcp: Hcp) -> None:
    staff, customer = pros(hcp), hcp.customer()
    # On Monday only Marcus and Dana can be booked online (Tom works Tuesday to Saturday).
    assert windows(hcp, MONDAY) == {
        MONDAY + AT_8: True,
        MONDAY + AT_11: True,
        MONDAY + AT_14: True,
    }
    book(hcp, customer, f"{MONDAY}T08:00:00", f"{MONDAY}T11:00:00", [staff["Marcus"]])
    assert windows(hcp, MONDAY)[MONDAY + AT_8] is True  # Dana is still free
    # An unassigned job takes one free pro: now nobody is left from 8 to 11.
    book(hcp, customer, f"{MONDAY}T09:30:00", f"{MONDAY}T10:00:00")
    assert windows(hcp, MONDAY) == {
        MONDAY + AT_8: False,
        MONDAY + AT_11: True,
        MONDAY + AT_14: True,
    }
    # A scheduled estimate takes its pros' time too.
    estimate = {
        "customer_id": customer["id"],
        "assigned_employee_ids": [staff["Marcus"], staff["Dana"]],
        "schedule": {"start_time": f"{MONDAY}T13:00:00", "end_time": f"{MONDAY}T13:30:00"},
    }
    assert hcp.post("/estimates", json=estimate).status_code == 200
    assert windows(hcp, MONDAY)[MONDAY + AT_11] is False
    # A job ending exactly when a window starts does not overlap it.
    book(hcp, customer, f"{MONDAY}T13:30:00", f"{MONDAY}T14:00:00")
    assert windows(hcp, MONDAY)[MONDAY + AT_14] is True


def test_windows_follow_each_pros_working_hours(hcp: Hcp) -> None:
    staff = pros(hcp)
    saturday = windows(hcp, SATURDAY)
    assert list(saturday.values()) == [True, True, True]  # Tom works Saturdays
    assert not any(windows(hcp, SATURDAY, **{"employee_ids[]": [staff["Marcus"]]}).values())
    assert not any(windows(hcp, MONDAY, **{"employee_ids[]": [staff["Tom"]]}).values())
    assert all(windows(hcp, TUESDAY, **{"employee_ids[]": [staff["Tom"]]}).values())
    # Luis is a field tech who cannot be booked online: HCP offers no window for him.
    assert not any(windows(hcp, MONDAY, **{"employee_ids[]": [staff["Luis"]]}).values())
    assert windows(hcp, SUNDAY) == {}  # the company is closed on Sunday

    hours = {staff["Dana"]: {"monday": ["12:00", "17:00"]}}
    settings = hcp.control("POST", "schedule", json={"working_hours": hours})
    assert settings["working_hours"][staff["Dana"]]["monday"] == ["12:00", "17:00"]
    assert settings["working_hours"][staff["Dana"]]["tuesday"] is None
    dana = windows(hcp, MONDAY, **{"employee_ids[]": [staff["Dana"]]})
    assert dana == {MONDAY + AT_8: False, MONDAY + AT_11: False, MONDAY + AT_14: True}
    assert not any(windows(hcp, TUESDAY, **{"employee_ids[]": [staff["Dana"]]}).values())
    # The 30-minute default: Dana's Monday opens at noon (18:00Z).
    half_hours = windows(hcp, MONDAY, duration=30, **{"employee_ids[]": [staff["Dana"]]})
    assert [t for t, ok in half_hours.items() if ok][0] == f"{MONDAY}T18:00:00Z"

    bad = requests.post(
        f"{hcp.base}/_sandbox/schedule",
        json={"working_hours": {staff["Dana"]: {"monday": ["17:00", "08:00"]}}},
        timeout=5,
    )
    assert bad.status_code == 400
    unknown = requests.post(
        f"{hcp.base}/_sandbox/schedule", json={"working_hours": {"pro_x": {}}}, timeout=5
    )
    assert unknown.status_code == 400


def test_service_duration_longer_than_a_window(hcp: Hcp) -> None:
    staff, customer = pros(hcp), hcp.customer()
    assert windows(hcp, MONDAY, duration=600) == {}  # longer than the 9-hour day
    four_hours = windows(hcp, MONDAY, duration=240)
    assert list(four_hours) == [MONDAY + AT_8, f"{MONDAY}T18:00:00Z"]  # 16:00-20:00 won't fit
    whole_day = windows(hcp, MONDAY, duration=540, days=2)
    assert whole_day == {MONDAY + AT_8: True, TUESDAY + AT_8: True}
    # One short visit each for both Monday pros takes the whole-day window, not the half hours.
    book(hcp, customer, f"{MONDAY}T15:00:00", f"{MONDAY}T16:00:00", [staff["Marcus"]])
    book(hcp, customer, f"{MONDAY}T09:00:00", f"{MONDAY}T09:30:00", [staff["Dana"]])
    assert windows(hcp, MONDAY, duration=540)[MONDAY + AT_8] is False
    assert windows(hcp, MONDAY, duration=60)[MONDAY + AT_8] is True
    # Each half of the day still has one free pro: Marcus in the morning, Dana after noon.
    assert windows(hcp, MONDAY, duration=240) == {
        MONDAY + AT_8: True,
        f"{MONDAY}T18:00:00Z": True,
    }


def test_employee_filter(hcp: Hcp) -> None:
    staff, customer = pros(hcp), hcp.customer()
    book(hcp, customer, f"{MONDAY}T08:00:00", f"{MONDAY}T11:00:00", [staff["Marcus"]])
    marcus = {"employee_ids[]": [staff["Marcus"]]}
    dana = {"employee_ids[]": [staff["Dana"]]}
    both = {"employee_ids[]": [staff["Marcus"], staff["Dana"]]}
    assert windows(hcp, MONDAY, **marcus)[MONDAY + AT_8] is False
    assert windows(hcp, MONDAY, **dana)[MONDAY + AT_8] is True
    assert windows(hcp, MONDAY, **both)[MONDAY + AT_8] is True
    assert windows(hcp, MONDAY, **marcus)[MONDAY + AT_11] is True
    # An unassigned job could only go to Dana, so Dana has no room left either.
    book(hcp, customer, f"{MONDAY}T10:00:00", f"{MONDAY}T11:00:00")
    assert windows(hcp, MONDAY, **dana)[MONDAY + AT_8] is False
    # On Tuesday Tom is free as well, so the unassigned job can go to him.
    book(hcp, customer, f"{TUESDAY}T10:00:00", f"{TUESDAY}T11:00:00")
    assert windows(hcp, TUESDAY, **dana)[TUESDAY + AT_8] is True


def test_dispatch(hcp: Hcp) -> None:
    staff, customer = pros(hcp), hcp.customer()
    job = book(hcp, customer, f"{MONDAY}T08:00:00", f"{MONDAY}T11:00:00")
    assert job["assigned_employees"] == []
    body = {"dispatched_employees": [{"employee_id": staff["Dana"]}]}
    response = hcp.put(f"/jobs/{job['id']}/dispatch", json=body)
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()["assigned_employees"]] == [staff["Dana"]]
    fetched = hcp.get(f"/jobs/{job['id']}", params={"expand[]": "appointments"}).json()
    assert [e["id"] for e in fetched["assigned_employees"]] == [staff["Dana"]]
    assert fetched["schedule"]["appointments"][0]["dispatched_employees_ids"] == [staff["Dana"]]
    by_dana = hcp.get("/jobs", params={"employee_ids[]": staff["Dana"]}).json()
    assert [j["id"] for j in by_dana["jobs"]] == [job["id"]]

    state = hcp.control("GET", "state")
    assert state["counts"]["dispatches"] == 1
    assert state["dispatches"][0]["job_id"] == job["id"]
    assert state["dispatches"][0]["employee_ids"] == [staff["Dana"]]

    missing = hcp.put(f"/jobs/job_{'0' * 32}/dispatch", json=body)
    assert missing.status_code == 404
    nobody = {"dispatched_employees": [{"employee_id": "pro_" + "0" * 32}]}
    assert hcp.put(f"/jobs/{job['id']}/dispatch", json=nobody).status_code == 422
    assert hcp.control("GET", "state")["counts"]["dispatches"] == 1
    cleared = hcp.put(f"/jobs/{job['id']}/dispatch", json={"dispatched_employees": []})
    assert cleared.status_code == 200 and cleared.json()["assigned_employees"] == []


def test_estimates_create_find_by_note_and_list(hcp: Hcp) -> None:
    staff, customer = pros(hcp), hcp.customer()
    job_type = hcp.get("/job_fields/job_types").json()["job_types"][0]
    body = {
        "customer_id": customer["id"],
        "address_id": customer["addresses"][0]["id"],
        "note": "Water heater quote. hcpform ref HCF-7Q2K",
        "lead_source": "hcpform",
        "assigned_employee_ids": [staff["Marcus"]],
        "schedule": {
            "start_time": f"{MONDAY}T08:00:00",
            "end_time": f"{MONDAY}T11:00:00",
            "arrival_window_in_minutes": 120,
        },
        "options": [
            {
                "name": "Tank",
                "tags": ["hcpform"],
                "line_items": [{"name": "Visit", "unit_price": 5000}],
            }
        ],
        "estimate_fields": {"job_type_id": job_type["id"]},
    }
    response = hcp.post("/estimates", json=body)
    assert response.status_code == 200, response.text  # 200, as the definition documents
    estimate = response.json()
    assert estimate["id"].startswith("csr_") and estimate["work_status"] == "scheduled"
    assert estimate["schedule"]["scheduled_start"] == f"{MONDAY}{AT_8}"
    assert estimate["schedule"]["arrival_window"] == 120
    assert estimate["address"]["id"] == customer["addresses"][0]["id"]
    assert estimate["estimate_fields"] == {"job_type_id": job_type["id"]}
    (option,) = estimate["options"]
    assert option["name"] == "Tank" and option["total_amount"] == 5000
    assert [n["content"] for n in option["notes"]] == [body["note"]]

    plain = hcp.post("/estimates", json={"customer_id": customer["id"], "note": "other"}).json()
    assert plain["work_status"] == "needs scheduling" and len(plain["options"]) == 1
    assert int(plain["estimate_number"]) == int(estimate["estimate_number"]) + 1

    # Look before create: the customer's estimates, read for our reference.
    listing = hcp.get("/estimates", params={"customer_id": customer["id"]}).json()
    assert listing["total_items"] == 2
    ours = [
        e["id"]
        for e in listing["estimates"]
        if any("hcpform ref HCF-7Q2K" in n["content"] for o in e["options"] for n in o["notes"])
    ]
    assert ours == [estimate["id"]]
    scheduled = hcp.get("/estimates", params={"work_status[]": ["scheduled"]}).json()
    assert [e["id"] for e in scheduled["estimates"]] == [estimate["id"]]
    by_pro = hcp.get("/estimates", params={"employee_ids[]": staff["Marcus"]}).json()
    assert by_pro["total_items"] == 1
    assert hcp.get(f"/estimates/{estimate['id']}").json() == estimate
    assert hcp.get("/estimates/csr_nope").status_code == 404

    assert hcp.post("/estimates", json={"note": "nobody"}).status_code == 422
    unknown = hcp.post("/estimates", json={"customer_id": "cus_" + "0" * 32})
    assert unknown.status_code == 404
    assert hcp.control("GET", "state")["counts"]["estimates"] == 2


def test_leads_create_and_find_for_a_customer(hcp: Hcp) -> None:
    customer = hcp.customer()
    body = {
        "customer_id": customer["id"],
        "address_id": customer["addresses"][0]["id"],
        "lead_source": "hcpform",
        "note": "Call back about a remodel. hcpform ref HCF-9X1A",
        "tags": ["hcpform"],
    }
    response = hcp.post("/leads", json=body)
    assert response.status_code == 201, response.text
    lead = response.json()
    assert ID_RE["lea"].match(lead["id"]) and "note" not in lead  # HCP's Lead has no note
    listing = hcp.get("/leads", params={"customer_id": customer["id"]}).json()
    assert [x["id"] for x in listing["leads"]] == [lead["id"]]
    assert listing["leads"][0]["tags"] == ["hcpform"]
    (stored,) = hcp.control("GET", "state")["leads"]
    assert stored["note"] == body["note"]

    inline = {
        "customer": {"first_name": "Lee", "mobile_number": "5125550123"},
        "address": {k: ADDRESS[k] for k in ("street", "city", "state", "zip")},
    }
    assert hcp.post("/leads", json=inline).status_code == 201
    assert hcp.control("GET", "state")["counts"]["leads"] == 2


def test_jobs_list_filters(hcp: Hcp) -> None:
    staff, customer = pros(hcp), hcp.customer()
    monday = book(hcp, customer, f"{MONDAY}T08:00:00", f"{MONDAY}T11:00:00", [staff["Marcus"]])
    tuesday = book(hcp, customer, f"{TUESDAY}T08:00:00", f"{TUESDAY}T11:00:00", [staff["Dana"]])
    both = book(
        hcp, customer, f"{TUESDAY}T14:00:00", f"{TUESDAY}T15:00:00", [staff["Dana"], staff["Tom"]]
    )
    hcp.post("/jobs", json={"customer_id": customer["id"], "address_id": tuesday["address"]["id"]})

    def found(**params: Any) -> set[str]:
        response = hcp.get("/jobs", params={"page_size": 50, **params})
        assert response.status_code == 200, response.text
        return {j["id"] for j in response.json()["jobs"]}

    day = {
        "scheduled_start_min": f"{TUESDAY}T00:00:00",
        "scheduled_start_max": f"{TUESDAY}T23:59:59",
    }
    assert found(**day) == {tuesday["id"], both["id"]}  # the unscheduled job is left out
    assert found(**day, **{"employee_ids[]": [staff["Tom"]]}) == {both["id"]}
    assert found(**{"employee_ids[]": [staff["Marcus"], staff["Tom"]]}) == {
        monday["id"],
        both["id"],
    }
    assert found(scheduled_start_min=f"{TUESDAY}T12:00:00-06:00") == {both["id"]}
    assert found(scheduled_start_max=f"{MONDAY}T14:00:00Z") == {monday["id"]}
    assert hcp.get("/jobs", params={"scheduled_start_min": "next week"}).status_code == 422


def test_no_booking_windows_configured(hcp: Hcp) -> None:
    assert any(windows(hcp, MONDAY).values())
    assert (
        hcp.control("POST", "schedule", json={"booking_windows": False})["booking_windows"] is False
    )
    response = hcp.get(WINDOWS, params={"start_date": MONDAY, "show_for_days": 7})
    assert response.status_code == 200
    assert response.json()["booking_windows"] == []
    assert response.json()["show_for_days"] == 7
    days = hcp.get("/company/schedule_availability").json()["daily_availabilities"]["data"]
    assert len(days) == 7 and all(d["schedule_windows"] == [] for d in days)
    hcp.control("POST", "reset")
    assert hcp.control("GET", "schedule")["booking_windows"] is True
    assert any(windows(hcp, MONDAY).values())
    bad = requests.post(f"{hcp.base}/_sandbox/schedule", json={"booking_windows": 0}, timeout=5)
    assert bad.status_code == 400


def test_company_employees_and_service_zones(hcp: Hcp) -> None:
    company = hcp.get("/company").json()
    assert company["time_zone"] == "America/Chicago"
    staff = pros(hcp)
    assert {"Marcus", "Dana", "Luis", "Tom", "Priya"} == set(staff)

    zones = hcp.get("/service_zones").json()
    assert zones["total_items"] == 2
    names = {z["name"]: z for z in zones["service_zones"]}
    assert {p["id"] for p in names["South Austin"]["service_pros"]} == {staff["Tom"], staff["Luis"]}
    assert set(company["service_areas_data"]["zip_codes"]) == {
        code for z in zones["service_zones"] for code in z["zip_codes"]
    }
    by_zip = hcp.get("/service_zones", params={"zip_code": "78745"}).json()["service_zones"]
    assert [z["name"] for z in by_zip] == ["South Austin"]
    by_address = hcp.get("/service_zones", params={"address": "1200 Barton Springs Rd, 78704"})
    assert [z["name"] for z in by_address.json()["service_zones"]] == ["Central Austin"]
    assert hcp.get("/service_zones", params={"zip_code": "10001"}).json()["service_zones"] == []

    hours = hcp.control("GET", "state")["schedule"]["working_hours"]
    assert hours[staff["Tom"]]["saturday"] == ["08:00", "17:00"]
    assert hours[staff["Marcus"]]["saturday"] is None


def test_faults_apply_to_the_new_endpoints(hcp: Hcp) -> None:
    customer = hcp.customer()
    rules = [
        {"method": "GET", "path": WINDOWS, "kind": "503"},
        {"path": "/service_zones", "kind": "429", "retry_after": "3"},
        {"method": "POST", "path": "/estimates", "kind": "commit_then_500"},
        {"method": "PUT", "path": "/jobs/{job_id}/dispatch", "kind": "500"},
    ]
    hcp.control("POST", "faults", json={"rules": rules})
    assert hcp.get(WINDOWS, check=False).status_code == 503
    limited = hcp.get("/service_zones", check=False)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    lost = hcp.post("/estimates", json={"customer_id": customer["id"]}, check=False)
    assert lost.status_code == 500
    assert hcp.control("GET", "state")["counts"]["estimates"] == 1  # saved all the same
    job = book(hcp, customer, f"{MONDAY}T08:00:00", f"{MONDAY}T09:00:00")
    body = {"dispatched_employees": [{"employee_id": pros(hcp)["Dana"]}]}
    assert hcp.put(f"/jobs/{job['id']}/dispatch", json=body, check=False).status_code == 500
    assert hcp.control("GET", "state")["counts"]["dispatches"] == 0  # nothing done
    assert hcp.get(WINDOWS).status_code == 200  # the rules are used up


def test_the_contract_rejects_bad_requests(hcp: Hcp) -> None:
    customer = hcp.customer()
    job = book(hcp, customer, f"{MONDAY}T08:00:00", f"{MONDAY}T09:00:00")

    typo = hcp.post("/estimates", json={"customer_id": customer["id"], "notes": "x"})
    assert typo.status_code == 422 and "notes" in typo.json()["errors"]
    not_iso = {"customer_id": customer["id"], "schedule": {"start_time": "Monday 9am"}}
    bad_time = hcp.post("/estimates", json=not_iso)
    assert bad_time.status_code == 422 and "schedule.start_time" in bad_time.json()["errors"]
    lead_typo = hcp.post("/leads", json={"customer_id": customer["id"], "notes": "x"})
    assert lead_typo.status_code == 422 and "notes" in lead_typo.json()["errors"]
    no_list = hcp.put(f"/jobs/{job['id']}/dispatch", json={"employee_ids": ["pro_x"]})
    assert no_list.status_code == 422
    as_text = hcp.put(f"/jobs/{job['id']}/dispatch", json={"dispatched_employees": "pro_x"})
    assert as_text.status_code == 422
    zero = hcp.get(WINDOWS, params={"service_duration": 0})
    assert zero.status_code == 422 and "service_duration" in zero.json()["errors"]
    bare = hcp.get(WINDOWS, params={"employee_ids": "pro_x"})
    assert bare.status_code == 422 and "employee_ids" in bare.json()["errors"]
    days = hcp.get(WINDOWS, params={"show_for_days": "two"})
    assert days.status_code == 422
    state = hcp.control("GET", "state")
    assert state["counts"]["estimates"] == 0 and state["counts"]["leads"] == 0
    assert state["counts"]["dispatches"] == 0
    logged = hcp.control("GET", "requests", params={"violations": "1"})
    assert logged["count"] == 8
    # These were meant to break the contract; the fixture fails on any logged violation.
    hcp.control("DELETE", "requests")

"""Tests of the HCP sandbox (real HTTP) and of its contract checks against HCP's definition."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from hcpform.formdefs import TEMPLATE_SERVICE_TYPES as JOB_TYPE_NAMES
from hcpform_sandbox import DEFAULT_API_KEY, SandboxServer, create_sandbox_app
from hcpform_sandbox.cli import sandbox_command
from hcpform_sandbox.contract import contract

AUTH = {"Authorization": f"Token {DEFAULT_API_KEY}"}
ID_RE = {p: re.compile(rf"^{p}_[0-9a-f]{{32}}$") for p in ("cus", "adr", "job", "pro", "lea")}
UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ADDRESS = {"street": "1200 Barton Springs Rd", "city": "Austin", "state": "TX", "zip": "78704"}


class Hcp:
    """A requests session against the sandbox that checks every response against the spec."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers.update(AUTH)

    def call(self, method: str, path: str, *, check: bool = True, **kw: Any) -> requests.Response:
        response = self.session.request(method, self.base + path, **kw)
        if check:
            is_json = response.headers.get("Content-Type", "").startswith("application/json")
            body = response.json() if is_json else None
            problems = contract().check_response(method, path, response.status_code, body)
            assert problems == [], (method, path, response.status_code, problems)
        return response

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.call("PUT", path, **kw)

    def control(self, method: str, path: str, **kw: Any) -> Any:
        response = requests.request(method, f"{self.base}/_sandbox/{path}", timeout=5, **kw)
        assert response.status_code == 200, response.text
        return response.json()

    def customer(self, **fields: Any) -> dict[str, Any]:
        body = {
            "first_name": "Jane",
            "last_name": "Doe",
            "addresses": [dict(ADDRESS, country="US")],
        }
        body.update(fields)
        response = self.post("/customers", json=body)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(rng_seed=1234, job_types=JOB_TYPE_NAMES) as srv:
        yield srv


@pytest.fixture
def hcp(server: SandboxServer) -> Iterator[Hcp]:
    client = Hcp(server.url)
    client.control("POST", "reset")
    yield client
    client.session.close()


# --------------------------------------------------------------------------- auth


def test_auth_missing_wrong_and_revoked_key(hcp: Hcp) -> None:
    anonymous = requests.get(hcp.base + "/customers", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"message": "Unauthorized"}
    wrong = requests.get(
        hcp.base + "/customers", headers={"Authorization": "Token nope"}, timeout=5
    )
    assert wrong.status_code == 401
    bearer = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
    assert requests.get(hcp.base + "/customers", headers=bearer, timeout=5).status_code == 200
    assert hcp.get("/customers").status_code == 200

    assert hcp.control("POST", "keys", json={"valid": ["rotated"]}) == {"valid": ["rotated"]}
    assert hcp.get("/customers").status_code == 401
    rotated = {"Authorization": "Token rotated"}
    assert requests.get(hcp.base + "/customers", headers=rotated, timeout=5).status_code == 200
    hcp.control("POST", "reset")  # restores the initial keys
    assert hcp.get("/customers").status_code == 200


# --------------------------------------------------------------------------- customers, addresses


def test_create_customer_with_inline_address(hcp: Hcp) -> None:
    customer = hcp.customer(email="jane@example.com", mobile_number="5125550100", tags=["web"])
    assert ID_RE["cus"].match(customer["id"])
    assert UTC_RE.match(customer["created_at"]) and UTC_RE.match(customer["updated_at"])
    (address,) = customer["addresses"]
    assert ID_RE["adr"].match(address["id"])
    assert address["type"] == "service"
    assert address["street_line_2"] is None and address["zip"] == "78704"
    assert customer["tags"] == ["web"] and customer["lead_source"] is None

    fetched = hcp.get(f"/customers/{customer['id']}").json()
    assert fetched == customer
    assert hcp.get("/customers/cus_" + "0" * 32).status_code == 404


def test_update_customer(hcp: Hcp) -> None:
    customer = hcp.customer()
    response = hcp.put(f"/customers/{customer['id']}", json={"email": "new@example.com"})
    assert response.status_code == 200
    assert response.json()["email"] == "new@example.com"
    assert response.json()["first_name"] == "Jane"


def test_add_address_answers_200_and_lists(hcp: Hcp) -> None:
    customer = hcp.customer()
    body = dict(ADDRESS, street="9 Elm St", country="US", street_line_2=None)
    response = hcp.post(f"/customers/{customer['id']}/addresses", json=body)
    assert response.status_code == 200  # as documented, not 201
    address = response.json()
    assert ID_RE["adr"].match(address["id"]) and address["type"] == "service"

    listing = hcp.get(f"/customers/{customer['id']}/addresses").json()
    assert listing["total_items"] == 2 and len(listing["addresses"]) == 2
    assert listing["addresses"][0]["id"] == address["id"]  # newest first by default
    one = hcp.get(f"/customers/{customer['id']}/addresses/{address['id']}")
    assert one.status_code == 200 and one.json() == address
    other = hcp.customer()
    assert hcp.get(f"/customers/{other['id']}/addresses/{address['id']}").status_code == 404
    missing = hcp.post(f"/customers/cus_{'0' * 32}/addresses", json=body)
    assert missing.status_code == 404 and "error" in missing.json()


def test_list_envelope_and_pagination(hcp: Hcp) -> None:
    ids = [hcp.customer(first_name=f"C{i:02d}")["id"] for i in range(23)]
    first = hcp.get("/customers", params={"page_size": 10}).json()
    assert {k: first[k] for k in ("page", "page_size", "total_pages", "total_items")} == {
        "page": 1,
        "page_size": 10,
        "total_pages": 3,
        "total_items": 23,
    }
    assert [c["id"] for c in first["customers"]] == ids[::-1][:10]  # created_at desc
    last = hcp.get("/customers", params={"page": 3, "page_size": 10}).json()
    assert len(last["customers"]) == 3
    ascending = hcp.get("/customers", params={"sort_direction": "asc", "page_size": 5}).json()
    assert [c["id"] for c in ascending["customers"]] == ids[:5]
    capped = hcp.get("/customers", params={"page_size": 500}).json()
    assert capped["page_size"] == 200 and len(capped["customers"]) == 23
    beyond = hcp.get("/customers", params={"page": 9}).json()
    assert beyond["customers"] == [] and beyond["total_items"] == 23
    empty = hcp.get("/customers", params={"q": "nobody-matches-this"}).json()
    assert empty["total_pages"] == 0 and empty["customers"] == []


def test_search_by_phone_digits_email_and_address(hcp: Hcp) -> None:
    jane = hcp.customer(email="Jane.Doe@Example.com", mobile_number="(512) 555-0100")
    bob = hcp.customer(first_name="Bob", last_name="Ray", home_number="512.555.0199")
    hcp.customer(first_name="Other", addresses=[dict(ADDRESS, zip="78701", country="US")])

    def found(q: str) -> list[str]:
        return [c["id"] for c in hcp.get("/customers", params={"q": q}).json()["customers"]]

    assert found("5125550100") == [jane["id"]]
    assert found("+1 512-555-0100") == [jane["id"]]
    assert found("512.555.0199") == [bob["id"]]
    assert sorted(found("555-01")) == sorted([jane["id"], bob["id"]])
    assert found("jane.doe@example.com") == [jane["id"]]
    assert found("bob ray") == [bob["id"]]
    assert len(found("78704")) == 2 and len(found("Barton Springs")) == 3


# --------------------------------------------------------------------------- jobs


def test_create_job_scheduled_and_unscheduled(hcp: Hcp) -> None:
    customer = hcp.customer()
    address_id = customer["addresses"][0]["id"]
    job_types = hcp.get("/job_fields/job_types").json()["job_types"]
    employees = hcp.get("/employees").json()["employees"]
    body = {
        "customer_id": customer["id"],
        "address_id": address_id,
        # A naive time is read in the company's zone (America/Chicago: UTC-6 in March).
        "schedule": {
            "scheduled_start": "2030-03-04T09:00:00",
            "scheduled_end": "2030-03-04T11:00:00-06:00",
            "arrival_window": 120,
        },
        "assigned_employee_ids": [employees[0]["id"]],
        "line_items": [{"name": "Diagnostic", "unit_price": 8900, "quantity": 1}],
        "notes": "Kitchen sink leaks",
        "tags": ["hcpform"],
        "lead_source": "hcpform",
        "job_fields": {"job_type_id": job_types[0]["id"]},
    }
    response = hcp.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    job = response.json()
    assert ID_RE["job"].match(job["id"])
    assert job["work_status"] == "scheduled"
    assert job["schedule"]["scheduled_start"] == "2030-03-04T15:00:00Z"
    assert job["schedule"]["scheduled_end"] == "2030-03-04T17:00:00Z"
    assert job["schedule"]["arrival_window"] == 120
    assert job["customer"]["id"] == customer["id"] and job["address"]["id"] == address_id
    assert [n["content"] for n in job["notes"]] == ["Kitchen sink leaks"]
    assert job["job_fields"] == {"job_type": job_types[0], "business_unit": None}
    assert [e["id"] for e in job["assigned_employees"]] == [employees[0]["id"]]
    assert job["total_amount"] == 8900

    plain = hcp.post("/jobs", json={"customer_id": customer["id"], "address_id": address_id})
    assert plain.status_code == 201
    assert plain.json()["work_status"] == "needs scheduling"
    assert plain.json()["job_fields"]["job_type"] is None
    assert int(plain.json()["invoice_number"]) == int(job["invoice_number"]) + 1

    fetched = hcp.get(f"/jobs/{job['id']}", params={"expand[]": "appointments"}).json()
    assert fetched["schedule"]["appointments"][0]["start_time"] == "2030-03-04T15:00:00Z"
    missing = hcp.get(f"/jobs/job_{'0' * 32}")
    assert missing.status_code == 404 and missing.json() == {"error": {"message": "job not found"}}

    jobs = hcp.get("/jobs", params={"customer_id": customer["id"]}).json()
    assert jobs["total_items"] == 2
    scheduled = hcp.get("/jobs", params={"work_status[]": ["scheduled"]}).json()
    assert [j["id"] for j in scheduled["jobs"]] == [job["id"]]
    window = {"scheduled_start_min": "2030-03-04T00:00:00Z", "scheduled_start_max": "2030-03-05"}
    assert hcp.get("/jobs", params=window).json()["total_items"] == 1


def test_create_job_rejects_wrong_customer_address_and_references(hcp: Hcp) -> None:
    alice, bob = hcp.customer(first_name="Alice"), hcp.customer(first_name="Bob")
    good = {"customer_id": alice["id"], "address_id": alice["addresses"][0]["id"]}

    def attempt(**changes: Any) -> requests.Response:
        return hcp.post("/jobs", json={**good, **changes})

    unknown_customer = attempt(customer_id="cus_" + "0" * 32)
    assert unknown_customer.status_code == 404
    assert unknown_customer.json() == {"error": {"message": "customer not found"}}
    assert attempt(address_id="adr_" + "0" * 32).status_code == 404
    foreign = attempt(address_id=bob["addresses"][0]["id"])
    assert foreign.status_code == 422 and "error" in foreign.json()
    assert attempt(job_fields={"job_type_id": "jt_nope"}).status_code == 422
    assert attempt(assigned_employee_ids=["pro_" + "0" * 32]).status_code == 422
    assert attempt(lead_source="Yelp").json() == {"error": {"message": "Lead source not found"}}
    late = attempt(
        schedule={"scheduled_start": "2030-03-04T11:00", "scheduled_end": "2030-03-04T09:00"}
    )
    assert late.status_code == 422
    assert hcp.control("GET", "state")["counts"]["jobs"] == 0


# --------------------------------------------------------------------------- schema violations


def test_schema_violations_get_422(hcp: Hcp) -> None:
    bad_addresses = hcp.post("/customers", json={"first_name": "Jane", "addresses": "1 Main St"})
    assert bad_addresses.status_code == 422
    assert "addresses" in bad_addresses.json()["errors"]

    no_customer = hcp.post("/jobs", json={"address_id": "adr_x"})
    assert no_customer.status_code == 422
    assert no_customer.json()["errors"]["customer_id"] == ["is missing"]

    typo = hcp.post("/customers", json={"first_name": "Jane", "adresses": []})
    assert typo.status_code == 422 and "adresses" in typo.json()["errors"]

    nameless = hcp.post("/customers", json={"notes": "no name at all"})
    assert nameless.status_code == 422 and "base" in nameless.json()["errors"]

    window_as_text = {"customer_id": "c", "address_id": "a", "schedule": {"arrival_window": "120"}}
    assert hcp.post("/jobs", json=window_as_text).status_code == 422

    # Unknown parameter names are logged, not refused (HCP ignores them).
    assert hcp.get("/job_fields/job_types", params={"page_size": 200}).status_code == 200
    bare_array = hcp.get("/customers", params={"expand": "attachments"})
    assert bare_array.status_code == 422
    assert hcp.get("/customers", params={"expand[]": "attachments"}).status_code == 200

    not_json = hcp.post("/customers", data="first_name=Jane", check=False)
    assert not_json.status_code == 400
    assert hcp.control("GET", "state")["counts"]["customers"] == 0

    logged = hcp.control("GET", "requests", params={"violations": "1"})["requests"]
    assert any("body.addresses" in v for e in logged for v in e["violations"])
    assert any(
        v.startswith("query.page_size: unknown parameter") for e in logged for v in e["violations"]
    )
    assert all(e["violations"] for e in logged)


def test_unknown_paths_are_html_404_and_unimplemented_are_501(hcp: Hcp) -> None:
    unknown = requests.get(hcp.base + "/v1/customers", timeout=5)  # no auth needed for a 404
    assert unknown.status_code == 404 and unknown.headers["Content-Type"].startswith("text/html")
    customer = hcp.customer()
    delete = hcp.call("DELETE", f"/customers/{customer['id']}", check=False)
    assert delete.status_code == 404 and "<html>" in delete.text  # HCP has no DELETE customer
    assert hcp.get("/tags").status_code == 501


# --------------------------------------------------------------------------- reference data


def test_reference_data(hcp: Hcp) -> None:
    company = hcp.get("/company").json()
    assert company["time_zone"] == "America/Chicago"
    assert company["default_arrival_window"] == "120" and company["name"]

    names = [t["name"] for t in hcp.get("/job_fields/job_types").json()["job_types"]]
    assert names == list(JOB_TYPE_NAMES)
    created = hcp.post("/job_fields/job_types", json={"name": "Sewer line"})
    assert created.status_code == 200
    assert hcp.get("/job_fields/job_types", params={"name": "sewer"}).json()["total_items"] == 1

    employees = hcp.get("/employees", params={"page_size": 50}).json()["employees"]
    assert 4 <= len(employees) <= 5
    assert all(ID_RE["pro"].match(e["id"]) for e in employees)
    assert {e["role"] for e in employees} == {"field tech", "office staff"}
    assert any(e["permissions"]["can_be_booked_online"] for e in employees)

    sources = hcp.get("/lead_sources", params={"page_size": 50}).json()["lead_sources"]
    assert {"Website", "Google", "Facebook", "Referral", "hcpform"} <= {s["name"] for s in sources}
    assert hcp.post("/lead_sources", json={"name": "Yelp"}).status_code == 201
    assert hcp.post("/lead_sources", json={"name": "yelp"}).status_code == 422
    assert (
        hcp.post("/customers", json={"first_name": "J", "lead_source": "Yelp"}).status_code == 201
    )
    unknown = hcp.post("/customers", json={"first_name": "J", "lead_source": "Radio"})
    assert unknown.status_code == 422


def test_booking_windows(hcp: Hcp) -> None:
    saturday = date(2030, 3, 2)
    assert saturday.weekday() == 5
    params = {"start_date": saturday.isoformat(), "show_for_days": 3}
    windows = hcp.get("/company/schedule_availability/booking_windows", params=params).json()
    days = Counter(w["start_time"][:10] for w in windows["booking_windows"])
    # 8:00-17:00 Chicago (UTC-6) in 30-minute windows; nothing on Sunday 3 March.
    assert days == {"2030-03-02": 18, "2030-03-04": 18}
    assert windows["start_date"] == "2030-03-02" and windows["show_for_days"] == 3

    params["service_duration"] = 180
    wide = hcp.get("/company/schedule_availability/booking_windows", params=params).json()
    starts = [w["start_time"] for w in wide["booking_windows"]]
    assert starts[:3] == ["2030-03-02T14:00:00Z", "2030-03-02T17:00:00Z", "2030-03-02T20:00:00Z"]
    assert all(w["available"] for w in wide["booking_windows"])

    default = hcp.get("/company/schedule_availability/booking_windows").json()
    first_day = date.fromisoformat(default["start_date"])
    assert first_day > date.today() - timedelta(days=1) and first_day.weekday() != 6


def test_leads(hcp: Hcp) -> None:
    body = {
        "customer": {"first_name": "Lee", "mobile_number": "5125550123"},
        "address": {key: ADDRESS[key] for key in ("street", "city", "state", "zip")},
        "lead_source": "Website",
        "note": "Wants a quote",
    }
    response = hcp.post("/leads", json=body)
    assert response.status_code == 201, response.text
    lead = response.json()
    assert ID_RE["lea"].match(lead["id"]) and lead["status"] == "open"
    assert ID_RE["cus"].match(lead["customer"]["id"]) and lead["address"]["zip"] == "78704"
    listing = hcp.get("/leads", params={"customer_id": lead["customer"]["id"]}).json()
    assert [x["id"] for x in listing["leads"]] == [lead["id"]]
    assert hcp.post("/leads", json={"note": "nobody"}).status_code == 422


# --------------------------------------------------------------------------- faults


def test_scripted_500_and_429(hcp: Hcp) -> None:
    rules = [
        {"method": "GET", "path": "/customers", "kind": "500"},
        {"method": "GET", "path": "/customers", "kind": "429", "retry_after": "2"},
        {
            "path": "/customers/{customer_id}",
            "kind": "429",
            "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT",
        },
        {"path": "/company", "kind": "503", "times": 2},
    ]
    faults = hcp.control("POST", "faults", json={"rules": rules})
    assert len(faults["rules"]) == 4
    first = hcp.get("/customers")
    assert first.status_code == 500 and first.headers["Content-Type"].startswith("text/html")
    limited = hcp.get("/customers")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert hcp.get("/customers").status_code == 200  # rules are used up
    dated = hcp.get("/customers/cus_whatever")
    assert dated.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert [hcp.get("/company").status_code for _ in range(3)] == [503, 503, 200]
    assert hcp.control("GET", "faults")["rules"] == []


def test_scripted_timeout(hcp: Hcp) -> None:
    hcp.control(
        "POST", "faults", json={"rules": [{"path": "/company", "kind": "timeout", "seconds": 1}]}
    )
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        hcp.get("/company", timeout=0.3)
    assert time.monotonic() - started < 0.9
    assert hcp.get("/company").status_code == 200


def test_commit_then_500(hcp: Hcp) -> None:
    hcp.control(
        "POST",
        "faults",
        json={"rules": [{"method": "POST", "path": "/customers", "kind": "commit_then_500"}]},
    )
    response = hcp.post("/customers", json={"first_name": "Ghost"})
    assert response.status_code == 500
    state = hcp.control("GET", "state")
    assert state["counts"]["customers"] == 1 and state["customers"][0]["first_name"] == "Ghost"


def test_commit_then_drop(hcp: Hcp) -> None:
    customer = hcp.customer()
    rule = {"method": "POST", "path": "/jobs", "kind": "commit_then_drop"}
    hcp.control("POST", "faults", json={"rules": [rule]})
    body = {"customer_id": customer["id"], "address_id": customer["addresses"][0]["id"]}
    with pytest.raises(requests.exceptions.ConnectionError):
        hcp.post("/jobs", json=body, timeout=5)
    state = hcp.control("GET", "state")
    assert state["counts"]["jobs"] == 1
    assert state["jobs"][0]["customer"]["id"] == customer["id"]
    log = hcp.control("GET", "requests", params={"method": "POST", "path": "/jobs"})["requests"]
    assert log[-1]["fault"] == "commit_then_drop" and log[-1]["status"] is None


def test_random_rates_with_a_seed(hcp: Hcp) -> None:
    def run() -> list[int]:
        hcp.control("POST", "faults", json={"error_rate": 0.25, "rate_limit_rate": 0.1, "seed": 42})
        return [hcp.get("/company").status_code for _ in range(400)]

    statuses = run()
    errors = sum(s >= 500 for s in statuses) / len(statuses)
    limited = statuses.count(429) / len(statuses)
    assert 0.18 <= errors <= 0.32, errors
    assert 0.05 <= limited <= 0.15, limited
    assert {s for s in statuses if s >= 500} <= {500, 502, 503}
    assert run() == statuses  # the same seed gives the same faults
    hcp.control("DELETE", "faults")
    assert all(hcp.get("/company").status_code == 200 for _ in range(20))


def test_random_commit_then_fail_applies_to_creates_only(hcp: Hcp) -> None:
    hcp.control("POST", "faults", json={"commit_then_fail_rate": 1.0, "seed": 3})
    assert hcp.get("/company").status_code == 200
    outcomes = []
    for i in range(8):
        try:
            outcomes.append(hcp.post("/customers", json={"first_name": f"N{i}"}).status_code)
        except requests.exceptions.ConnectionError:
            outcomes.append(0)
    assert set(outcomes) == {0, 500}  # both modes show up
    assert hcp.control("GET", "state")["counts"]["customers"] == 8


def test_latency(hcp: Hcp) -> None:
    hcp.control("POST", "faults", json={"latency_ms": 150})
    started = time.monotonic()
    hcp.get("/company")
    assert time.monotonic() - started >= 0.15


def test_concurrent_creates_are_safe(hcp: Hcp) -> None:
    ids: list[str] = []

    def worker(n: int) -> None:
        with requests.Session() as session:
            for i in range(10):
                body = {"first_name": f"W{n}-{i}", "addresses": [dict(ADDRESS, country="US")]}
                r = session.post(hcp.base + "/customers", json=body, headers=AUTH, timeout=5)
                assert r.status_code == 201
                ids.append(r.json()["id"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 80
    counts = hcp.control("GET", "state")["counts"]
    assert counts["customers"] == 80 and counts["addresses"] == 80


# --------------------------------------------------------------------------- control endpoint


def test_control_endpoints(hcp: Hcp) -> None:
    customer = hcp.customer()
    hcp.post(
        "/jobs", json={"customer_id": customer["id"], "address_id": customer["addresses"][0]["id"]}
    )
    state = hcp.control("GET", "state")
    assert state["counts"] == {
        "customers": 1,
        "addresses": 1,
        "jobs": 1,
        "estimates": 0,
        "leads": 0,
        "dispatches": 0,
        "requests": 2,
    }
    assert state["addresses"][0]["customer_id"] == customer["id"]
    assert state["valid_keys"] == [DEFAULT_API_KEY]

    log = hcp.control("GET", "requests")
    assert log["count"] == 2 and log["requests"][0]["json"]["first_name"] == "Jane"
    assert [e["status"] for e in log["requests"]] == [201, 201]
    since = hcp.control("GET", "requests", params={"since": log["requests"][0]["seq"]})
    assert since["count"] == 1

    bad = requests.post(hcp.base + "/_sandbox/faults", json={"error_rate": 2}, timeout=5)
    assert bad.status_code == 400
    bad_rule = requests.post(
        hcp.base + "/_sandbox/faults", json={"rules": [{"kind": "boom"}]}, timeout=5
    )
    assert bad_rule.status_code == 400
    assert hcp.control("POST", "faults", json={"rules": [{"kind": "500"}]})["rules"]
    assert hcp.control("DELETE", "faults")["rules"] == []

    hcp.post("/job_fields/job_types", json={"name": "Sewer line"})
    assert hcp.control("POST", "reset", json={"reseed": False}) == {
        "customers": 0,
        "addresses": 0,
        "jobs": 0,
        "estimates": 0,
        "leads": 0,
        "dispatches": 0,
        "requests": 0,
    }
    assert len(hcp.control("GET", "state")["job_types"]) == len(JOB_TYPE_NAMES) + 1  # kept
    before = hcp.control("GET", "state")["job_types"]
    hcp.control("POST", "reset")  # reseeds by default, with the same ids as before
    assert hcp.control("GET", "state")["job_types"] == before[: len(JOB_TYPE_NAMES)]


def test_app_without_a_socket_and_seed_customers() -> None:
    app = create_sandbox_app(
        seed_customers=[{"first_name": "Seeded", "addresses": [dict(ADDRESS, country="US")]}],
        faults={"rules": [{"kind": "commit_then_drop", "method": "POST"}]},
    )
    client = app.test_client()
    listing = client.get("/customers", headers=AUTH).get_json()
    assert [c["first_name"] for c in listing["customers"]] == ["Seeded"]
    # No raw socket under the test client: a drop degrades to a 500 after the commit.
    assert client.post("/customers", json={"first_name": "X"}, headers=AUTH).status_code == 500
    assert client.get("/customers", headers=AUTH).get_json()["total_items"] == 2


def test_cli_options() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--latency-ms",
        "--error-rate",
        "--rate-limit-rate",
        "--retry-after",
        "--timeout-rate",
        "--timeout-seconds",
        "--commit-then-fail-rate",
        "--seed",
        "--api-key",
    ):
        assert option in result.output
    assert sandbox_command.name == "hcp-sandbox"


# --------------------------------------------------------------------------- the package


def test_the_sandbox_imports_nothing_of_hcpform() -> None:
    """The product imports the sandbox only to run it; the sandbox never imports the product."""
    code = (
        "import sys, hcpform_sandbox, hcpform_sandbox.cli\n"
        "mine = sorted(m for m in sys.modules if m == 'hcpform' or m.startswith('hcpform.'))\n"
        "assert not mine, mine"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_job_types_are_given_at_construction() -> None:
    app = create_sandbox_app(job_types=("Sewer line", "Gutters"))
    listing = app.test_client().get("/job_fields/job_types", headers=AUTH).get_json()
    assert [t["name"] for t in listing["job_types"]] == ["Sewer line", "Gutters"]
    assert (
        create_sandbox_app()
        .test_client()
        .get("/job_fields/job_types", headers=AUTH)
        .get_json()["job_types"]
        == []
    )
    assert "--job-type" in CliRunner().invoke(sandbox_command, ["--help"]).output


# --------------------------------------------------------------------------- the contract


def problems(method: str, path: str, query: Any = None, body: Any = None) -> list[str]:
    return [str(v) for v in contract().check_request(method, path, query, body).violations]


def test_every_operation_of_the_definition_is_found() -> None:
    c = contract()  # loading it also checks the mended definition with openapi-spec-validator
    for method, template in c.operations:
        concrete = re.sub(r"{[^}]+}", "x1", template)
        assert c.template(method, concrete) is not None, (method, template)
    assert c.template("POST", "/jobs/lock") == "/jobs/lock"
    assert c.template("GET", "/jobs/job_1") == "/jobs/{id}"
    assert c.template("GET", "/customers/c1/addresses/a1") == (
        "/customers/{customer_id}/addresses/{address_id}"
    )


def test_validate_request_customer_create() -> None:
    valid = {
        "first_name": "Jane",
        "last_name": None,  # nullable
        "email": None,
        "mobile_number": "5125550100",
        "notifications_enabled": True,
        "lead_source": None,
        "tags": ["web"],
        "addresses": [dict(ADDRESS, street_line_2="Apt 2", country="US")],
    }
    assert problems("POST", "/customers", {}, valid) == []
    assert problems("POST", "/customers", {}, {"email": "j@example.com"}) == []

    def customer(body: Any) -> list[str]:
        return problems("POST", "/customers", {}, body)

    assert customer({"first_name": "J", "addresses": "1 Main St"}) == [
        "body.addresses: '1 Main St' is not of type 'array'"
    ]
    assert customer({"first_name": "J", "tags": [1]}) == ["body.tags[0]: 1 is not of type 'string'"]
    assert customer({"first_name": "J", "notes": None}) == [
        "body.notes: None is not of type 'string'"  # notes is not nullable
    ]
    assert customer({"first_name": "J", "notifications_enabled": "yes"})
    assert customer({"first_name": "J", "addresses": [{"zip": 78704}]}) == [
        "body.addresses[0].zip: 78704 is not of type 'string'"
    ]
    assert customer({"first_name": "J", "adresses": []})[0].startswith(
        "body.adresses: unknown field"
    )
    assert customer({"first_name": None, "company": "Acme"}) == [
        "body: one of first_name, last_name, email, mobile_number, home_number, work_number "
        "is required"
    ]
    assert customer(None) == ["body: a JSON request body is required"]
    assert customer(["not", "an", "object"])


def test_validate_request_address_create() -> None:
    body = dict(ADDRESS, country="US", street_line_2=None, latitude=30.26, longitude="-97.74")
    path = "/customers/cus_1/addresses"
    assert problems("POST", path, {}, body) == []
    missing = {k: v for k, v in body.items() if k != "zip"}
    assert problems("POST", path, {}, missing) == ["body.zip: is missing"]
    typed = dict(body, type="service")  # not in AddressCreate: HCP would ignore it
    assert problems("POST", path, {}, typed)[0].startswith("body.type: unknown field")
    assert problems("POST", path, {}, dict(body, city=None))


def test_validate_request_job_create() -> None:
    body = {
        "customer_id": "cus_1",
        "address_id": "adr_1",
        "schedule": {
            "scheduled_start": "2030-03-04T09:00:00-06:00",
            "scheduled_end": "2030-03-04T11:00:00Z",
            "arrival_window": 120,
        },
        "line_items": [{"name": "Diagnostic", "unit_price": 8900, "quantity": 1.5}],
        "job_fields": {"job_type_id": "jt_1"},
        "assigned_employee_ids": ["pro_1"],
    }
    assert problems("POST", "/jobs", {}, body) == []

    def job(**changes: Any) -> list[str]:
        return problems("POST", "/jobs", {}, {**body, **changes})

    no_ids = {k: v for k, v in body.items() if k not in ("customer_id", "address_id")}
    assert problems("POST", "/jobs", {}, no_ids) == [
        "body.customer_id: is missing",
        "body.address_id: is missing",
    ]
    assert job(schedule={"arrival_window": "120"}) == [
        "body.schedule.arrival_window: '120' is not of type 'integer'"
    ]
    assert job(schedule={"scheduled_start": "tomorrow"}) == [
        "body.schedule.scheduled_start: 'tomorrow' is not an ISO-8601 date-time"
    ]
    assert job(schedule={"anytime": True}) == [
        "body.schedule.anytime_start_date: is required when anytime is true"
    ]
    assert job(line_items=[{"unit_price": 1}]) == ["body.line_items[0].name: is missing"]
    assert job(lead_source=None)  # JobCreate.lead_source is not nullable
    assert job(description="x")[0].startswith("body.description: unknown field")


def test_validate_request_query_paths_and_methods() -> None:
    ok = {"q": ["jane"], "page": ["2"], "page_size": ["200"], "expand[]": ["attachments"]}
    assert problems("GET", "/customers", ok) == []
    jobs = {"work_status[]": ["scheduled", "unscheduled"], "employee_ids[]": ["pro_1", "pro_2"]}
    assert problems("GET", "/jobs", jobs) == []  # employee_ids has no items in the definition
    assert problems("GET", "/jobs", {"work_status": ["scheduled"]}) == [
        "query.work_status: must be an array: send it as work_status[]"
    ]
    assert problems("GET", "/jobs", {"work_status[]": ["done"]})
    assert problems("GET", "/customers", {"page": ["two"]})
    assert problems("GET", "/customers", {"q[]": ["x"]})
    assert problems("GET", "/customers", {"q": ["x", "y"]}) == ["query.q: given more than once"]
    assert problems("GET", "/customers", {"modified_since": ["x"]})[0].startswith(
        "query.modified_since: unknown parameter"
    )
    assert problems("GET", "/customers", {"page": "3"}) == []  # a plain str
    # GET /jobs' spurious requestBody and the addresses GET's misplaced schema are not bodies.
    assert problems("GET", "/jobs") == []
    assert problems("GET", "/customers/c/addresses") == []
    assert problems("GET", "/jobs", {}, {"x": 1}) == ["body: GET /jobs takes no request body"]
    assert problems("DELETE", "/customers/c") == ["method: DELETE is not defined for /customers/c"]
    assert problems("GET", "/v1/customers") == [
        "path: no path in the definition matches /v1/customers"
    ]
    assert problems("GET", "https://api.housecallpro.com/customers?x=1") == []


def test_response_checks() -> None:
    check = contract().check_response
    envelope = {"page": 1, "page_size": 10, "total_pages": 0, "total_items": 0, "addresses": []}
    assert check("GET", "/customers/c1/addresses", 200, envelope) == []  # the misplaced schema
    assert check("GET", "/customers/c1/addresses", 200, {"addresses": "x"})
    assert check("GET", "/customers", 200, {"customers": []})
    assert check("POST", "/customers/c1/addresses", 201, {"id": "a"}) == [
        "status: 201 is not documented for POST /customers/{customer_id}/addresses (200)"
    ]
    assert check("POST", "/jobs", 422, {"errors": {"x": ["y"]}}) == []
    assert check("POST", "/jobs", 422, {"oops": 1})
    job = {"id": "job_1", "job_fields": {"job_type": None, "business_unit": None}}
    assert check("POST", "/jobs", 201, job) == []  # null, as live HCP sends
    assert check("POST", "/jobs", 201, job, strict=True)
    assert check("GET", "/company", 200, {"default_arrival_window": 120})

"""Matching people: no one attaches work to someone else's HCP record (sandbox over HTTP)."""

from __future__ import annotations

import html
import logging
from typing import Any

import pytest
import requests

from hcpform.extensions import db
from hcpform.hcp import matching
from hcpform.hcp.types import ServiceRequest
from hcpform.jobs import sync_submission
from hcpform.models import Submission
from tests.admin_helpers import text
from tests.factories import make_submission

pytest_plugins = ["tests.admin_fixtures"]

AUTH = {"Authorization": "Token sandbox-key"}
CHICAGO = {"street": "1234 N Clark St", "city": "Chicago", "state": "IL", "zip": "60614"}


def hcp_customer(sandbox: Any, **fields: Any) -> dict[str, Any]:
    """Create a customer in the sandbox the way the office would, through HCP's API."""
    body = {"first_name": "Jane", "addresses": [{**CHICAGO, "country": "US"}], **fields}
    response = requests.post(f"{sandbox.url}/customers", json=body, headers=AUTH, timeout=5)
    response.raise_for_status()
    return response.json()


def state(sandbox: Any) -> dict[str, Any]:
    """Return the sandbox's records."""
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()


def customer_in(sandbox: Any, customer_id: str) -> dict[str, Any]:
    """Return one customer as HCP holds it now."""
    return next(c for c in state(sandbox)["customers"] if c["id"] == customer_id)


def job_notes(sandbox: Any, job_id: str) -> str:
    """Return the text of a job's notes."""
    job = next(j for j in state(sandbox)["jobs"] if j["id"] == job_id)
    return " ".join(n["content"] for n in job["notes"])


def sent(sandbox: Any, method: str, path: str | None = None) -> list[dict[str, Any]]:
    """Return the requests our code sent to the sandbox with this method (and path)."""
    params = {"method": method, **({"path": path} if path else {})}
    url = f"{sandbox.url}/_sandbox/requests"
    return requests.get(url, params=params, timeout=5).json()["requests"]


def synced(**overrides: Any) -> Submission:
    """Add a submission (Jane Doe unless overridden), sync it, and return it as stored."""
    sub = make_submission(**overrides)
    db.session.commit()
    assert sync_submission(sub.id) == "synced"
    db.session.expire_all()
    return db.session.get(Submission, sub.id)


@pytest.fixture
def no_customer_updates(sandbox: Any) -> Any:
    """After the test, no PUT or PATCH of a customer went to HCP: its record is the office's."""
    yield
    writes = sent(sandbox, "PUT") + sent(sandbox, "PATCH")
    assert [w for w in writes if w["path"].startswith("/customers")] == []


# --------------------------------------------------------------------------- who is who


def test_email_alone_with_another_last_name_makes_a_new_customer_marked_for_the_office(
    app, admin_client, sandbox, no_customer_updates
):
    app.config["HCP_WEB_URL"] = "https://pro.example/app"
    other = hcp_customer(
        sandbox, last_name="Smith", email="jane.doe@example.com", mobile_number="7735550100"
    )
    with app.app_context():
        sub = synced()  # Jane Doe, jane.doe@example.com, (312) 555-0142
        assert sub.hcp_customer_id != other["id"]
        assert sub.customer_matched_by == "created"
        assert sub.possible_duplicate_of == other["id"]
        sub_id, new_id = sub.id, sub.hcp_customer_id
    assert state(sandbox)["counts"]["customers"] == 2
    assert state(sandbox)["counts"]["jobs"] == 1
    assert not any(j["customer"]["id"] == other["id"] for j in state(sandbox)["jobs"])

    page = html.unescape(text(admin_client.get(f"/admin/submissions/{sub_id}")))
    assert f"Possible duplicate of {other['id']}" in page
    assert f'href="https://pro.example/app/customers/{other["id"]}"' in page
    assert f'href="https://pro.example/app/customers/{new_id}"' in page


def test_no_marker_on_the_admin_page_without_a_possible_duplicate(app, admin_client, sandbox):
    with app.app_context():
        sub_id = synced().id
    page = text(admin_client.get(f"/admin/submissions/{sub_id}"))
    assert "Possible duplicate" not in page


def test_email_and_the_same_last_name_reuse_the_customer(app_ctx, sandbox, no_customer_updates):
    # Another spelling of the same last name: case, accents and spaces do not count.
    existing = hcp_customer(
        sandbox, last_name="  DOË ", email="Jane.Doe@Example.com", mobile_number="7735550100"
    )
    sub = synced()
    assert sub.hcp_customer_id == existing["id"]
    assert sub.customer_matched_by == "email"
    assert state(sandbox)["counts"]["customers"] == 1
    # The mobile typed now differs from HCP's: the office reads it in the job, HCP keeps its own.
    notes = job_notes(sandbox, sub.hcp_job_id)
    assert "Typed in the request: mobile (312) 555-0142 (HCP has (773) 555-0100)" in notes
    assert customer_in(sandbox, existing["id"])["mobile_number"] == "7735550100"
    assert sub.possible_duplicate_of is None


def test_mobile_number_alone_reuses_the_customer(app_ctx, sandbox, no_customer_updates):
    existing = hcp_customer(
        sandbox, last_name="Smith", email="j.smith@example.com", mobile_number="(312) 555-0142"
    )
    sub = synced()
    assert sub.hcp_customer_id == existing["id"]
    assert sub.customer_matched_by == "phone"
    assert state(sandbox)["counts"]["customers"] == 1
    notes = job_notes(sandbox, sub.hcp_job_id)
    assert (
        "Typed in the request: email jane.doe@example.com (HCP has j.smith@example.com); "
        "name Jane Doe (HCP has Jane Smith)"
    ) in notes
    assert "mobile" not in notes.split("Typed in the request:")[1]
    assert sub.possible_duplicate_of is None


@pytest.mark.parametrize("key", ["home_number", "work_number"])
def test_home_or_work_number_without_the_name_makes_a_new_customer(
    app_ctx, sandbox, key, no_customer_updates
):
    # A household's or an office's line: the person on it is not necessarily this one.
    shared = hcp_customer(
        sandbox, last_name="Smith", email="smith@example.com", **{key: "3125550142"}
    )
    sub = synced()
    assert sub.hcp_customer_id != shared["id"]
    assert sub.customer_matched_by == "created"
    assert sub.possible_duplicate_of == shared["id"]
    assert state(sandbox)["counts"]["customers"] == 2


@pytest.mark.parametrize("key", ["home_number", "work_number"])
def test_home_or_work_number_with_the_last_name_reuses_the_customer(
    app_ctx, sandbox, key, no_customer_updates
):
    existing = hcp_customer(sandbox, last_name="doe", email="jd@example.com", **{key: "3125550142"})
    sub = synced()
    assert sub.hcp_customer_id == existing["id"]
    assert sub.customer_matched_by == "phone"
    assert state(sandbox)["counts"]["customers"] == 1
    notes = job_notes(sandbox, sub.hcp_job_id)
    assert "email jane.doe@example.com (HCP has jd@example.com)" in notes
    assert "mobile (312) 555-0142 (HCP has none)" in notes
    assert "name " not in notes.split("Typed in the request:")[1]  # "doe" is "Doe"
    assert customer_in(sandbox, existing["id"])["mobile_number"] is None


def test_returning_customer_with_another_email_leaves_hcp_alone_and_notes_it(
    app_ctx, sandbox, caplog, no_customer_updates
):
    first = synced()
    before = customer_in(sandbox, first.hcp_customer_id)
    caplog.set_level(logging.DEBUG)
    second = synced(email="jane.new@example.org")
    assert second.hcp_customer_id == first.hcp_customer_id
    assert second.customer_matched_by == "phone"
    assert customer_in(sandbox, first.hcp_customer_id) == before  # not a field changed
    notes = job_notes(sandbox, second.hcp_job_id)
    assert (
        "Typed in the request: email jane.new@example.org (HCP has jane.doe@example.com)" in notes
    )
    assert second.typed_differences in notes
    # The job note is for HCP; the logs say which field differed, never the values.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "typed differently: email" in logged
    assert "jane.new@example.org" not in logged and "jane.doe@example.com" not in logged


def test_a_lost_create_answer_keeps_the_marker_and_notes_no_differences(
    app_ctx, sandbox, no_customer_updates
):
    other = hcp_customer(sandbox, last_name="Smith", email="jane.doe@example.com")
    rule = {"method": "POST", "path": "/customers", "kind": "commit_then_500"}
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"rules": [rule]}, timeout=5)
    sub = make_submission()
    db.session.commit()
    assert sync_submission(sub.id) == "retry"  # HCP made the customer; its answer was lost
    db.session.execute(
        Submission.__table__.update().where(Submission.id == sub.id).values(next_attempt_at=None)
    )
    db.session.commit()
    assert sync_submission(sub.id) == "synced"
    db.session.expire_all()
    sub = db.session.get(Submission, sub.id)
    assert state(sandbox)["counts"]["customers"] == 2  # ours was found, not made again
    assert sub.customer_matched_by == "created" and sub.possible_duplicate_of == other["id"]
    assert sub.typed_differences == ""
    assert "Typed in the request" not in job_notes(sandbox, sub.hcp_job_id)


# --------------------------------------------------------------------------- addresses


def test_another_unit_at_the_same_street_is_another_address(app_ctx, sandbox):
    first = synced(street_line_2="Apt 1")
    second = synced(street_line_2="Apt 2")
    assert second.hcp_customer_id == first.hcp_customer_id
    assert second.hcp_address_id != first.hcp_address_id
    assert second.address_reused is False
    units = sorted(a["street_line_2"] for a in state(sandbox)["addresses"])
    assert units == ["Apt 1", "Apt 2"]
    # The same unit spelt another way is the same address.
    third = synced(street_line_2="apartment 2", street="1234 North Clark Street")
    assert third.hcp_address_id == second.hcp_address_id and third.address_reused is True
    assert state(sandbox)["counts"]["addresses"] == 2


def test_an_address_with_a_unit_is_not_the_one_without(app_ctx, sandbox):
    first = synced()
    second = synced(street_line_2="Unit 3")
    assert second.hcp_address_id != first.hcp_address_id
    assert state(sandbox)["counts"]["addresses"] == 2


def test_find_address_compares_the_unit(app_ctx):
    sub = ServiceRequest.of(make_submission(street_line_2="#2B"))
    same = {
        "id": "adr_1",
        "street": "1234 N. Clark Street",
        "street_line_2": "Apt 2b",
        **{k: v for k, v in CHICAGO.items() if k != "street"},
    }
    other = {**same, "id": "adr_2", "street_line_2": "Apt 2C"}
    assert matching.find_address([other, same], sub)["id"] == "adr_1"
    assert matching.find_address([other], sub) is None


# --------------------------------------------------------------------------- international


def test_a_uk_number_never_matches_the_us_number_with_the_same_digits(
    app_ctx, sandbox, no_customer_updates
):
    us = hcp_customer(
        sandbox, last_name="Doe", email="maine@example.com", mobile_number="2079460958"
    )
    uk = synced(phone="+442079460958", email="london@example.co.uk")
    assert uk.hcp_customer_id != us["id"]
    assert uk.customer_matched_by == "created" and uk.possible_duplicate_of is None
    created = customer_in(sandbox, uk.hcp_customer_id)
    assert created["mobile_number"] == "+442079460958"  # its country code kept
    # The same UK person again is matched by phone, on E.164.
    again = synced(phone="+442079460958", email="other@example.co.uk", street_line_2="Flat 2")
    assert again.hcp_customer_id == uk.hcp_customer_id and again.customer_matched_by == "phone"
    assert state(sandbox)["counts"]["customers"] == 2


def test_us_numbers_are_searched_by_their_ten_digits_as_before(app_ctx, sandbox):
    synced()
    queries = [r["query"].get("q") for r in sent(sandbox, "GET", "/customers")]
    assert ["3125550142"] in queries


@pytest.mark.parametrize(
    ("stored", "typed", "matches"),
    [
        ("2079460958", "+442079460958", False),  # US digits are not a UK number
        ("(207) 946-0958", "+442079460958", False),
        ("+44 20 7946 0958", "+12079460958", False),
        ("442079460958", "+442079460958", True),  # HCP kept the digits without the "+"
        ("+44 20 7946 0958", "+442079460958", True),
        ("13125550142", "+13125550142", True),
        ("312.555.0142", "+13125550142", True),
    ],
)
def test_phones_compare_as_e164(stored, typed, matches):
    customer = {"id": "cus_1", "mobile_number": stored, "last_name": "Doe"}
    rule = matching.customer_matches(customer, phone=typed, email="")
    assert (rule == "phone") is matches


def test_names_compare_without_case_accents_or_spaces():
    customer = {"last_name": " Le Blanc-Müller ", "email": "a@example.com"}
    rule = matching.customer_matches(
        customer, phone="", email="A@example.com", last_name="leblanc-muller"
    )
    assert rule == "email"
    assert (
        matching.customer_matches(customer, phone="", email="a@example.com", last_name="") is None
    )
    assert (
        matching.customer_matches(
            {"last_name": "", "email": "a@example.com"},
            phone="",
            email="a@example.com",
            last_name="",
        )
        is None
    )

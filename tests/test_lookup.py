"""The returning-customer lookup in step 4: masked hint, prefill, cache, HCP down."""

from __future__ import annotations

import requests
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Draft
from tests.helpers import Wizard, person, seed_customer


def phone_searches(sandbox) -> int:
    """Return how many phone searches the sandbox received (an email search follows a miss)."""
    log = requests.get(
        f"{sandbox.url}/_sandbox/requests?method=GET&path=/customers", timeout=5
    ).json()["requests"]
    return sum(1 for r in log if "@" not in " ".join(r["query"].get("q", [])))


def walk_to_classification(client, answers=None) -> Wizard:
    answers = answers or person()
    wizard = Wizard(client)
    wizard.open()
    for step in ("location", "service", "description", "contact"):
        wizard.post(answers[step])
    return wizard


def hint_of(page: str) -> str:
    """Return the text of the returning-customer notice on a page ('' when there is none)."""
    if "data-lookup-hint" not in page:
        return ""
    return page.split("data-lookup-hint", 1)[1].split("</div>", 1)[0]


def test_returning_customer_sees_only_a_masked_hint(client, app, sandbox):
    seed_customer(sandbox)
    wizard = walk_to_classification(client)
    assert "Step 5 of 6" in wizard.page
    hint = hint_of(wizard.page)
    assert "We have this number on file" in hint and "ending in <strong>••34</strong>?" in hint
    assert 'value="false" checked' in wizard.page  # isFirstTimeClient prefilled: returning
    # HCP's record gives away nothing else: no initials, no name, no street name or number.
    for secret in ("J.", "D.", "Jane", "Doe", "Clark", "1234", "12••", "jane.doe"):
        assert secret not in hint, secret
    with app.app_context():
        lookup = db.session.scalar(select(Draft.lookup))
        assert set(lookup) == {"phone", "matched", "hint", "hcp"}
        assert lookup["hint"] == "••34" and lookup["matched"] is True
        # What HCP answered stays on the server for the sync (people.shared_answer): the
        # customer's id, names, numbers and addresses, never notes or tags.
        kept = lookup["hcp"]["customer"]
        assert kept["id"].startswith("cus_") and lookup["hcp"]["rule"] == "phone"
        assert "notes" not in kept and "tags" not in kept
        assert lookup["hcp"]["searched"] == ["phone"]  # matched by phone: no email search


def test_a_number_on_file_without_a_house_number_says_only_that(client, sandbox):
    seed_customer(sandbox, addresses=[])
    hint = hint_of(walk_to_classification(client).page)
    assert "We have this number on file." in hint and "ending in" not in hint


def test_an_international_number_is_not_a_us_customer_with_the_same_digits(client, sandbox):
    # (207) 946-0958 in Maine and +44 20 7946 0958 in London share their national digits.
    seed_customer(sandbox, mobile_number="2079460958")
    wizard = walk_to_classification(client, person(customer_phone="+44 20 7946 0958"))
    assert "Step 5 of 6" in wizard.page and not hint_of(wizard.page)
    us = walk_to_classification(
        client.application.test_client(), person(customer_phone="(207) 946-0958")
    )
    assert "We have this number on file" in hint_of(us.page)


def test_a_home_or_work_number_counts_only_with_the_same_last_name(client, sandbox):
    seed_customer(sandbox, mobile_number=None, home_number="3125550142")
    other_name = walk_to_classification(client, person(customer_lname="Smith"))
    assert not hint_of(other_name.page)
    same_name = walk_to_classification(client.application.test_client())
    assert "••34" in hint_of(same_name.page)


def test_new_customer_gets_no_hint(client, sandbox):
    wizard = walk_to_classification(client)
    assert "data-lookup-hint" not in wizard.page
    assert 'value="false" checked' not in wizard.page


def test_no_match_by_phone_searches_the_email_on_the_same_step(app, client, sandbox):
    # Another number on file, the same email and name: the sync will match by email.
    seed_customer(sandbox, mobile_number="7735550100")
    wizard = walk_to_classification(client)
    assert "data-lookup-hint" not in wizard.page  # an email match shows nothing
    with app.app_context():
        answer = db.session.scalar(select(Draft.lookup))["hcp"]
    assert answer["searched"] == ["phone", "email"] and answer["rule"] == "email"
    log = requests.get(
        f"{sandbox.url}/_sandbox/requests?method=GET&path=/customers", timeout=5
    ).json()["requests"]
    assert [r["query"]["q"] for r in log] == [["3125550142"], ["jane.doe@example.com"]]


def test_hcp_down_the_wizard_goes_on(client, sandbox):
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"error_rate": 1.0}, timeout=5)
    wizard = walk_to_classification(client)
    assert "Step 5 of 6" in wizard.page and "data-lookup-hint" not in wizard.page


def test_lookup_is_cached(client, app, sandbox):
    seed_customer(sandbox)
    walk_to_classification(client)
    before = requests.get(
        f"{sandbox.url}/_sandbox/requests?method=GET&path=/customers", timeout=5
    ).json()["count"]
    other = walk_to_classification(app.test_client())
    assert "••34" in hint_of(other.page)
    after = requests.get(
        f"{sandbox.url}/_sandbox/requests?method=GET&path=/customers", timeout=5
    ).json()["count"]
    assert after == before


def test_lookups_are_rate_limited_per_ip(settings, tmp_path, sandbox, app):
    from hcpform import create_app

    limited = create_app(
        {
            "TESTING": True,
            **settings,
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_LOOKUP_PER_IP": "2/hour",
        },
        instance_path=str(tmp_path / "limited"),
    )
    for n, phone in enumerate(("(312) 555-0101", "(312) 555-0102", "(312) 555-0103")):
        walk_to_classification(limited.test_client(), person(customer_phone=phone))
        assert phone_searches(sandbox) == min(n + 1, 2)  # the third phone is not looked up


def limited_app(settings, tmp_path, per_ip: str):
    from hcpform import create_app

    return create_app(
        {"TESTING": True, **settings, "RATELIMIT_ENABLED": True, "RATELIMIT_LOOKUP_PER_IP": per_ip},
        instance_path=str(tmp_path / "limited"),
    )


def test_the_cache_does_not_bypass_the_per_ip_limit(settings, tmp_path, sandbox, app):
    seed_customer(sandbox)
    limited = limited_app(settings, tmp_path, "2/hour")
    hints = []
    for _ in range(3):  # the same phone three times: the 2nd and 3rd answers are cached
        client = limited.test_client()
        hints.append(hint_of(walk_to_classification(client).page))
    assert ["••34" in h for h in hints] == [True, True, False]


def test_ipv6_clients_are_counted_by_their_64_network(settings, tmp_path, sandbox, app):
    limited = limited_app(settings, tmp_path, "2/hour")

    def walk_from(address: str, phone: str) -> int:
        client = limited.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        walk_to_classification(client, person(customer_phone=phone))
        return phone_searches(sandbox)

    assert walk_from("2001:db8:1:2::1", "(312) 555-0101") == 1
    assert walk_from("2001:db8:1:2::ffff", "(312) 555-0102") == 2
    # A third address of the same /64 shares the allowance: no lookup.
    assert walk_from("2001:db8:1:2:abcd::9", "(312) 555-0103") == 2
    # Another /64 has an allowance of its own.
    assert walk_from("2001:db8:1:3::1", "(312) 555-0104") == 3

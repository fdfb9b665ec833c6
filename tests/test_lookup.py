"""The returning-customer lookup in step 4: masked hint, prefill, cache, HCP down."""

from __future__ import annotations

import requests
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Draft
from tests.helpers import Wizard, person


def seed_customer(sandbox, **fields) -> None:
    body = {
        "first_name": "Jane", "last_name": "Doe", "email": "jane.doe@example.com",
        "mobile_number": "3125550142",
        "addresses": [{"street": "1234 N Clark St", "city": "Chicago", "state": "IL",
                       "zip": "60614", "country": "US"}],
    } | fields  # fmt: skip
    response = requests.post(
        f"{sandbox.url}/customers",
        json=body,
        headers={"Authorization": "Token sandbox-key"},
        timeout=5,
    )
    response.raise_for_status()


def walk_to_classification(client, answers=None) -> Wizard:
    answers = answers or person()
    wizard = Wizard(client)
    wizard.open()
    for step in ("location", "service", "description", "contact"):
        wizard.post(answers[step])
    return wizard


def test_returning_customer_sees_only_a_masked_hint(client, app, sandbox):
    seed_customer(sandbox)
    wizard = walk_to_classification(client)
    assert "Step 5 of 6" in wizard.page
    assert "J. D., 12•• N Clark St" in wizard.page
    assert 'value="false" checked' in wizard.page  # isFirstTimeClient prefilled: returning
    for secret in ("Doe", "jane.doe@example.com", "1234 N Clark"):
        # what the person typed is theirs; the hint itself reveals none of HCP's record
        assert secret not in wizard.page.split("data-lookup-hint")[1].split("</div>")[0]
    with app.app_context():
        lookup = db.session.scalar(select(Draft.lookup))
        assert set(lookup) == {"phone", "matched", "hint"}


def test_new_customer_gets_no_hint(client, sandbox):
    wizard = walk_to_classification(client)
    assert "data-lookup-hint" not in wizard.page
    assert 'value="false" checked' not in wizard.page


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
    assert "J. D." in other.page
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
    url = f"{sandbox.url}/_sandbox/requests?method=GET&path=/customers"
    for n, phone in enumerate(("(312) 555-0101", "(312) 555-0102", "(312) 555-0103")):
        walk_to_classification(limited.test_client(), person(customer_phone=phone))
        searches = requests.get(url, timeout=5).json()["count"]
        assert searches == min(n + 1, 2)  # the third phone from this IP is not looked up

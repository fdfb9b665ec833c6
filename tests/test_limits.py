"""Submission limits: per IP and per form, on Redis, behind proxies, and with Redis down."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from hcpform.extensions import db
from hcpform.models import Draft, Form, Submission
from tests.helpers import Wizard, reference_in


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The suite's settings with the limits switched on (3 submits a minute per IP)."""
    return {**settings, "RATELIMIT_ENABLED": True, "RATELIMIT_SUBMIT_PER_IP": "3/minute"}


@pytest.fixture
def make_app(settings: dict[str, Any], tmp_path: Path, app: Any) -> Any:
    """Build another app on the same database and Redis (another web process), with overrides."""
    from hcpform import create_app

    made = []

    def make(**overrides: Any) -> Any:
        new = create_app(
            {"TESTING": True, **settings, **overrides},
            instance_path=str(tmp_path / f"instance-{len(made)}"),
        )
        made.append(new)
        return new

    yield make
    for other in made:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def ready_to_send(client: Any) -> Wizard:
    """Walk every step up to the review page as a new visitor from the client's address."""
    visitor = client.application.test_client()  # no cookie: a new draft, not a resumed one
    visitor.environ_base.update(client.environ_base)
    wizard = Wizard(visitor)
    wizard.complete(submit=False)
    return wizard


def submissions_count(app: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Submission.id)))


def assert_refused_cleanly(response: Any, app: Any, wizard: Wizard, before: int) -> None:
    """A 429 with Retry-After and the business's phone; nothing written; the draft intact."""
    page = response.get_data(as_text=True)
    assert response.status_code == 429, page[:500]
    assert int(response.headers["Retry-After"]) >= 1
    assert "Too many requests" in page and "(312) 555-0100" in page and "tel:+13125550100" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert submissions_count(app) == before
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        assert draft.submitted_at is None
        assert draft.answers["customer_fname"] == "Jane"
        assert "schedule" in draft.completed_steps


def send(wizard: Wizard) -> Any:
    """Post the review page's form once (the final submit); the page stays for another click."""
    page = wizard.page
    response = wizard.post({}, follow=False)
    wizard.page = page
    return response


def test_fourth_submit_in_a_minute_from_one_ip_is_refused_and_nothing_is_written(client, app):
    for _ in range(3):
        wizard = ready_to_send(client)
        assert send(wizard).status_code == 302
    assert submissions_count(app) == 3
    fourth = ready_to_send(client)  # walking the steps is never limited
    assert_refused_cleanly(send(fourth), app, fourth, before=3)


def test_only_real_submit_attempts_count(client, app):
    wizard = ready_to_send(client)
    for _ in range(5):  # steps, review page views, and forged or stale posts are free
        assert client.get(wizard.url).status_code == 200
        forged = client.post(wizard.url, data={"csrf_token": "forged"})
        assert forged.status_code == 400
    for _ in range(2):
        ready_to_send(client)
    assert send(wizard).status_code == 302
    for _ in range(4):  # replaying a draft already sent shows its confirmation again, free
        replay = send(wizard)
        assert replay.status_code == 302 and "/done" in replay.headers["Location"]
    for _ in range(2):
        assert send(ready_to_send(client)).status_code == 302
    assert submissions_count(app) == 3
    last = ready_to_send(client)
    assert send(last).status_code == 429


def test_refused_draft_can_be_sent_once_the_window_has_passed(make_app):
    app = make_app(RATELIMIT_SUBMIT_PER_IP="1 per 2 seconds")
    client = app.test_client()
    assert send(ready_to_send(client)).status_code == 302
    wizard = ready_to_send(client)
    refused = send(wizard)
    before = submissions_count(app)
    assert_refused_cleanly(refused, app, wizard, before=before)
    assert int(refused.headers["Retry-After"]) <= 2
    deadline = time.monotonic() + 10
    while True:
        response = send(wizard)  # the same page, the same token: one click later
        if response.status_code == 302 or time.monotonic() > deadline:
            break
        assert response.status_code == 429
        time.sleep(0.25)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Request sent" in page and reference_in(page)
    assert submissions_count(app) == before + 1


def test_each_form_takes_at_most_its_hourly_ceiling_from_any_ip(client, app):
    with app.app_context():
        form = db.session.scalar(select(Form).where(Form.slug == "service-request"))
        assert form.submissions_per_hour == 150  # the seed's ceiling
        form.submissions_per_hour = 2
        db.session.commit()
    for n in range(2):
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        assert send(ready_to_send(client)).status_code == 302
    client.environ_base["REMOTE_ADDR"] = "198.51.100.9"  # a new visitor, same form
    wizard = ready_to_send(client)
    assert_refused_cleanly(send(wizard), app, wizard, before=2)


def test_limits_are_shared_by_every_web_process_through_redis(client, app, make_app, redis_server):
    other = make_app().test_client()  # a second app object: its own memory, the same Redis
    assert send(ready_to_send(client)).status_code == 302
    assert send(ready_to_send(other)).status_code == 302
    assert send(ready_to_send(client)).status_code == 302
    wizard = ready_to_send(other)
    assert_refused_cleanly(send(wizard), app, wizard, before=3)
    keys = redis.Redis.from_url(redis_server.url).keys("*hcpform-submit-ip*")
    assert keys, "the per-IP counter is not in Redis"


def test_forwarded_for_is_ignored_without_a_trusted_proxy(client, app):
    for n in range(3):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"203.0.113.{n}"
        assert send(ready_to_send(client)).status_code == 302
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.99"
    wizard = ready_to_send(client)
    assert_refused_cleanly(send(wizard), app, wizard, before=3)


def test_behind_one_proxy_the_client_is_the_address_the_proxy_saw(make_app, app):
    proxied = make_app(TRUSTED_PROXIES=1)
    client = proxied.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.0.0.2"  # the proxy
    # The proxy appends the address it saw; whatever the client wrote before it is not trusted.
    for n in range(3):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"192.0.2.{n}, 203.0.113.7"
        assert send(ready_to_send(client)).status_code == 302
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "192.0.2.200, 203.0.113.7"
    wizard = ready_to_send(client)
    assert_refused_cleanly(send(wizard), proxied, wizard, before=3)
    # Another homeowner behind the same proxy has an allowance of their own.
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.8"
    assert send(ready_to_send(client)).status_code == 302


def test_redis_down_never_blocks_the_wizard_and_limits_hold_in_memory(client, app, redis_server):
    if redis_server.external:
        pytest.skip("REDIS_URL names an outside Redis that this test cannot stop")
    wizards = [ready_to_send(client) for _ in range(4)]
    redis_server.stop()
    try:
        for wizard in wizards[:3]:
            started = time.monotonic()
            response = send(wizard)
            assert response.status_code == 302, response.get_data(as_text=True)[:500]
            assert time.monotonic() - started < 5  # no long wait on the dead Redis
            page = client.get(response.headers["Location"]).get_data(as_text=True)
            assert "Request sent" in page
        # Counted in this process's memory meanwhile: the fourth is still refused.
        assert_refused_cleanly(send(wizards[3]), app, wizards[3], before=3)
    finally:
        redis_server.start()


# -- drafts, out-of-area posts, page views; IPv6 by /64 --------------------------------------


def draft_count(app: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Draft.id)))


def assert_429_page(response: Any, *, embed: bool = False) -> None:
    """The friendly 429: plain words, the business's phone, Retry-After; the right layout."""
    page = response.get_data(as_text=True)
    assert response.status_code == 429, page[:500]
    assert int(response.headers["Retry-After"]) >= 1
    assert "Too many requests" in page and "(312) 555-0100" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert ('class="site-header"' in page) is not embed  # the iframe page has no site header


@pytest.mark.parametrize("surface", ["f", "embed"])
def test_new_drafts_from_one_ip_are_limited(make_app, surface):
    app = make_app(RATELIMIT_DRAFTS_PER_IP="3/minute")
    client = app.test_client()
    for _ in range(3):
        visitor = Wizard(app.test_client(), base=f"/{surface}/service-request")
        visitor.open()
        assert visitor.post({"zip": "60614"}).status_code == 200 and "Step 2 of 6" in visitor.page
    before = draft_count(app)
    fourth = Wizard(client, base=f"/{surface}/service-request")
    fourth.open()
    response = fourth.post({"zip": "60614"}, follow=False)
    assert_429_page(response, embed=surface == "embed")
    assert draft_count(app) == before
    # Someone else, from another address, starts as usual.
    client.environ_base["REMOTE_ADDR"] = "198.51.100.77"
    other = Wizard(client, base=f"/{surface}/service-request")
    other.open()
    assert other.post({"zip": "60614"}).status_code == 200 and "Step 2 of 6" in other.page


def test_an_existing_draft_goes_on_when_new_ones_are_refused(make_app):
    app = make_app(RATELIMIT_DRAFTS_PER_IP="1/minute")
    wizard = Wizard(app.test_client())
    wizard.open()
    wizard.post({"zip": "60614"})
    refused = Wizard(app.test_client())
    refused.open()
    assert refused.post({"zip": "60614"}, follow=False).status_code == 429
    assert wizard.post({"booking_type": "Electrical", "urgency": "soon"}).status_code == 200
    assert "Step 3 of 6" in wizard.page


def test_out_of_area_posts_from_one_ip_are_limited(make_app):
    from hcpform.models import OutOfAreaRequest
    from tests.helpers import set_form

    app = make_app(RATELIMIT_OUT_OF_AREA_PER_IP="2/hour")
    set_form(app, service_area_zips=["60614"])
    wizard = Wizard(app.test_client())
    wizard.open()
    wizard.post({"zip": "10001"})
    page = wizard.page
    assert "serve ZIP 10001 yet" in page
    for n in range(2):
        wizard.page = page
        assert wizard.post({"email": f"n{n}@example.com"}).status_code == 200
    wizard.page = page
    response = wizard.post({"email": "third@example.com"}, follow=False)
    assert_429_page(response)
    with app.app_context():
        assert db.session.scalar(select(func.count(OutOfAreaRequest.id))) == 2


def test_forged_out_of_area_posts_do_not_use_up_the_allowance(make_app):
    from tests.helpers import set_form

    app = make_app(RATELIMIT_OUT_OF_AREA_PER_IP="1/hour")
    set_form(app, service_area_zips=["60614"])
    wizard = Wizard(app.test_client())
    wizard.open()
    wizard.post({"zip": "10001"})
    for _ in range(3):
        forged = wizard.client.post(wizard.url, data={"csrf_token": "forged", "email": ""})
        assert forged.status_code == 400
    assert wizard.post({"email": ""}).status_code == 200


@pytest.mark.parametrize("surface", ["f", "embed"])
def test_page_views_from_one_ip_are_limited(make_app, surface):
    app = make_app(RATELIMIT_PAGE_VIEWS_PER_IP="5/minute")
    client = app.test_client()
    for _ in range(5):
        assert client.get(f"/{surface}/service-request/").status_code == 200
    # The stylesheet every page loads is no page view.
    assert client.get(f"/{surface}/service-request/theme.css").status_code == 200
    assert_429_page(client.get(f"/{surface}/service-request/"), embed=surface == "embed")
    client.environ_base["REMOTE_ADDR"] = "198.51.100.78"
    assert client.get(f"/{surface}/service-request/").status_code == 200


def test_ipv6_clients_are_counted_by_their_64_network(make_app):
    app = make_app(RATELIMIT_DRAFTS_PER_IP="2/minute")

    def start_from(address: str) -> int:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        wizard = Wizard(client)
        wizard.open()
        return wizard.post({"zip": "60614"}, follow=False).status_code

    assert start_from("2001:db8:aa:1::1") == 302
    assert start_from("2001:db8:aa:1:ffff:ffff:ffff:fffe") == 302
    assert start_from("2001:db8:aa:1::2") == 429  # the same /64: the same household or host
    assert start_from("2001:db8:aa:2::1") == 302  # the next /64 is someone else


def test_ip_key():
    from hcpform.ratelimits import ip_key

    assert ip_key("203.0.113.7") == "203.0.113.7"
    assert ip_key("2001:db8:1:2:3:4:5:6") == ip_key("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert ip_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert ip_key("fe80::1%eth0") == "fe80::/64"
    assert ip_key("") == "unknown" and ip_key("not an ip") == "not an ip"


def test_the_defaults_let_a_household_walk_the_wizard_a_few_times(make_app):
    app = make_app(RATELIMIT_SUBMIT_PER_IP="100/minute")  # only the new limits, at defaults
    for _ in range(4):
        assert send(ready_to_send(app.test_client())).status_code == 302

"""Tests for the HCP client, its error mapping, cache, call records and the Redis rate limiter."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import fakeredis
import pytest
import redis
import requests
import responses
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError

from hcpform.hcp.client import (
    HCP_PRODUCTION_URL,
    HcpAuthError,
    HcpError,
    HcpPermanentError,
    HcpTransientError,
    HousecallProClient,
    RateLimitTimeout,
    parse_error_message,
    parse_retry_after,
)
from hcpform.hcp.ratelimit import RedisRateLimiter, budget

BASE = "https://api.hcp.test"
KEY = "sk_test_SECRET1234567"
EMAIL = "ann.lee@example.com"
PHONE = "555-123-4567"

RECORD_KEYS = {"method", "path", "status", "duration_ms", "attempt", "message", "ok", "error_kind"}


# -- fixtures ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def hcp_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: REDIS_URL if set, else a throwaway redis-server on a free port."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary on PATH and REDIS_URL is not set")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def real_redis(hcp_redis_url: str) -> Iterator[redis.Redis]:
    """A connection to the real Redis; tests use unique keys, so nothing is flushed."""
    client = redis.Redis.from_url(hcp_redis_url)
    yield client
    client.close()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Intercept every requests call; unmatched URLs raise ConnectionError."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def make_client(**kw: Any) -> HousecallProClient:
    """Return a client for the mocked base URL, with a per-test API key unless given."""
    api_key = kw.pop("api_key", KEY)
    return HousecallProClient(BASE, api_key, **kw)


def unique_key() -> str:
    return f"{KEY}-{uuid.uuid4().hex}"


def query_pairs(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


# -- requests: URL, headers, encoding ---------------------------------------------------------


def test_get_sends_token_headers_timeout_and_bracket_arrays(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(f"{BASE}/jobs/job_1", json={"id": "job_1"})
    client = make_client()

    assert client.get_job("job_1", expand=["attachments", "appointments"]) == {"id": "job_1"}

    call = mocked.calls[0]
    assert call.request.headers["Authorization"] == f"Token {KEY}"
    assert call.request.headers["Accept"] == "application/json"
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers["User-Agent"].startswith("hcpform/")
    assert call.request.req_kwargs["timeout"] == (3.05, 15.0)
    assert "expand[]=attachments&expand[]=appointments" in unquote(call.request.url)


def test_list_jobs_encodes_filters_and_drops_none(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/jobs", json={"jobs": [], "page": 1, "total_pages": 1})
    make_client().list_jobs(
        customer_id="cus_1",
        work_status=["scheduled", "in_progress"],
        sort_by=None,
        scheduled_start_min="2026-01-01T00:00:00Z",
    )
    pairs = query_pairs(mocked.calls[0].request.url)
    assert ("work_status[]", "scheduled") in pairs
    assert ("work_status[]", "in_progress") in pairs
    assert ("customer_id", "cus_1") in pairs
    assert ("page", "1") in pairs and ("page_size", "50") in pairs
    assert ("scheduled_start_min", "2026-01-01T00:00:00Z") in pairs
    assert all(name != "sort_by" for name, _ in pairs)


def test_create_customer_posts_json_and_returns_201_body(mocked: responses.RequestsMock) -> None:
    body = {"id": "cus_1", "addresses": [{"id": "adr_1"}]}
    mocked.post(
        f"{BASE}/customers",
        json=body,
        status=201,
        match=[matchers.json_params_matcher({"first_name": "Ann", "email": EMAIL})],
    )
    assert make_client().create_customer({"first_name": "Ann", "email": EMAIL}) == body


def test_typed_helpers_hit_the_documented_paths(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/customers/cus_1", json={"id": "cus_1"})
    mocked.put(f"{BASE}/customers/cus_1", json={"id": "cus_1", "notes": "x"})
    mocked.post(f"{BASE}/customers/cus_1/addresses", json={"id": "adr_2"})
    mocked.post(f"{BASE}/jobs", json={"id": "job_1"}, status=201)
    mocked.get(
        f"{BASE}/company/schedule_availability/booking_windows", json={"booking_windows": []}
    )
    mocked.post(f"{BASE}/lead_sources", json={"id": "ls_1", "name": "Web form"}, status=201)
    client = make_client()

    assert client.get_customer("cus_1")["id"] == "cus_1"
    assert client.update_customer("cus_1", {"notes": "x"})["notes"] == "x"
    assert client.create_customer_address("cus_1", {"street": "1 A St"})["id"] == "adr_2"
    assert client.create_job({"customer_id": "cus_1", "address_id": "adr_2"})["id"] == "job_1"
    assert client.booking_windows(show_for_days=3) == {"booking_windows": []}
    assert client.create_lead_source("Web form")["name"] == "Web form"
    assert ("show_for_days", "3") in query_pairs(mocked.calls[4].request.url)
    assert [c.request.method for c in mocked.calls] == ["GET", "PUT", "POST", "POST", "GET", "POST"]


def test_ids_cannot_add_path_segments(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/customers/..%2Fjobs", json={"id": "x"})
    make_client().get_customer("../jobs")
    assert urlsplit(mocked.calls[0].request.url).path == "/customers/..%2Fjobs"


def test_post_redirect_is_not_followed(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/customers", status=302, headers={"Location": "https://elsewhere.test/c"})
    with pytest.raises(HcpError) as info:
        make_client().create_customer({"first_name": "Ann"})
    assert info.value.status == 302
    assert "redirect not followed" in info.value.message
    assert len(mocked.calls) == 1


def test_empty_2xx_body_returns_empty_dict(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/webhooks/subscription", body="", status=200)
    assert make_client()._request("POST", "/webhooks/subscription", json={}) == {}


def test_non_json_2xx_on_post_is_transient_with_unknown_outcome(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(f"{BASE}/customers", body="<html>ok</html>", status=200)
    with pytest.raises(HcpTransientError) as info:
        make_client().create_customer({"first_name": "Ann"})
    assert info.value.outcome_unknown is True


# -- error shapes (hcp-api.md §7) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message", "cls"),
    [
        (
            404,
            '{"error": {"message": "job not found"}}',
            "json",
            "job not found",
            HcpPermanentError,
        ),
        (
            422,
            '{"errors": {"first_name": ["is missing", "is too short"],'
            ' "status": "must be an array"}}',
            "json",
            "first_name: is missing, is too short; status: must be an array",
            HcpPermanentError,
        ),
        (
            400,
            '{"message": "Invalid schedule", "scheduled_end": "must be after start"}',
            "json",
            "Invalid schedule; scheduled_end: must be after start",
            HcpPermanentError,
        ),
        (401, '{"message": "Unauthorized"}', "json", "Unauthorized", HcpAuthError),
        (
            403,
            '{"message": "Plan lacks API access"}',
            "json",
            "Plan lacks API access",
            HcpAuthError,
        ),
        (
            400,
            '{"error": "invalid_grant", "error_description": "The grant is invalid"}',
            "json",
            "invalid_grant: The grant is invalid",
            HcpPermanentError,
        ),
        (404, "{}", "json", "HTTP 404 (empty body)", HcpPermanentError),
        (
            404,
            "<html><body>Not Found</body></html>",
            "html",
            "HTTP 404 (non-JSON body)",
            HcpPermanentError,
        ),
        (500, "", "html", "HTTP 500 (empty body)", HcpTransientError),
        (502, "<html>Bad gateway</html>", "html", "HTTP 502 (non-JSON body)", HcpTransientError),
        (
            503,
            '{"message": "down for maintenance"}',
            "json",
            "down for maintenance",
            HcpTransientError,
        ),
        (408, "", "html", "HTTP 408 (empty body)", HcpTransientError),
        (410, '{"error": {"message": "archived job"}}', "json", "archived job", HcpPermanentError),
        (
            422,
            '{"errors": {"email": ["ann.lee@example.com is taken"],'
            ' "mobile_number": "555-123-4567"}}',
            "json",
            "email: a***@example.com is taken; mobile_number: ••••••••67",
            HcpPermanentError,
        ),
    ],
)
def test_error_shapes_map_to_message_and_kind(
    mocked: responses.RequestsMock,
    status: int,
    body: str,
    content_type: str,
    message: str,
    cls: type[HcpError],
) -> None:
    ctype = "application/json" if content_type == "json" else "text/html"
    mocked.post(f"{BASE}/jobs", body=body, status=status, content_type=ctype)
    with pytest.raises(HcpError) as info:
        make_client().create_job({"customer_id": "cus_1", "address_id": "adr_1"})
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert err.message == message
    expected_kind = {
        HcpPermanentError: "permanent",
        HcpAuthError: "auth",
        HcpTransientError: "transient",
    }[cls]
    assert err.kind == expected_kind
    assert err.retryable is (expected_kind == "transient")
    assert err.outcome_unknown is False
    assert str(status) in str(err) and "POST /jobs" in str(err)


def test_error_message_is_truncated_to_500_chars() -> None:
    long = '{"error": {"message": "' + "x" * 5000 + '"}}'
    assert len(parse_error_message(422, long)) <= 500


def test_error_message_escapes_control_characters() -> None:
    message = parse_error_message(422, '{"message": "bad\\ninjected line"}')
    assert "\n" not in message and "bad\\ninjected line" == message


# -- Retry-After and 429 ----------------------------------------------------------------------


def test_parse_retry_after_both_forms() -> None:
    now = datetime(2026, 7, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("2", now=now) == 2.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("-5", now=now) == 0.0
    assert parse_retry_after("Fri, 24 Jul 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Fri, 24 Jul 2026 11:00:00 GMT", now=now) == 0.0  # clamped
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after(None) is None


def test_429_with_delay_seconds(mocked: responses.RequestsMock) -> None:
    mocked.post(
        f"{BASE}/customers", status=429, json={"message": "slow down"}, headers={"Retry-After": "2"}
    )
    with pytest.raises(HcpTransientError) as info:
        make_client().create_customer({"first_name": "Ann"})
    assert info.value.status == 429
    assert info.value.retry_after == 2.0
    assert info.value.retryable


def test_429_with_http_date(mocked: responses.RequestsMock) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    mocked.get(f"{BASE}/customers", status=429, body="", headers={"Retry-After": when})
    with pytest.raises(HcpTransientError) as info:
        make_client().search_customers("ann")
    assert info.value.retry_after is not None
    assert 30 < info.value.retry_after <= 61  # generous: the clock moved while we ran


def test_429_sets_the_shared_pause_for_every_worker(
    mocked: responses.RequestsMock, real_redis: redis.Redis
) -> None:
    key = unique_key()
    mocked.post(f"{BASE}/customers", status=429, body="", headers={"Retry-After": "20"})
    worker_a = make_client(api_key=key, redis=real_redis)
    worker_b = make_client(api_key=key, redis=real_redis)
    with pytest.raises(HcpTransientError):
        worker_a.create_customer({"first_name": "Ann"})
    assert worker_b.rate_limiter is not None
    assert 10 < worker_b.rate_limiter.paused_for() <= 20
    # Another account is not paused by this one's 429.
    other = make_client(api_key=unique_key(), redis=real_redis)
    assert other.rate_limiter is not None and other.rate_limiter.paused_for() == 0.0

    # While paused past max_wait, calls fail fast without touching HCP, and are recorded.
    records: list[dict[str, Any]] = []
    quick = HousecallProClient(
        BASE, key, redis=real_redis, rate_limit_max_wait=1, recorder=records.append
    )
    with pytest.raises(RateLimitTimeout) as info:
        quick.search_customers("ann")
    assert info.value.retryable and isinstance(info.value, HcpError)
    assert info.value.retry_after is not None and info.value.retry_after > 1
    assert len(mocked.calls) == 1
    assert records[0]["ok"] is False and records[0]["status"] is None
    assert records[0]["error_kind"] == "transient"
    worker_b.rate_limiter.resume()
    assert worker_a.rate_limiter is not None and worker_a.rate_limiter.paused_for() == 0.0


# -- connection errors and timeouts -----------------------------------------------------------


def test_connection_refused_is_transient_and_known_not_sent() -> None:
    client = HousecallProClient(f"http://127.0.0.1:{_free_port()}", KEY, timeout=(2, 2))
    with pytest.raises(HcpTransientError) as info:
        client.create_customer({"first_name": "Ann"})
    err = info.value
    assert err.status is None and err.kind == "transient" and err.retryable
    assert err.outcome_unknown is False  # nothing left the machine, so a retry is safe


def test_read_timeout_on_post_means_outcome_unknown(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/customers", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(HcpTransientError) as info:
        make_client().create_customer({"first_name": "Ann"})
    assert info.value.status is None
    assert info.value.outcome_unknown is True
    assert "read timeout" in info.value.message


def test_read_timeout_on_get_is_not_outcome_unknown(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/company", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(HcpTransientError) as info:
        make_client().company()
    assert info.value.outcome_unknown is False


def test_connect_timeout_on_post_was_never_sent(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/jobs", body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(HcpTransientError) as info:
        make_client().create_job({})
    assert info.value.outcome_unknown is False


def test_connection_lost_after_sending_post_is_outcome_unknown(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(
        f"{BASE}/jobs",
        body=requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected"),
    )
    with pytest.raises(HcpTransientError) as info:
        make_client().create_job({})
    assert info.value.status is None and info.value.outcome_unknown is True


def test_new_connection_error_on_post_was_never_sent(mocked: responses.RequestsMock) -> None:
    reason = NewConnectionError(None, "Failed to establish a new connection")  # type: ignore[arg-type]
    wrapped = requests.exceptions.ConnectionError(MaxRetryError(None, "/jobs", reason))  # type: ignore[arg-type]
    mocked.post(f"{BASE}/jobs", body=wrapped)
    with pytest.raises(HcpTransientError) as info:
        make_client().create_job({})
    assert info.value.outcome_unknown is False


def test_connection_error_text_never_carries_the_query(
    mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hcpform.hcp")
    mocked.get(
        f"{BASE}/customers",
        body=requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='api.hcp.test', port=443): Max retries exceeded with url: "
            "/customers?q=ann.lee%40example.com&page=1 (Caused by ...)"
        ),
    )
    with pytest.raises(HcpError) as info:
        make_client().search_customers(EMAIL)
    err = info.value
    assert "ann.lee" not in str(err) and "ann.lee" not in err.message
    assert err.__cause__ is None and err.__suppress_context__  # raised "from None"
    assert "ann.lee" not in caplog.text


def test_hcp_error_pickles_and_hierarchy() -> None:
    err = HcpTransientError(
        "slow down", status=429, retry_after=2.0, outcome_unknown=True, method="POST", path="/jobs"
    )
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is HcpTransientError
    assert (copy.status, copy.kind, copy.retry_after, copy.outcome_unknown) == (
        429,
        "transient",
        2.0,
        True,
    )
    assert str(copy) == str(err)
    for cls in (HcpTransientError, HcpAuthError, HcpPermanentError, RateLimitTimeout):
        assert issubclass(cls, HcpError)


# -- pagination -------------------------------------------------------------------------------


def _page(key: str, page: int, total: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"page": page, "page_size": 200, "total_pages": total, "total_items": 5, key: items}


def test_iter_pages_follows_three_pages_and_caps_page_size(mocked: responses.RequestsMock) -> None:
    for page, items in ((1, [{"id": "a"}, {"id": "b"}]), (2, [{"id": "c"}]), (3, [{"id": "d"}])):
        mocked.get(
            f"{BASE}/customers/cus_1/addresses",
            json=_page("addresses", page, 3, items),
            match=[matchers.query_param_matcher({"page": str(page), "page_size": "200"})],
        )
    addresses = make_client().list_customer_addresses("cus_1", page_size=500)
    assert [a["id"] for a in addresses] == ["a", "b", "c", "d"]
    assert len(mocked.calls) == 3


def test_iter_pages_stops_on_an_empty_page(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/employees", json=_page("employees", 1, 99, []))
    assert list(make_client().iter_pages("/employees", "employees")) == []
    assert len(mocked.calls) == 1


# -- cache ------------------------------------------------------------------------------------


def test_job_types_are_cached_in_redis(
    mocked: responses.RequestsMock, real_redis: redis.Redis
) -> None:
    api_key = unique_key()
    mocked.get(
        f"{BASE}/job_fields/job_types",
        json=_page("job_types", 1, 1, [{"id": "jt_1", "name": "Repair"}]),
    )
    client = make_client(api_key=api_key, redis=real_redis, cache_ttl=120)

    assert client.job_types() == [{"id": "jt_1", "name": "Repair"}]
    assert client.job_types() == [{"id": "jt_1", "name": "Repair"}]
    assert len(mocked.calls) == 1  # the second call came from Redis

    keys = [k.decode() for k in real_redis.keys(f"hcpform:hcp:cache:{client.fingerprint}:*")]
    assert keys == [f"hcpform:hcp:cache:{client.fingerprint}:job_types"]
    assert api_key not in keys[0]
    assert 0 < real_redis.ttl(keys[0]) <= 120

    client.invalidate_cache()
    client.job_types()
    assert len(mocked.calls) == 2


def test_employees_lead_sources_company_cached_and_lead_source_create_invalidates(
    mocked: responses.RequestsMock, real_redis: redis.Redis
) -> None:
    mocked.get(f"{BASE}/employees", json=_page("employees", 1, 1, [{"id": "pro_1"}]))
    mocked.get(f"{BASE}/lead_sources", json=_page("lead_sources", 1, 1, [{"id": "ls_1"}]))
    mocked.get(f"{BASE}/company", json={"name": "Acme", "time_zone": "America/Chicago"})
    mocked.post(f"{BASE}/lead_sources", json={"id": "ls_2", "name": "Web"}, status=201)
    client = make_client(api_key=unique_key(), redis=real_redis)

    for _ in range(2):
        assert client.employees() == [{"id": "pro_1"}]
        assert client.lead_sources() == [{"id": "ls_1"}]
        assert client.company()["time_zone"] == "America/Chicago"
    assert len(mocked.calls) == 3

    client.create_lead_source("Web")
    client.lead_sources()
    client.employees()
    assert [c.request.url.split("?")[0] for c in mocked.calls[3:]] == [
        f"{BASE}/lead_sources",
        f"{BASE}/lead_sources",
    ]


def test_without_redis_nothing_is_cached(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/company", json={"name": "Acme"})
    client = make_client()
    client.company()
    client.company()
    assert len(mocked.calls) == 2
    client.invalidate_cache()  # a no-op, not an error


# -- call records and logging -----------------------------------------------------------------


def test_recorder_gets_redacted_records_with_context(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/customers", json={"customers": [], "page": 1, "total_pages": 0})
    mocked.post(
        f"{BASE}/customers",
        status=422,
        json={"errors": {"email": [f"{EMAIL} has already been taken"], "mobile_number": PHONE}},
    )
    records: list[dict[str, Any]] = []
    client = make_client(recorder=records.append, context={"tenant": "t1"})
    scoped = client.with_context(submission_id=12, attempt=3)
    assert scoped.session is client.session and client.context == {"tenant": "t1"}

    scoped.search_customers(EMAIL)
    with pytest.raises(HcpPermanentError):
        scoped.create_customer({"email": EMAIL, "mobile_number": PHONE})

    ok, failed = records
    assert RECORD_KEYS <= set(ok)
    assert ok["method"] == "GET" and ok["path"] == "/customers" and ok["status"] == 200
    assert ok["ok"] is True and ok["error_kind"] is None and ok["message"] == ""
    assert ok["submission_id"] == 12 and ok["tenant"] == "t1" and ok["attempt"] == 3
    assert isinstance(ok["duration_ms"], int) and ok["duration_ms"] >= 0
    assert failed["status"] == 422 and failed["ok"] is False and failed["error_kind"] == "permanent"
    assert (
        failed["message"]
        == "email: a***@example.com has already been taken; mobile_number: ••••••••67"
    )
    flat = repr(records)
    assert EMAIL not in flat and PHONE not in flat and KEY not in flat


def test_explicit_attempt_wins_and_recorder_failure_does_not_lose_the_result(
    mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.post(f"{BASE}/jobs", json={"id": "job_9"}, status=201)
    seen: list[dict[str, Any]] = []

    def broken(record: dict[str, Any]) -> None:
        seen.append(record)
        raise RuntimeError("database is locked")

    client = make_client(recorder=broken)
    assert client._request("POST", "/jobs", json={}, attempt=4) == {"id": "job_9"}
    assert seen[0]["attempt"] == 4
    assert "recorder failed" in caplog.text


def test_logs_have_markers_and_never_key_email_or_phone(
    mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hcpform.hcp")
    mocked.get(f"{BASE}/customers", json={"customers": [], "page": 1, "total_pages": 1})
    mocked.post(f"{BASE}/customers", json={"id": "cus_1", "email": EMAIL}, status=201)
    mocked.post(
        f"{BASE}/jobs",
        status=422,
        json={"message": f"Customer {EMAIL} / {PHONE} at 12 Elm St is invalid"},
    )
    client = make_client()
    client.search_customers(EMAIL)
    client.search_customers("5551234567")
    client.create_customer({"email": EMAIL, "mobile_number": PHONE, "notes": "gate code 1234"})
    with pytest.raises(HcpPermanentError):
        client.create_job({"customer_id": "cus_1", "address_id": "adr_1"})

    text = caplog.text
    assert "📤 Sending to Housecall Pro: POST /customers" in text
    assert "✅ HousecallPro API response received: 201 POST /customers (" in text
    assert "✅ HousecallPro API response received: 200 GET /customers (" in text
    assert "❌ HousecallPro API call failed: 422 POST /jobs (" in text
    assert "a***@example.com" in text and "[street]" in text
    for secret in (KEY, EMAIL, PHONE, "5551234567", "gate code", "12 Elm St", "q="):
        assert secret not in text
    assert all(r.name == "hcpform.hcp" for r in caplog.records)


def test_repr_hides_the_key() -> None:
    client = make_client()
    assert KEY not in repr(client) and KEY not in repr(client._auth)
    assert KEY not in repr(client.session.headers)


# -- construction -----------------------------------------------------------------------------


def test_from_config_reads_settings() -> None:
    client = HousecallProClient.from_config(
        {
            "HCP_API_BASE_URL": "http://127.0.0.1:9/",
            "HCP_CONNECT_TIMEOUT": 1,
            "HCP_READ_TIMEOUT": "7.5",
            "HCP_RATE_LIMIT_PER_SECOND": 2,
            "HCP_CACHE_TTL": 60,
        },
        api_key=KEY,
        redis=fakeredis.FakeRedis(),
    )
    assert client.base_url == "http://127.0.0.1:9"
    assert client.timeout == (1.0, 7.5)
    assert client.cache_ttl == 60
    assert client.rate_limiter is not None and client.rate_limiter.capacity == 2


def test_from_config_defaults_and_sandbox_alias() -> None:
    client = HousecallProClient.from_config({}, api_key=KEY)
    assert client.base_url == HCP_PRODUCTION_URL
    assert client.timeout == (3.05, 15.0) and client.cache_ttl == 300
    assert client.rate_limiter is None
    sandbox = HousecallProClient.from_config(
        {"HCP_API_BASE_URL": "sandbox", "HCP_SANDBOX_URL": "http://127.0.0.1:8025"}, api_key=KEY
    )
    assert sandbox.base_url == "http://127.0.0.1:8025"


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        HousecallProClient("api.housecallpro.com", KEY)
    with pytest.raises(ValueError):
        HousecallProClient(BASE, "")


# -- rate limiter -----------------------------------------------------------------------------


def _assert_no_window_over(times: list[float], limit: int, window: float = 1.0) -> None:
    times = sorted(times)
    for i, start in enumerate(times):
        inside = sum(1 for t in times[i:] if t < start + window)
        assert inside <= limit, f"{inside} calls within {window}s starting at index {i}"


def _bracket_grants(limiter: RedisRateLimiter, out: list[tuple[float, float]]) -> None:
    """Record (before, after) around each granted hit: the stored grant time lies between."""
    hit = limiter.strategy.hit

    def timed(*args: Any, **kwargs: Any) -> bool:
        before = time.time()
        granted = hit(*args, **kwargs)
        if granted:
            out.append((before, time.time()))
        return granted

    limiter.strategy.hit = timed  # type: ignore[method-assign]


# The moving window stamps each call with the caller's clock just before Redis runs the script,
# so two calls can land that much closer than the window (a millisecond; more on a busy host).
STAMP_LAG = 0.05


def _assert_no_grants_over(grants: list[tuple[float, float]], limit: int) -> None:
    """Fail if more than `limit` grants certainly fell within one second (less STAMP_LAG).

    A grant is known only to lie in its (before, after) bracket, so a group is certainly within
    a second when its latest `before` is less than a second after its earliest `after`.
    """
    for _, first_after in grants:
        later = sorted(b for b, a in grants if a >= first_after)
        if len(later) > limit:
            span = later[limit] - first_after
            assert span >= 1.0 - STAMP_LAG, f"{limit + 1} grants within {span:.3f}s"


def _grants_span(grants: list[tuple[float, float]]) -> float:
    """Return the longest the grants can have been spread over (from the first to the last)."""
    return max(a for _, a in grants) - min(b for b, _ in grants)


def _limiter_worker(url: str, key: str, go: Any, out: Any) -> None:
    client = redis.Redis.from_url(url)
    limiter = RedisRateLimiter(client, 10, key=key, max_wait=120)
    grants: list[tuple[float, float]] = []
    _bracket_grants(limiter, grants)
    go.wait(60)
    for _ in range(10):
        limiter.acquire()
    out.put(grants)


@pytest.mark.slow
def test_limiter_shared_by_three_processes(hcp_redis_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    key = f"hcpform:test:rl:{uuid.uuid4().hex}"
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_limiter_worker, args=(hcp_redis_url, key, go, out)) for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    go.set()
    grants = [grant for _ in procs for grant in out.get(timeout=120)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0

    assert len(grants) == 30
    # The contract, on the grants: never more than 10 in any 1 s window, in all processes.
    _assert_no_grants_over(grants, 10)
    assert _grants_span(grants) > 2.0  # 30 calls at 10 a second: the 21st is > 2 s after the 1st
    # Wall-clock view from the callers, with slack for scheduling delays on a busy machine.
    _assert_no_window_over([a for _, a in grants], 20)


def test_pause_until_makes_acquire_wait(real_redis: redis.Redis) -> None:
    limiter = RedisRateLimiter(real_redis, 50, key=f"hcpform:test:rl:{uuid.uuid4().hex}")
    limiter.pause_until(time.time() + 1.0)
    assert 0 < limiter.paused_for() <= 1.0
    started = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - started >= 0.9
    assert limiter.paused_for() == 0.0


def test_pause_longer_than_max_wait_fails_fast(real_redis: redis.Redis) -> None:
    limiter = RedisRateLimiter(real_redis, 5, key=f"hcpform:test:rl:{uuid.uuid4().hex}", max_wait=2)
    limiter.pause_for(60)
    limiter.pause_for(5)  # a shorter pause never shortens a longer one
    started = time.monotonic()
    with pytest.raises(RateLimitTimeout) as info:
        limiter.acquire()
    assert time.monotonic() - started < 30  # raised instead of sleeping a minute
    assert info.value.kind == "transient" and info.value.retry_after is not None
    assert info.value.retry_after > 50
    limiter.resume()
    limiter.acquire()


def test_queue_longer_than_max_wait_fails_fast(real_redis: redis.Redis) -> None:
    limiter = RedisRateLimiter(
        real_redis, 0.1, key=f"hcpform:test:rl:{uuid.uuid4().hex}", max_wait=1
    )
    limiter.acquire()  # one call per 10 s: the next must wait ~10 s, over max_wait
    with pytest.raises(RateLimitTimeout):
        limiter.acquire()


def test_limiter_on_fakeredis_across_threads() -> None:
    """The embedded mode: fakeredis runs the moving window's Lua scripts (fakeredis[lua])."""
    server = fakeredis.FakeServer()
    grants: list[tuple[float, float]] = []

    def work() -> None:
        limiter = RedisRateLimiter(fakeredis.FakeRedis(server=server), 10, max_wait=60)
        _bracket_grants(limiter, grants)  # list.append is atomic across threads
        for _ in range(5):
            limiter.acquire()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(grants) == 15
    _assert_no_grants_over(grants, 10)
    assert _grants_span(grants) > 1.0


def test_the_budget_is_the_limits_moving_window_on_the_clients_redis(
    real_redis: redis.Redis,
) -> None:
    """One mechanism: the HCP budget is a `limits` moving window kept in the client's Redis."""
    client = make_client(api_key=unique_key(), redis=real_redis, rate_limit_per_second=3)
    limiter = client.rate_limiter
    assert limiter is not None and (limiter.capacity, limiter.window_seconds) == (3, 1)
    for _ in range(3):
        limiter.acquire()
    stats = limiter.strategy.get_window_stats(limiter.item, limiter.key)
    assert stats.remaining == 0 and stats.reset_time > time.time()
    # Kept in the client's own Redis, under the limits library's key for this account.
    assert real_redis.exists(f"LIMITS:{limiter.item.key_for(limiter.key)}") == 1
    assert client.fingerprint in limiter.key


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(5.0, (5, 1)), (2.7, (2, 1)), (1.0, (1, 1)), (0.25, (1, 4)), (0.3, (1, 4))],
)
def test_budget_never_allows_more_than_the_rate(rate: float, expected: tuple[int, int]) -> None:
    assert budget(rate) == expected
    calls, seconds = budget(rate)
    assert calls / seconds <= rate


def test_limiter_on_fakeredis_sleeps_through_a_pause() -> None:
    fake = fakeredis.FakeRedis()
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        limiter.resume()  # stands in for the pause running out

    limiter = RedisRateLimiter(fake, 5, sleep=nap)
    limiter.pause_for(10)
    limiter.acquire()
    assert len(naps) == 1 and 9 < naps[0] <= 10


def test_iter_pages_without_page_size_sends_page_only_from_page_two(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(
        f"{BASE}/job_fields/job_types",
        json=_page("job_types", 1, 2, [{"id": "jt_1"}]),
        match=[matchers.query_param_matcher({})],
    )
    mocked.get(
        f"{BASE}/job_fields/job_types",
        json=_page("job_types", 2, 2, [{"id": "jt_2"}]),
        match=[matchers.query_param_matcher({"page": "2"})],
    )
    assert [t["id"] for t in make_client().job_types()] == ["jt_1", "jt_2"]


# -- against the real sandbox (hcpform_sandbox) ------------------------------------------------


@pytest.fixture(scope="module")
def live_sandbox() -> Iterator[Any]:
    """The project's HCP sandbox on a free localhost port, for this module."""
    module = pytest.importorskip("hcpform_sandbox", reason="the HCP sandbox is not available")
    server = module.SandboxServer(port=0, job_types=("Plumbing repair", "Drain cleaning"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox_url(live_sandbox: Any) -> str:
    """The sandbox reset to its seed data, with no faults and only the default key valid."""
    url = live_sandbox.url
    requests.post(f"{url}/_sandbox/reset", json={}, timeout=5).raise_for_status()
    requests.delete(f"{url}/_sandbox/faults", timeout=5).raise_for_status()
    requests.post(f"{url}/_sandbox/keys", json={"valid": ["sandbox-key"]}, timeout=5)
    return url


def _sandbox_faults(url: str, *rules: dict[str, Any]) -> None:
    requests.post(
        f"{url}/_sandbox/faults", json={"rules": list(rules)}, timeout=5
    ).raise_for_status()


def _sandbox_counts(url: str) -> dict[str, int]:
    return requests.get(f"{url}/_sandbox/state", timeout=5).json()["counts"]


def test_sandbox_customer_address_job_flow(sandbox_url: str) -> None:
    records: list[dict[str, Any]] = []
    client = HousecallProClient(
        sandbox_url, "sandbox-key", redis=fakeredis.FakeRedis(), recorder=records.append
    )
    customer = client.create_customer(
        {"first_name": "Ann", "last_name": "Lee", "email": EMAIL, "mobile_number": "5551234567"}
    )
    assert customer["id"].startswith("cus_")
    street = {"street": "1200 Barton Springs Rd", "city": "Austin", "state": "TX", "zip": "78704"}
    address = client.create_customer_address(customer["id"], {**street, "country": "US"})
    assert address["id"].startswith("adr_")
    assert [a["id"] for a in client.list_customer_addresses(customer["id"])] == [address["id"]]
    job_type = client.job_types()[0]
    job = client.create_job(
        {
            "customer_id": customer["id"],
            "address_id": address["id"],
            "job_fields": {"job_type_id": job_type["id"]},
        }
    )
    assert job["id"].startswith("job_")
    assert client.get_job(job["id"], expand=["appointments"])["id"] == job["id"]
    assert client.search_customers(EMAIL)["customers"][0]["id"] == customer["id"]
    assert client.employees() and client.lead_sources() and client.company()
    assert _sandbox_counts(sandbox_url)["jobs"] == 1
    assert all(r["ok"] for r in records)
    assert [r["status"] for r in records[:2]] == [201, 200]  # HCP answers 200 for addresses


def test_sandbox_wrong_key_is_auth(sandbox_url: str) -> None:
    with pytest.raises(HcpAuthError) as info:
        HousecallProClient(sandbox_url, "not-the-key").company()
    assert info.value.kind == "auth" and info.value.status == 401
    assert info.value.message == "Unauthorized" and not info.value.retryable


def test_sandbox_scripted_429_pauses_the_account(sandbox_url: str) -> None:
    _sandbox_faults(
        sandbox_url,
        {"method": "POST", "path": "/customers", "kind": "429", "times": 1, "retry_after": "2"},
    )
    client = HousecallProClient(sandbox_url, "sandbox-key", redis=fakeredis.FakeRedis())
    with pytest.raises(HcpTransientError) as info:
        client.create_customer({"first_name": "Ann"})
    assert info.value.status == 429 and info.value.retry_after == 2.0
    assert client.rate_limiter is not None and 0 < client.rate_limiter.paused_for() <= 2.0


def test_sandbox_commit_then_drop_is_outcome_unknown(sandbox_url: str) -> None:
    before = _sandbox_counts(sandbox_url)["customers"]
    _sandbox_faults(
        sandbox_url, {"method": "POST", "path": "/customers", "kind": "commit_then_drop"}
    )
    with pytest.raises(HcpTransientError) as info:
        HousecallProClient(sandbox_url, "sandbox-key").create_customer({"first_name": "Ann"})
    assert info.value.status is None and info.value.outcome_unknown is True
    assert _sandbox_counts(sandbox_url)["customers"] == before + 1  # HCP did commit it


def test_sandbox_read_timeout_on_post_is_outcome_unknown(sandbox_url: str) -> None:
    _sandbox_faults(
        sandbox_url,
        {"method": "POST", "path": "/jobs", "kind": "timeout", "seconds": 2},
    )
    client = HousecallProClient(sandbox_url, "sandbox-key", timeout=(3.05, 0.3))
    with pytest.raises(HcpTransientError) as info:
        client.create_job({"customer_id": "cus_x", "address_id": "adr_x"})
    assert info.value.status is None and info.value.outcome_unknown is True
    assert "read timeout" in info.value.message


def test_sandbox_html_5xx_is_transient(sandbox_url: str) -> None:
    _sandbox_faults(sandbox_url, {"method": "GET", "path": "/company", "kind": "503"})
    with pytest.raises(HcpTransientError) as info:
        HousecallProClient(sandbox_url, "sandbox-key").company()
    assert info.value.status == 503 and info.value.message == "HTTP 503 (non-JSON body)"

"""The Housecall Pro API client: the only code in hcpform that speaks HTTP to HCP.

Why one module: it is one class, HousecallProClient, with one short method per HCP endpoint, and
every one of them goes through the same _request (rate limit, error mapping, call record) and
_cached; split by endpoint, each piece would be a few lines that import that shared core back.
Reading error answers lives in errors.py and the rate limiter in ratelimit.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from typing import Any, TypeVar, cast
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from ..redact import redact
from .errors import (
    AUTH,
    HcpAuthError,
    HcpError,
    HcpPermanentError,
    HcpTransientError,
    RateLimitTimeout,
    _describe_exception,
    error_class,
    kind_for_status,
    parse_error_message,
    parse_retry_after,
)
from .ratelimit import MAX_PAUSE_SECONDS, RedisRateLimiter

__all__ = [
    "HCP_PRODUCTION_URL",
    "HcpAuthError",
    "HcpError",
    "HcpPermanentError",
    "HcpTransientError",
    "HousecallProClient",
    "RateLimitTimeout",
    "parse_error_message",
    "parse_retry_after",
]

HCP_PRODUCTION_URL = "https://api.housecallpro.com"
MAX_PAGE_SIZE = 200  # the largest page size HCP honours in practice (hcp-api.md §7)
DEFAULT_429_PAUSE = 1.0  # seconds every worker waits after a 429 that names no Retry-After
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CACHE_PREFIX = "hcpform:hcp:cache:"
RATE_LIMIT_PREFIX = "hcpform:hcp:rl:"
_CACHED = ("job_types", "employees", "lead_sources", "company")

logger = logging.getLogger("hcpform.hcp")
T = TypeVar("T")  # what a cached loader returns

Recorder = Callable[[dict[str, Any]], None]


def _version() -> str:
    try:
        return metadata.version("hcpform")
    except metadata.PackageNotFoundError:
        return "0.1.0"


USER_AGENT = f"hcpform/{_version()}"


class _TokenAuth(requests.auth.AuthBase):
    """Send `Authorization: Token <key>`; being an auth object, it also keeps ~/.netrc out."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Token {self._api_key}"
        return r

    def __repr__(self) -> str:
        return "<TokenAuth ***>"


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """Return True when the connection failed before any byte of the request left."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _encode_params(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Encode params the way HCP's Rails side expects: lists as `name[]=v`, None dropped."""
    pairs: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            key = name if name.endswith("[]") else f"{name}[]"
            pairs.extend((key, _scalar(v)) for v in value if v is not None)
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _seg(value: str) -> str:
    """Quote one path segment so an id can never add path components."""
    return quote(str(value), safe="")


class HousecallProClient:
    """Call the HCP REST API: typed helpers, error mapping, shared rate limit, call records."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | tuple[float, float] = (3.05, 15.0),
        redis: Any = None,
        rate_limit_per_second: float = 5.0,
        cache_ttl: int = 300,
        recorder: Recorder | None = None,
        context: Mapping[str, Any] | None = None,
        session: requests.Session | None = None,
        rate_limit_max_wait: float = 30.0,
    ) -> None:
        if not base_url or not str(base_url).startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if not api_key:
            raise ValueError("api_key is required")
        self.base_url = str(base_url).rstrip("/")
        self.timeout = timeout
        self.redis = redis
        self.cache_ttl = int(cache_ttl)
        self.recorder = recorder
        self.context: dict[str, Any] = dict(context or {})
        self._auth = _TokenAuth(api_key)
        # Identifies this account in Redis keys without ever storing the key itself.
        self.fingerprint = hashlib.sha256(f"{self.base_url}\0{api_key}".encode()).hexdigest()[:16]
        self.rate_limiter: RedisRateLimiter | None = None
        if redis is not None and rate_limit_per_second and rate_limit_per_second > 0:
            # One limiter per HCP account: HCP throttles per key, and a 429 for one business
            # must not pause another's syncs.
            self.rate_limiter = RedisRateLimiter(
                redis,
                rate_limit_per_second,
                key=RATE_LIMIT_PREFIX + self.fingerprint,
                max_wait=rate_limit_max_wait,
            )
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        if session is None:
            session = requests.Session()
            # max_retries=0: urllib3 must never resend anything, least of all a POST; the sync
            # job owns retries and reconciles first (reliability.md §2.5).
            adapter = HTTPAdapter(max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers.update(self._headers)
        self.session = session

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        api_key: str,
        redis: Any = None,
        recorder: Recorder | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> HousecallProClient:
        """Build a client from the app config (HCP_API_BASE_URL, timeouts, rate, cache TTL)."""
        base_url = config.get("HCP_API_BASE_URL") or HCP_PRODUCTION_URL
        if base_url == "sandbox":
            base_url = config.get("HCP_SANDBOX_URL") or "http://127.0.0.1:8025"
        connect = config.get("HCP_CONNECT_TIMEOUT")
        read = config.get("HCP_READ_TIMEOUT")
        rate = config.get("HCP_RATE_LIMIT_PER_SECOND")
        ttl = config.get("HCP_CACHE_TTL")
        return cls(
            base_url,
            api_key,
            timeout=(
                float(connect) if connect is not None else 3.05,
                float(read) if read is not None else 15.0,
            ),
            redis=redis,
            rate_limit_per_second=float(rate) if rate is not None else 5.0,
            cache_ttl=int(ttl) if ttl is not None else 300,
            recorder=recorder,
            context=context,
        )

    def __repr__(self) -> str:
        return f"<HousecallProClient {self.base_url} account={self.fingerprint}>"

    def with_context(self, **kw: Any) -> HousecallProClient:
        """Return a shallow copy whose call records also carry `kw` (e.g. submission_id=12)."""
        clone = copy.copy(self)
        clone.context = {**self.context, **kw}
        return clone

    # -- the one place that does HTTP -------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        attempt: int | None = None,
    ) -> Any:
        """Make one call and return its parsed JSON body ({} when empty).

        `files` sends a multipart/form-data body instead of JSON (name: (file name, bytes, type)).

        Raises:
            HcpError: HcpTransientError, HcpAuthError or HcpPermanentError for any failure.
        """
        method = method.upper()
        if not path.startswith("/"):
            path = "/" + path
        log_path = redact(path.split("?", 1)[0])[:200]
        if attempt is None:
            attempt = int(self.context.get("attempt", 1))

        if self.rate_limiter is not None:
            try:
                self.rate_limiter.acquire()
            except RateLimitTimeout as exc:
                exc.method, exc.path = method, log_path
                self._finish(method, log_path, attempt, 0, None, exc)
                raise

        logger.info("📤 Sending to Housecall Pro: %s %s", method, log_path)
        started = time.perf_counter()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                params=_encode_params(params),
                json=json,
                files=files,
                # None drops the session's JSON Content-Type, so requests sets the multipart one.
                headers={**self._headers, "Content-Type": None} if files else self._headers,
                auth=self._auth,
                timeout=self.timeout,
                # A redirected POST could be replayed as a GET or sent to another host; a
                # redirect from the API is a misconfiguration to surface, not to follow.
                allow_redirects=method in ("GET", "HEAD"),
            )
        except requests.exceptions.RequestException as exc:
            elapsed = _ms(started)
            error = self._error_for_exception(exc, method, log_path)
            self._finish(method, log_path, attempt, elapsed, None, error)
            # "from None": the original text repeats the URL and its query (PII), and RQ keeps
            # the full traceback of a failed job in Redis.
            raise error from None
        elapsed = _ms(started)

        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json() if response.content.strip() else {}
            except ValueError:
                # The call may have done its work (a POST committed) even though we cannot read
                # the answer, so the sync must reconcile before repeating it.
                error = HcpTransientError(
                    f"HTTP {status} (non-JSON body)",
                    status=status,
                    outcome_unknown=method in WRITE_METHODS,
                    method=method,
                    path=log_path,
                )
                self._finish(method, log_path, attempt, elapsed, status, error)
                raise error from None
            self._finish(method, log_path, attempt, elapsed, status, None)
            return data

        error = self._error_for_response(response, method, log_path)
        if status == 429 and self.rate_limiter is not None:
            # Every worker for this account waits, not only the one that got the 429.
            pause = error.retry_after if error.retry_after is not None else DEFAULT_429_PAUSE
            try:
                self.rate_limiter.pause_for(min(pause, MAX_PAUSE_SECONDS))
            except Exception as exc:  # the 429 itself is what the caller must see
                logger.warning("could not set the shared HCP pause: %s", type(exc).__name__)
        self._finish(method, log_path, attempt, elapsed, status, error)
        raise error

    def _error_for_response(self, response: requests.Response, method: str, path: str) -> HcpError:
        status = response.status_code
        if 300 <= status < 400:
            message = f"HTTP {status} (redirect not followed)"
        else:
            message = parse_error_message(status, response.content)
        kind = kind_for_status(status)
        return error_class(kind)(
            message,
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            method=method,
            path=path,
        )

    def _error_for_exception(
        self, exc: requests.exceptions.RequestException, method: str, path: str
    ) -> HcpError:
        write = method in WRITE_METHODS
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return HcpTransientError(
                f"connect timeout after {_connect_timeout(self.timeout)}s",
                method=method,
                path=path,
            )
        if isinstance(exc, requests.exceptions.ReadTimeout):
            # The request went out; HCP may have committed it before we gave up waiting.
            return HcpTransientError(
                f"read timeout after {_read_timeout(self.timeout)}s",
                outcome_unknown=write,
                method=method,
                path=path,
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return HcpTransientError(
                "connection error: " + _describe_exception(exc),
                outcome_unknown=write and not _never_sent(exc),
                method=method,
                path=path,
            )
        if isinstance(
            exc,
            (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError),
        ):
            # The answer started arriving, so the request was received.
            return HcpTransientError(
                "broken response: " + _describe_exception(exc),
                outcome_unknown=write,
                method=method,
                path=path,
            )
        if isinstance(
            exc,
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidHeader,
            ),
        ):
            return HcpPermanentError(
                "invalid request: " + _describe_exception(exc), method=method, path=path
            )
        return HcpTransientError(
            _describe_exception(exc), outcome_unknown=write, method=method, path=path
        )

    def _finish(
        self,
        method: str,
        path: str,
        attempt: int,
        duration_ms: int,
        status: int | None,
        error: HcpError | None,
    ) -> None:
        """Log the outcome and hand the call record to the recorder."""
        if error is None:
            logger.info(
                "✅ HousecallPro API response received: %s %s %s (%d ms)",
                status,
                method,
                path,
                duration_ms,
            )
        else:
            if status is not None:
                label = str(status)
            elif isinstance(error, RateLimitTimeout):
                label = "rate-limited"
            else:
                label = "no-response"
            logger.log(
                logging.ERROR if error.kind == AUTH else logging.WARNING,
                "❌ HousecallPro API call failed: %s %s %s (%d ms): %s",
                label,
                method,
                path,
                duration_ms,
                error.message,
            )
        if self.recorder is None:
            return
        record: dict[str, Any] = {
            **self.context,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "attempt": attempt,
            "message": error.message if error is not None else "",
            "ok": error is None,
            "error_kind": error.kind if error is not None else None,
        }
        try:
            self.recorder(record)
        except Exception:
            # The HCP call has already happened; failing here would lose its result (say, the
            # id of a customer just created) and invite a duplicate on retry.
            logger.exception("HCP call recorder failed for %s %s", method, path)

    # -- pagination and cache ---------------------------------------------------------------

    def iter_pages(
        self,
        path: str,
        key: str,
        params: Mapping[str, Any] | None = None,
        page_size: int | None = MAX_PAGE_SIZE,
    ) -> Iterator[Any]:
        """Yield every item under `key` across all pages of a paginated list endpoint.

        page_size=None sends no page_size, and no page until page 2: for endpoints such as
        GET /job_fields/job_types whose definition takes no paging parameters but which still
        answer with the paginated envelope.
        """
        size = None if page_size is None else max(1, min(int(page_size), MAX_PAGE_SIZE))
        page = 1
        while True:
            query = dict(params or {})
            if size is not None:
                query.update(page=page, page_size=size)
            elif page > 1:
                query["page"] = page
            data = self._request("GET", path, params=query)
            if not isinstance(data, dict):
                return
            items = data.get(key) or []
            yield from items
            total = data.get("total_pages", data.get("total_pages_count"))
            # An empty page also ends the walk, so a wrong total_pages cannot loop forever.
            if not items or not isinstance(total, int) or page >= total:
                return
            page += 1

    def _cache_key(self, name: str) -> str:
        return f"{CACHE_PREFIX}{self.fingerprint}:{name}"

    def _cached(self, name: str, load: Callable[[], T]) -> T:
        if self.redis is None or self.cache_ttl <= 0:
            return load()
        key = self._cache_key(name)
        try:
            raw = self.redis.get(key)
        except Exception as exc:  # redis is a speed-up here; a Redis hiccup must not fail a sync
            logger.warning("HCP cache read failed for %s: %s", name, type(exc).__name__)
            raw = None
        if raw is not None:
            try:
                cached: T = json.loads(raw)  # what `load` returned when it was stored
                return cached
            except ValueError:
                pass
        value = load()
        try:
            self.redis.set(key, json.dumps(value), ex=self.cache_ttl)
        except Exception as exc:  # see above
            logger.warning("HCP cache write failed for %s: %s", name, type(exc).__name__)
        return value

    def invalidate_cache(self, *names: str) -> None:
        """Forget the cached job types, employees, lead sources and company (or just `names`)."""
        if self.redis is None:
            return
        self.redis.delete(*(self._cache_key(n) for n in (names or _CACHED)))

    # -- typed helpers ------------------------------------------------------------------------

    def _object(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]:
        """Make one call whose answer is a JSON object, as HCP's definition gives it."""
        return cast("dict[str, Any]", self._request(method, path, params=params, json=json))

    def search_customers(self, q: str, *, page: int = 1, page_size: int = 50) -> dict[str, Any]:
        """Return one page of customers matching `q` (name, email, phone or address)."""
        return self._object(
            "GET",
            "/customers",
            params={"q": q, "page": page, "page_size": min(page_size, MAX_PAGE_SIZE)},
        )

    def get_customer(
        self, customer_id: str, *, expand: list[str] | str | None = None
    ) -> dict[str, Any]:
        """Return one customer."""
        return self._object(
            "GET", f"/customers/{_seg(customer_id)}", params={"expand": _as_list(expand)}
        )

    def create_customer(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a customer and return it (with its addresses' ids)."""
        return self._object("POST", "/customers", json=dict(payload))

    def update_customer(self, customer_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Update a customer's fields (not addresses) and return it."""
        return self._object("PUT", f"/customers/{_seg(customer_id)}", json=dict(payload))

    def list_customer_addresses(
        self, customer_id: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Return all of a customer's addresses (every page)."""
        return list(
            self.iter_pages(
                f"/customers/{_seg(customer_id)}/addresses", "addresses", page_size=page_size
            )
        )

    def create_customer_address(
        self, customer_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Add an address to a customer and return it."""
        return self._object("POST", f"/customers/{_seg(customer_id)}/addresses", json=dict(payload))

    def create_job(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a job (customer_id and address_id required) and return it."""
        return self._object("POST", "/jobs", json=dict(payload))

    def get_job(self, job_id: str, *, expand: list[str] | str | None = None) -> dict[str, Any]:
        """Return one job, optionally with `expand[]` (attachments, appointments)."""
        return self._object("GET", f"/jobs/{_seg(job_id)}", params={"expand": _as_list(expand)})

    def job_invoices(self, job_id: str) -> list[dict[str, Any]]:
        """Return a job's invoices (GET /jobs/{job_id}/invoices: one page, not paginated)."""
        data = self._object("GET", f"/jobs/{_seg(job_id)}/invoices")
        return [i for i in data.get("invoices") or [] if isinstance(i, dict)]

    def get_estimate(self, estimate_id: str) -> dict[str, Any]:
        """Return one estimate with its options."""
        return self._object("GET", f"/estimates/{_seg(estimate_id)}")

    def get_lead(self, lead_id: str) -> dict[str, Any]:
        """Return one lead."""
        return self._object("GET", f"/leads/{_seg(lead_id)}")

    def list_jobs(
        self,
        *,
        customer_id: str | None = None,
        page: int = 1,
        page_size: int = 50,
        **filters: Any,
    ) -> dict[str, Any]:
        """Return one page of jobs; list-valued filters go out as `name[]=v`."""
        params = {
            **filters,
            "customer_id": customer_id,
            "page": page,
            "page_size": min(page_size, MAX_PAGE_SIZE),
        }
        return self._object("GET", "/jobs", params=params)

    def add_job_attachment(
        self, job_id: str, file_name: str, data: bytes, content_type: str = "image/jpeg"
    ) -> dict[str, Any]:
        """Attach a file to a job (multipart `file`; HCP answers 202 with the job's URL only).

        The answer names no attachment id: get_job(expand=["attachments"]) lists them, with the
        file name we gave, which is how a retry finds one whose answer was lost.
        """
        return cast(
            "dict[str, Any]",
            self._request(
                "POST",
                f"/jobs/{_seg(job_id)}/attachments",
                files={"file": (file_name, data, content_type)},
            ),
        )

    def create_estimate(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create an estimate (customer_id required; HCP answers 200) and return it."""
        return self._object("POST", "/estimates", json=dict(payload))

    def list_estimates(
        self, *, customer_id: str, page_size: int = MAX_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Return all of a customer's estimates (every page), their options' notes included."""
        return list(
            self.iter_pages(
                "/estimates", "estimates", params={"customer_id": customer_id}, page_size=page_size
            )
        )

    def create_lead(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create a lead (customer_id or an inline customer) and return it."""
        return self._object("POST", "/leads", json=dict(payload))

    def list_leads(
        self, *, customer_id: str, page_size: int = MAX_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Return all of a customer's leads (every page); a Lead carries no notes."""
        return list(
            self.iter_pages(
                "/leads", "leads", params={"customer_id": customer_id}, page_size=page_size
            )
        )

    def job_types(self) -> list[dict[str, Any]]:
        """Return all job types (cached)."""
        return self._cached(
            "job_types",
            # The definition gives this endpoint no paging parameters (only `name`).
            lambda: list(self.iter_pages("/job_fields/job_types", "job_types", page_size=None)),
        )

    def employees(self) -> list[dict[str, Any]]:
        """Return all active employees (cached)."""
        return self._cached("employees", lambda: list(self.iter_pages("/employees", "employees")))

    def lead_sources(self) -> list[dict[str, Any]]:
        """Return all lead sources (cached)."""
        return self._cached(
            "lead_sources", lambda: list(self.iter_pages("/lead_sources", "lead_sources"))
        )

    def company(self) -> dict[str, Any]:
        """Return the company (name, time zone, default arrival window; cached)."""
        return self._cached("company", lambda: self._object("GET", "/company"))

    def booking_windows(self, **params: Any) -> dict[str, Any]:
        """Return online-booking windows (show_for_days, start_date, service_id, ...)."""
        return self._object("GET", "/company/schedule_availability/booking_windows", params=params)

    def service_zones(self, zip_code: str) -> list[dict[str, Any]]:
        """Return the service zones that cover a ZIP, with their pros (cached per ZIP)."""
        return self._cached(
            f"service_zones:{zip_code}",
            lambda: list(
                self.iter_pages("/service_zones", "service_zones", params={"zip_code": zip_code})
            ),
        )

    def scheduled_jobs(
        self, *, start_min: str, start_max: str, employee_ids: list[str]
    ) -> list[dict[str, Any]]:
        """Return the jobs of these employees scheduled to start in [start_min, start_max]."""
        params = {
            "scheduled_start_min": start_min,
            "scheduled_start_max": start_max,
            "employee_ids": list(employee_ids),
        }
        return list(self.iter_pages("/jobs", "jobs", params=params))

    def dispatch_job(self, job_id: str, employee_ids: list[str]) -> dict[str, Any]:
        """Dispatch a job to exactly these employees (PUT: sending it again changes nothing)."""
        body = {"dispatched_employees": [{"employee_id": e} for e in employee_ids]}
        return self._object("PUT", f"/jobs/{_seg(job_id)}/dispatch", json=body)

    def create_lead_source(self, name: str) -> dict[str, Any]:
        """Create a lead source and return it; the cached list is dropped."""
        created = self._object("POST", "/lead_sources", json={"name": name})
        self.invalidate_cache("lead_sources")
        return created


def _as_list(value: list[str] | str | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _ms(started: float) -> int:
    return int(round((time.perf_counter() - started) * 1000))


def _connect_timeout(timeout: float | tuple[float, float]) -> float:
    return timeout[0] if isinstance(timeout, tuple) else timeout


def _read_timeout(timeout: float | tuple[float, float]) -> float:
    return timeout[1] if isinstance(timeout, tuple) else timeout

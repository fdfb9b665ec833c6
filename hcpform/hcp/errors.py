"""HCP's errors: the exceptions of the client and its rate limiter, and reading error answers.

Kept apart from client.py so the rate limiter can raise them without importing the client; the
helpers that turn an error answer (its body, its Retry-After) or a requests exception into a
short, redacted message live here too.
"""

from __future__ import annotations

import email.utils
import json
import re
from datetime import UTC, datetime
from typing import Any

from ..redact import redact

TRANSIENT = "transient"
AUTH = "auth"
PERMANENT = "permanent"
MESSAGE_LIMIT = 500  # the size of HcpCall.message and of stored last_error texts


def kind_for_status(status: int | None) -> str:
    """Return the error kind for an HTTP status (None means no answer: timeout or reset)."""
    if status is None or status in (408, 429) or status >= 500:
        return TRANSIENT
    if status in (401, 403):
        return AUTH
    return PERMANENT


class HcpError(Exception):
    """A failed call to Housecall Pro; `kind` tells the caller whether retrying can help."""

    kind: str = PERMANENT

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        if kind is not None:
            self.kind = kind
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        self.method = method
        self.path = path
        super().__init__(str(self))

    @property
    def retryable(self) -> bool:
        """Return True when a later attempt may succeed (connection trouble, 408, 429, 5xx)."""
        return self.kind == TRANSIENT

    def __str__(self) -> str:
        where = f" {self.method} {self.path}" if self.method and self.path else ""
        status = self.status if self.status is not None else "no response"
        unknown = " (outcome unknown)" if self.outcome_unknown else ""
        return f"HCP {status}{where}: {self.message}{unknown}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ breaks the default Exception pickling (RQ, multiprocessing).
        return (_rebuild, (type(self), self.message, self._state()))

    def _state(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "kind": self.kind,
            "retry_after": self.retry_after,
            "outcome_unknown": self.outcome_unknown,
            "method": self.method,
            "path": self.path,
        }


def _rebuild(cls: type[HcpError], message: str, state: dict[str, Any]) -> HcpError:
    return cls(message, **state)


class HcpTransientError(HcpError):
    """A connection error, timeout, 408, 429 or 5xx: retry later with backoff."""

    kind = TRANSIENT


class HcpAuthError(HcpError):
    """A 401 or 403: the API key is wrong, revoked, or the plan lacks API access."""

    kind = AUTH


class HcpPermanentError(HcpError):
    """Another 4xx (400, 404, 409, 410, 422, ...): the same request will fail again."""

    kind = PERMANENT


class RateLimitTimeout(HcpTransientError):
    """The shared rate limiter (or a shared pause) would make the caller wait too long."""


_CLASS_FOR_KIND: dict[str, type[HcpError]] = {
    TRANSIENT: HcpTransientError,
    AUTH: HcpAuthError,
    PERMANENT: HcpPermanentError,
}


def error_class(kind: str) -> type[HcpError]:
    """Return the HcpError subclass for a kind."""
    return _CLASS_FOR_KIND.get(kind, HcpError)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a Retry-After header asks for (delay-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 9110 dates are GMT
    now = now or datetime.now(UTC)
    # Clock skew can put the date in the past: clamp rather than return a negative wait.
    return max(0.0, (when - now).total_seconds())


def _join_values(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _message_from_json(data: Any) -> str | None:
    """Pull a human message out of any of HCP's error shapes (hcp-api.md §7)."""
    if isinstance(data, list):
        parts = [_message_from_json(item) or _join_values(item) for item in data]
        return "; ".join(p for p in parts if p) or None
    if not isinstance(data, dict) or not data:
        return None
    error = data.get("error")
    if isinstance(error, dict):
        inner = _message_from_json(error)
        if inner:
            return inner
    errors = data.get("errors")
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{field}: {_join_values(msgs)}" for field, msgs in errors.items())
    if isinstance(errors, list) and errors:
        return _message_from_json(errors)
    if isinstance(error, str) and error:
        description = data.get("error_description")
        return f"{error}: {description}" if description else error
    message = data.get("message")
    if isinstance(message, str) and message:
        # 400s carry {"message": "<sentence>", "<attr>": "<msg>"}: keep the attributes too.
        extras = [
            f"{key}: {_join_values(val)}"
            for key, val in data.items()
            if key != "message" and isinstance(val, (str, list)) and val
        ]
        return "; ".join([message, *extras])
    for key in ("detail", "title", "description"):
        if isinstance(data.get(key), str) and data[key]:
            return str(data[key])
    return None


def _clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    # Redact before clipping: cutting first could leave half an email that no longer matches.
    text = redact(text[: limit * 8])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_error_message(status: int, body: bytes | str | None) -> str:
    """Return HCP's error message for a response body, redacted and at most 500 characters."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if body is None or not body.strip():
        return f"HTTP {status} (empty body)"
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {status} (non-JSON body)"
    message = _message_from_json(data)
    if message is None:
        if data in ({}, [], None, ""):
            return f"HTTP {status} (empty body)"
        message = f"HTTP {status}: {json.dumps(data, separators=(',', ':'), default=str)}"
    return _clip(message)


_QUERY_IN_TEXT = re.compile(r"\?[^\s'\")]*")


def _describe_exception(exc: BaseException) -> str:
    # Exception texts from requests/urllib3 repeat the URL, whose query holds the search term
    # (an email or phone): drop every query string before redacting what is left.
    text = _QUERY_IN_TEXT.sub("?…", str(exc))
    return _clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

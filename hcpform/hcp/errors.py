"""Exceptions raised by the HCP client and its rate limiter (kept apart to avoid import cycles)."""

from __future__ import annotations

from typing import Any

TRANSIENT = "transient"
AUTH = "auth"
PERMANENT = "permanent"


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

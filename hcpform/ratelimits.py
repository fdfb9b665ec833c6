"""Every per-person limit of the app, on the `limits` library's moving window, shared by all
web processes.

Submits are limited per form per hour and per client IP; per IP too are first-step drafts,
out-of-area posts, wizard page views, returning-customer lookups and admin sign-ins
(RATELIMIT_* in config.py; the sign-in throttle in admin/throttle.py builds on `run`). An IPv6
client is counted by its /64 network: one household or one host gets a whole /64 and could
otherwise take a fresh address for every request. The HCP client's shared call budget uses the
same strategy in hcp/ratelimit.py (hcp/ imports nothing of ours, so it cannot import this).

Every limit is a moving window: exact counts, where a fixed window would let twice the limit
through at its edge. The counters live in RATELIMIT_STORAGE_URI (REDIS_URL; process memory in
the embedded mode, which is one process), so one homeowner hitting several gunicorn processes,
or several machines, is counted once. Only real submit attempts count: the final POST of the
review page whose draft-bound CSRF token was good (a replay of a draft already submitted is
free and simply shows its confirmation again).

When the storage is unreachable the counters fall back to this process's memory for a few
seconds at a time: limits still hold per process, and the wizard is never blocked, slowed
or broken by a Redis outage. The counters are kept per app (`app.extensions`), so a test or a
tool that builds several apps in one process gets each app's own storage.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask, current_app, request
from limits import RateLimitItem, RateLimitItemPerHour, parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

logger = logging.getLogger(__name__)

EXT_KEY = "hcpform.ratelimits"
DEAD_SECONDS = 5.0  # after a storage error, count in memory this long before trying again
T = TypeVar("T")


@dataclass
class _Counters:
    """One app's rate-limit counters: the shared storage and the in-memory fallback."""

    shared: MovingWindowRateLimiter | None
    fallback: MovingWindowRateLimiter
    dead_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _counters(app: Flask) -> _Counters:
    counters: _Counters | None = app.extensions.get(EXT_KEY)
    if counters is None:
        uri = str(app.config.get("RATELIMIT_STORAGE_URI") or "memory://")
        options: dict[str, Any] = {}
        if uri.startswith(("redis://", "rediss://", "unix://")):
            # A dead Redis must answer "no" quickly, not hold the homeowner's request.
            options = {"socket_connect_timeout": 1, "socket_timeout": 1}
        try:
            shared: MovingWindowRateLimiter | None = MovingWindowRateLimiter(
                storage_from_string(uri, **options)
            )
        except Exception:  # a bad URI is check_config's business; never break the wizard here
            logger.exception(
                "Rate-limit storage %s unusable; counting in memory", uri.split("@")[-1]
            )
            shared = None
        counters = _Counters(shared=shared, fallback=MovingWindowRateLimiter(MemoryStorage()))
        # Threads of a fresh process may get here together: the first one's counters win.
        counters = app.extensions.setdefault(EXT_KEY, counters)
    return counters


def run(action: Callable[[MovingWindowRateLimiter], T]) -> T:
    """Run `action` on this app's counters: the shared ones, or memory's while storage is down.

    The action may make several calls (test, then hit); in Redis each call is one atomic
    script, and in process memory, whose counters are not atomic across threads, the whole
    action holds a lock.
    """
    counters = _counters(current_app._get_current_object())  # type: ignore[attr-defined]

    def apply(strategy: MovingWindowRateLimiter) -> T:
        if isinstance(strategy.storage, MemoryStorage):
            with counters.lock:
                return action(strategy)
        return action(strategy)

    if counters.shared is not None and time.monotonic() >= counters.dead_until:
        try:
            return apply(counters.shared)
        except Exception as exc:  # any storage error: the wizard must go on
            counters.dead_until = time.monotonic() + DEAD_SECONDS
            logger.warning(
                "Rate-limit storage unreachable (%s); counting in memory for now",
                exc.__class__.__name__,
            )
    return apply(counters.fallback)


@dataclass
class Limit:
    """One limit to apply: what (the rate), to whom (the identifiers), and its name for logs."""

    name: str
    item: RateLimitItem
    identifiers: tuple[str, ...]


def ip_key(ip: str) -> str:
    """Return what a per-IP limit counts: the IPv4 address, or the /64 network of an IPv6 one."""
    try:
        address = ipaddress.ip_address((ip or "").split("%", 1)[0])
    except ValueError:
        return (ip or "unknown")[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def ip_limits(name: str, config_key: str, ip: str) -> list[Limit]:
    """Return the limits named by a RATELIMIT_* setting, counted for this client IP (or /64)."""
    return [
        Limit(name, item, (f"hcpform-{name}-ip", ip_key(ip)))
        for item in parse_many(str(current_app.config[config_key]))
    ]


def submit_limits(form: Any, ip: str) -> list[Limit]:
    """Return the limits a submit of this form from this IP must pass."""
    limits = [
        Limit("per-ip", item, ("hcpform-submit-ip", ip_key(ip)))
        for item in parse_many(str(current_app.config["RATELIMIT_SUBMIT_PER_IP"]))
    ]
    per_hour = form.submissions_per_hour
    if per_hour and per_hour > 0:  # 0 or empty: no ceiling for this form
        limits.append(
            Limit(
                "per-form",
                RateLimitItemPerHour(int(per_hour)),
                ("hcpform-submit-form", str(form.id)),
            )
        )
    return limits


def hit(limits: list[Limit]) -> float | None:
    """Count one attempt against every limit; return seconds to wait if one is used up, else None.

    All limits are tested before any is charged, so an attempt refused by the form's ceiling
    does not also use up the person's own allowance.
    """

    def count(strategy: MovingWindowRateLimiter) -> float | None:
        blocked = [lim for lim in limits if not strategy.test(lim.item, *lim.identifiers)]
        if not blocked:
            blocked = [lim for lim in limits if not strategy.hit(lim.item, *lim.identifiers)]
        if not blocked:
            return None
        for lim in blocked:
            logger.warning("Rate limit reached (%s: %s)", lim.name, lim.item)
        resets = [
            strategy.get_window_stats(lim.item, *lim.identifiers).reset_time for lim in blocked
        ]
        return max(1.0, max(resets) - time.time())

    return run(count)


def client_ip() -> str:
    """Return the client's IP: the peer, or the address TRUSTED_PROXIES hops of ProxyFix left."""
    return request.remote_addr or "unknown"


def enabled() -> bool:
    """Return True unless RATELIMIT_ENABLED switched the limits off."""
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))

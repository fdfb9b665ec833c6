"""The shared HCP call budget and pause, common to every worker process, on the `limits` library.

The budget is the `limits` library's moving window, the strategy every other limit of the app
uses (hcpform/ratelimits.py; this package imports nothing of ours, so it builds its own). Its
storage is the client's own Redis connection: `limits.storage.RedisStorage` is given that
connection's pool rather than a URI, so the budget needs no second configuration and no second
set of sockets, and it works the same on the embedded mode's fakeredis, which runs the
library's Lua scripts through `fakeredis[lua]`. (A `limits` MemoryStorage would also be right
in the embedded mode, one process, but would take a second code path for no gain: the pause
below needs the Redis connection anyway.)

Each acquisition is one atomic script on the Redis server, so workers on any number of hosts
share one budget. The library stamps each call with the caller's clock just before the script
runs: the hosts' clocks must agree (NTP), and two calls may land closer than the window by that
lag (about a millisecond), which HCP's unpublished limit leaves room for.

A 429 from HCP pauses every worker of that account: a Redis key whose value is the end of the
pause and whose PX expiry ends it, read by every `acquire`. A pause is never shortened by a
shorter one, and none is longer than MAX_PAUSE_SECONDS.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from .errors import RateLimitTimeout

__all__ = ["MAX_PAUSE_SECONDS", "RateLimitTimeout", "RedisRateLimiter"]

# Longest pause one 429 (or the circuit breaker) may impose; a Retry-After of a day would
# otherwise stop every sync silently (reliability.md §2.6: cap it, then alert).
MAX_PAUSE_SECONDS = 3600.0


def _as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def budget(rate_per_second: float) -> tuple[int, int]:
    """Return (calls, seconds) of the moving window for a rate: 5.0 -> (5, 1), 0.25 -> (1, 4).

    Fractional rates above 1 round down; rates below 1 become one call per 1/rate seconds,
    rounded up to whole seconds (the windows of `limits` are whole seconds): never faster.
    """
    if rate_per_second >= 1:
        return int(math.floor(rate_per_second)), 1
    return 1, int(math.ceil(1 / rate_per_second - 1e-9))


class RedisRateLimiter:
    """Allow at most `rate_per_second` acquisitions in any moving 1-second window, across hosts."""

    def __init__(
        self,
        redis: Any,
        rate_per_second: float,
        *,
        key: str = "hcpform:hcp:rl",
        max_wait: float = 30,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.redis = redis
        self.rate_per_second = float(rate_per_second)
        self.key = key
        self.pause_key = f"{key}:pause"
        self.max_wait = float(max_wait)
        self._sleep = sleep
        self.capacity, self.window_seconds = budget(self.rate_per_second)
        self.item = RateLimitItemPerSecond(self.capacity, self.window_seconds)
        # "redis://" only names the client library; the connections come from the pool.
        storage = RedisStorage("redis://", connection_pool=redis.connection_pool)
        self.strategy = MovingWindowRateLimiter(storage)

    def __repr__(self) -> str:
        return f"<RedisRateLimiter {self.key} {self.capacity}/{self.window_seconds}s>"

    def acquire(self) -> float:
        """Block (sleeping) until a call may be made; return the time of the grant (epoch seconds).

        Raises:
            RateLimitTimeout: if the shared pause or the queue would take longer than max_wait.
        """
        deadline = time.monotonic() + self.max_wait
        while True:
            paused = self.paused_for()
            if paused > 0:
                self._wait(paused, deadline, reason="HCP calls are paused")
                continue
            if self.strategy.hit(self.item, self.key):
                return time.time()
            # A slot frees when the oldest call in the window leaves it (at once if one freed
            # since the hit). A little jitter so waiting workers do not all retry together.
            stats = self.strategy.get_window_stats(self.item, self.key)
            wait = 0.0 if stats.remaining > 0 else stats.reset_time - time.time()
            wait = max(wait, 0.001) + random.uniform(0, 0.01)
            self._wait(wait, deadline, reason="rate limit queue")

    def _wait(self, seconds: float, deadline: float, *, reason: str) -> None:
        remaining = deadline - time.monotonic()
        if seconds > remaining:
            # Fail now rather than sleep and fail later: the caller reschedules the job.
            raise RateLimitTimeout(
                f"{reason}: would wait {seconds:.1f}s, more than max_wait {self.max_wait:g}s",
                retry_after=round(seconds, 3),
            )
        self._sleep(seconds)

    def pause_until(self, ts: float) -> None:
        """Make every worker wait until epoch time `ts`; never shortens a longer pause."""
        ts = min(float(ts), time.time() + MAX_PAUSE_SECONDS)

        def extend(pipe: Any) -> None:
            current = pipe.get(self.pause_key)
            if current is not None and float(_as_text(current)) >= ts:
                return
            ttl_ms = max(1, int(math.ceil((ts - time.time()) * 1000)))
            pipe.multi()
            pipe.set(self.pause_key, repr(ts), px=ttl_ms)

        if ts > time.time():
            self.redis.transaction(extend, self.pause_key)

    def pause_for(self, seconds: float) -> None:
        """Make every worker wait `seconds` from now."""
        self.pause_until(time.time() + max(0.0, float(seconds)))

    def paused_for(self) -> float:
        """Return how many seconds the shared pause has left (0.0 when not paused)."""
        value = self.redis.get(self.pause_key)
        if value is None:
            return 0.0
        try:
            return max(0.0, float(_as_text(value)) - time.time())
        except ValueError:
            return 0.0

    def resume(self) -> None:
        """Lift the shared pause (a manual circuit-breaker reset)."""
        self.redis.delete(self.pause_key)

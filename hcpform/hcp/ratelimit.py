"""A Redis rate limiter and shared pause for HCP calls, common to every worker process."""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import WatchError

from .errors import RateLimitTimeout

__all__ = ["RateLimitTimeout", "RedisRateLimiter"]

# Longest pause one 429 (or the circuit breaker) may impose; a Retry-After of a day would
# otherwise stop every sync silently (reliability.md §2.6: cap it, then alert).
MAX_PAUSE_SECONDS = 3600.0


def _as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisRateLimiter:
    """Allow at most `rate_per_second` acquisitions in any 1-second window, across processes.

    A sliding-window log: a sorted set holds one member per granted call, scored with the Redis
    server's clock in microseconds (one clock for every host). A slot is taken with
    WATCH/MULTI/EXEC, not Lua, so fakeredis (the embedded mode) runs the same code. Because any
    commit to the key aborts every concurrent EXEC, a successful commit saw the exact set it
    was judged on, and granted scores never go backwards.

    Rates below 1/s become one call per 1/rate seconds. Fractional rates above 1 round down.
    """

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
        if rate_per_second >= 1:
            self.capacity = int(math.floor(rate_per_second))
            self.window_us = 1_000_000
        else:
            self.capacity = 1
            self.window_us = int(round(1_000_000 / rate_per_second))

    def __repr__(self) -> str:
        return f"<RedisRateLimiter {self.key} {self.capacity}/{self.window_us / 1e6:g}s>"

    def _now_us(self, conn: Any) -> int:
        seconds, micros = conn.time()
        return int(seconds) * 1_000_000 + int(micros)

    def _try_acquire(self) -> tuple[bool, float]:
        """Take a slot if one is free; return (granted, seconds) with the grant time or the wait."""
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.key)
                    now = self._now_us(pipe)
                    floor = now - self.window_us
                    in_window = pipe.zcount(self.key, f"({floor}", "+inf")
                    if in_window >= self.capacity:
                        # The slot frees when the entry that pushes us over leaves the window.
                        blocking = pipe.zrangebyscore(
                            self.key,
                            f"({floor}",
                            "+inf",
                            start=in_window - self.capacity,
                            num=1,
                            withscores=True,
                        )
                        pipe.unwatch()
                        if not blocking:
                            continue
                        wait_us = int(blocking[0][1]) - floor
                        return False, max(wait_us, 1) / 1e6
                    pipe.multi()
                    pipe.zadd(self.key, {f"{now}:{uuid.uuid4().hex[:12]}": now})
                    pipe.zremrangebyscore(self.key, "-inf", floor)
                    pipe.pexpire(self.key, self.window_us // 1000 + 1000)
                    pipe.execute()
                    return True, now / 1e6
                except WatchError:
                    # Another worker took a slot between our read and our write: judge again.
                    continue

    def acquire(self) -> float:
        """Block (sleeping) until a call may be made; return the grant time (epoch seconds).

        Raises:
            RateLimitTimeout: if the shared pause or the queue would take longer than max_wait.
        """
        deadline = time.monotonic() + self.max_wait
        while True:
            paused = self.paused_for()
            if paused > 0:
                self._wait(paused, deadline, reason="HCP calls are paused")
                continue
            granted, value = self._try_acquire()
            if granted:
                return value
            # A little jitter so the waiting workers do not all retry in the same millisecond.
            self._wait(value + random.uniform(0, 0.01), deadline, reason="rate limit queue")

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

"""Sign-in throttling: a growing delay per (account, IP) pair and a hard limit per IP.

A stranger's wrong passwords must not lock an admin out, so nothing is counted per account
alone: the delay grows for the pair (this account from this address), and an admin signing in
from another address is not slowed at all. The per-IP limit (`RATELIMIT_LOGIN`) stops one
address from trying many accounts.

Each attempt is counted before its password is checked, with operations the storage performs
atomically (Redis scripts, or locks in memory), so parallel requests cannot slip past the
count. An attempt that is refused is taken back off the pair's count, so clicking again while
waiting does not make the wait longer. A correct password clears its pair and its address.

The counters are the wizard's (`hcpform/ratelimits.py`, whose `run` this builds on): the same
moving window, in Redis when configured, with the same in-memory fallback while Redis is down.
An IPv6 client is counted by its /64.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from flask import current_app
from limits import parse_many
from limits.strategies import MovingWindowRateLimiter

from ..ratelimits import enabled, ip_key, run

PAIR_KEY = "hcpform-login-pair"
IP_KEY = "hcpform-login-ip"


def _pair_key(email: str, ip: str) -> str:
    # Hashed so that the storage holds no email addresses.
    digest = hashlib.sha256(f"{email}\0{ip_key(ip)}".encode()).hexdigest()[:32]
    return f"{PAIR_KEY}/{digest}"


def pair_delay_offset(attempt: int, free: int, first: float, cap: float) -> float:
    """Return how long after a pair's first failure its `attempt`-th try may be checked.

    The first `free` attempts are not delayed; then each step doubles (`first`, 2 x `first`,
    4 x `first` … seconds, at most `cap` each), so scripted guessing slows to one try per `cap`.
    """
    steps = range(attempt - free)
    return float(sum(min(first * 2.0**step, cap) for step in steps))


def _settings() -> tuple[int, float, float, int]:
    cfg = current_app.config
    memory = max(1, round(float(cfg["LOGIN_FAILURE_MEMORY_HOURS"]) * 3600))
    first, cap = float(cfg["LOGIN_FIRST_DELAY_SECONDS"]), float(cfg["LOGIN_MAX_DELAY_SECONDS"])
    return int(cfg["LOGIN_FREE_FAILURES"]), first, cap, memory


def begin_attempt(email: str, ip: str) -> float | None:
    """Count a sign-in attempt before its password is checked; return seconds to wait if refused."""
    if not enabled():
        return None
    free, first_delay, cap, memory = _settings()
    ip_items = parse_many(str(current_app.config["RATELIMIT_LOGIN"]))
    pair = _pair_key(email, ip)
    bucket = ip_key(ip)

    def attempt(strategy: MovingWindowRateLimiter) -> float | None:
        storage: Any = strategy.storage
        count = storage.incr(pair, memory)  # atomic: this attempt's place among the pair's
        wait = 0.0
        if count > free:
            # The pair's first failure is when its counter was made (Redis: to ~0.5 s).
            first = storage.get_expiry(pair) - memory
            offset = pair_delay_offset(count, free, first_delay, cap)
            wait = first + offset - time.time()
        if wait <= 0:
            # Tested first so that one used-up limit does not also charge the others.
            refused = [item for item in ip_items if not strategy.test(item, IP_KEY, bucket)]
            if not refused:
                refused = [item for item in ip_items if not strategy.hit(item, IP_KEY, bucket)]
            if not refused:
                return None
            resets = [strategy.get_window_stats(i, IP_KEY, bucket).reset_time for i in refused]
            wait = max(resets) - time.time()
        storage.incr(pair, memory, amount=-1)  # refused: this attempt does not count
        return max(1.0, wait)

    return run(attempt)


def end_attempt(email: str, ip: str, *, ok: bool) -> None:
    """After the check: a correct password forgives the pair's and the address's failures."""
    if not ok or not enabled():
        return
    ip_items = parse_many(str(current_app.config["RATELIMIT_LOGIN"]))

    def forgive(strategy: MovingWindowRateLimiter) -> None:
        strategy.storage.clear(_pair_key(email, ip))
        for item in ip_items:
            strategy.clear(item, IP_KEY, ip_key(ip))

    run(forgive)

"""The wizard's returning-customer lookup: by phone, quick, cached, rate-limited, masked.

Only a masked hint ("J. D., 12•• Main St") and a yes/no ever reach the browser; HCP being slow
or down just means no hint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from flask import current_app

from .hcp import payloads
from .hcp.client import HcpError
from .hcp.connection import connection_row, key_source, make_client
from .queue import get_redis
from .validation import phone_digits

logger = logging.getLogger(__name__)
CACHE_SECONDS = 600
LIMITER_WAIT_SECONDS = 0.0


def _cache_key(phone: str) -> str:
    # Keyed by an HMAC so Redis holds no phone numbers.
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), phone.encode(), hashlib.sha256)
    return "hcpform:lookup:" + digest.hexdigest()[:32]


def allowed_for(ip: str) -> bool:
    """Return False once this IP has used up its lookups (against enumeration)."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return True
    from limits import parse_many

    from .extensions import limiter

    try:
        return all(
            limiter.limiter.hit(item, "hcpform-lookup", ip)
            for item in parse_many(current_app.config["RATELIMIT_LOOKUP_PER_IP"])
        )
    except Exception:  # the limiter's storage is down: skip the lookup rather than the wizard
        logger.warning("Lookup rate limiter unavailable; skipping the lookup")
        return False


def lookup_customer(phone: str, *, ip: str) -> dict[str, Any]:
    """Return {"phone", "matched", "hint"} for an E.164 phone; never raises."""
    result: dict[str, Any] = {"phone": phone, "matched": False, "hint": ""}
    conn = connection_row()
    if conn.paused or conn.state == "disconnected" or key_source(conn) == "none":
        return result
    redis = get_redis()
    try:
        cached = redis.get(_cache_key(phone))
        if cached:
            return {**json.loads(cached), "phone": phone}
    except Exception:  # no cache today; the lookup still works
        cached = None
    if not allowed_for(ip):
        return result
    timeout = float(current_app.config["HCP_LOOKUP_TIMEOUT"])
    try:
        client = make_client(timeout=(min(timeout, 2.0), timeout))
        if client.rate_limiter is not None:
            # The lookup shares the HCP rate limit with the workers, but a homeowner never
            # waits for it: no free slot now means no hint, not a blocked web process.
            client.rate_limiter.max_wait = LIMITER_WAIT_SECONDS
        found = client.search_customers(phone_digits(phone), page_size=25)
    except HcpError as exc:
        logger.info("🏠 Customer lookup result: unavailable (%s)", exc.status or "no answer")
        return result
    except Exception as exc:  # Redis (rate limiter) or anything else down: no hint, go on
        logger.warning("🏠 Customer lookup result: skipped (%s)", exc.__class__.__name__)
        return result
    for customer in found.get("customers", []):
        if payloads.customer_matches(customer, phone=phone, email="") == "phone":
            result.update(matched=True, hint=payloads.masked_hint(customer))
            break
    logger.info(
        "🏠 Customer lookup result: %s", "returning customer" if result["matched"] else "no match"
    )
    try:
        redis.set(
            _cache_key(phone),
            json.dumps({"matched": result["matched"], "hint": result["hint"]}),
            ex=CACHE_SECONDS,
        )
    except Exception:  # a lookup not cached is only asked again next time
        logger.debug("Lookup cache unavailable")
    return result

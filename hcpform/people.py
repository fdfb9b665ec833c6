"""The wizard's returning-customer lookup: by phone, quick, cached, rate-limited, masked.

All that ever reaches the browser is a yes/no and the last two digits of the house number of
the address on file ("••12"): enough for the owner of the number to recognise their home, too
little to tell a stranger whose number it is or where they live. No name, initial or street
name is shown. HCP being slow or down just means no hint.

Every lookup counts against the client's per-IP allowance before the cache is read, so a
cached answer can't be used to test phone numbers beyond the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from typing import Any, cast

from flask import current_app

from . import ratelimits
from .connection import connection_row, key_source, make_client
from .extensions import get_redis
from .hcp.client import HcpError
from .validation import phone_digits, phone_key

logger = logging.getLogger(__name__)
CACHE_SECONDS = 600
CACHE_VERSION = "2"  # part of the key: answers cached in an older shape are never read
LIMITER_WAIT_SECONDS = 0.0


def _cache_key(phone: str) -> str:
    # Keyed by an HMAC so Redis holds no phone numbers.
    message = f"{CACHE_VERSION}:{phone}".encode()
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), message, hashlib.sha256)
    return "hcpform:lookup:" + digest.hexdigest()[:32]


def allowed_for(ip: str) -> bool:
    """Count one lookup for this IP (or IPv6 /64); return False once its allowance is used up."""
    if not ratelimits.enabled():
        return True
    return ratelimits.hit(ratelimits.ip_limits("lookup", "RATELIMIT_LOOKUP_PER_IP", ip)) is None


def house_number_hint(customer: dict[str, Any]) -> str:
    """Return the last two digits of the customer's first house number, masked: "••12" (or '')."""
    for address in customer.get("addresses") or []:
        words = (address.get("street") or "").split()
        match = re.match(r"[0-9]+", words[0]) if words else None
        if match and len(match.group()) >= 2:
            return "••" + match.group()[-2:]
    return ""


def is_their_number(customer: dict[str, Any], phone: str, last_name: str) -> bool:
    """Return True when their mobile is this E.164 number (home or work only with the name)."""
    if phone_key(customer.get("mobile_number")) == phone:
        return True
    same_name = bool(last_name) and (customer.get("last_name") or "").strip().casefold() == (
        last_name.strip().casefold()
    )
    return same_name and any(
        phone_key(customer.get(key)) == phone for key in ("home_number", "work_number")
    )


def lookup_customer(phone: str, *, ip: str, last_name: str = "") -> dict[str, Any]:
    """Return {"phone", "matched", "hint"} for an E.164 phone; never raises."""
    result: dict[str, Any] = {"phone": phone, "matched": False, "hint": ""}
    conn = connection_row()
    if conn.paused or conn.state == "disconnected" or key_source(conn) == "none":
        return result
    if not allowed_for(ip):
        logger.info("🏠 Customer lookup result: skipped (this address used up its lookups)")
        return result
    redis = get_redis()
    cache_key = _cache_key(f"{phone}|{last_name.strip().casefold()}")
    try:
        # redis-py types its sync and asyncio clients alike; this sync client returns bytes.
        cached = cast("bytes | None", redis.get(cache_key))
        if cached:
            return {**json.loads(cached), "phone": phone}
    except Exception:  # no cache today; the lookup still works
        cached = None
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
        if is_their_number(customer, phone, last_name):
            result.update(matched=True, hint=house_number_hint(customer))
            break
    logger.info(
        "🏠 Customer lookup result: %s", "returning customer" if result["matched"] else "no match"
    )
    try:
        redis.set(
            cache_key,
            json.dumps({"matched": result["matched"], "hint": result["hint"]}),
            ex=CACHE_SECONDS,
        )
    except Exception:  # a lookup not cached is only asked again next time
        logger.debug("Lookup cache unavailable")
    return result

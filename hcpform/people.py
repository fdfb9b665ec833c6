"""The wizard's returning-customer lookup: by phone, quick, cached, rate-limited, masked.

It also keeps, on the draft only, what HCP answered (the customer it matched by phone or else
by email, or a possible duplicate, and when), so that the sync can reuse a fresh answer instead
of searching again (`shared_answer`).

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
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app

from . import ratelimits
from .connection import connection_row, key_source, make_client
from .extensions import get_redis
from .hcp import matching
from .hcp.client import HcpError, HousecallProClient
from .timeutil import utcnow

logger = logging.getLogger(__name__)
CACHE_SECONDS = 600
# How long the sync trusts the wizard's answer instead of searching HCP again.
SHARED_ANSWER_SECONDS = 600
# The customer fields the sync needs from a match (matching, typed differences, addresses).
KEPT_CUSTOMER_FIELDS = (
    "id", "first_name", "last_name", "email", "mobile_number", "home_number", "work_number",
)  # fmt: skip
KEPT_ADDRESS_FIELDS = ("id", "street", "street_line_2", "city", "state", "zip")
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
    return matching.customer_matches(customer, phone=phone, email=None, last_name=last_name) == (
        "phone"
    )


def lookup_customer(phone: str, *, ip: str, last_name: str = "", email: str = "") -> dict[str, Any]:
    """Return {"phone", "matched", "hint"} for an E.164 phone, and "hcp" when HCP answered.

    "hcp" is what the sync may reuse (see `shared_answer`); it never reaches the browser. A
    cached hint has none: the sync then searches itself. Never raises.
    """
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
        found = client.search_customers(matching.phone_query(phone), page_size=25)
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
    shared = _shared_search(client, found, phone=phone, email=email, last_name=last_name)
    if shared is not None:
        result["hcp"] = shared
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


def _keep(customer: dict[str, Any]) -> dict[str, Any]:
    """Return the part of an HCP customer the sync needs (no notes, tags or company data)."""
    kept = {k: customer.get(k) for k in KEPT_CUSTOMER_FIELDS}
    kept["addresses"] = [
        {k: a.get(k) for k in KEPT_ADDRESS_FIELDS}
        for a in customer.get("addresses") or []
        if isinstance(a, dict) and a.get("id")
    ]
    return kept


def _shared_search(
    client: HousecallProClient,
    by_phone: dict[str, Any],
    *,
    phone: str,
    email: str,
    last_name: str,
) -> dict[str, Any] | None:
    """Return the sync's customer search done now: phone answer given, email searched if needed.

    The same rules as the sync's own search (matching.customer_matches): a match by phone ends
    it; else the email is searched too (HCP's `q` has no OR). None when the email search failed.
    """
    email = matching.normalise_email(email or "")
    match: dict[str, Any] | None = None
    rule: str | None = None
    candidate: str | None = None
    searched = ["phone"]
    pages = [by_phone]
    for index in range(2):
        for customer in pages[index].get("customers", []):
            rule = matching.customer_matches(
                customer, phone=phone, email=email, last_name=last_name
            )
            if rule:
                match = customer
                break
            if candidate is None and matching.shares_contact(customer, phone=phone, email=email):
                candidate = customer.get("id")
        if match is not None or index == 1 or not email:
            break
        try:
            pages.append(client.search_customers(email, page_size=50))
        except Exception as exc:  # no shared answer: the sync searches for itself
            logger.info("🏠 Customer lookup by email: unavailable (%s)", type(exc).__name__)
            return None
        searched.append("email")
    return {
        "at": utcnow().isoformat(),
        "phone": phone,
        "email": email,
        "last_name": matching.normalise_name(last_name),
        "searched": searched,
        "customer": _keep(match) if match is not None else None,
        "rule": rule if match is not None else None,
        "candidate": candidate if match is None else None,
    }


def shared_answer(
    lookup: dict[str, Any] | None, *, phone: str, email: str, last_name: str, now: datetime
) -> dict[str, Any] | None:
    """Return the wizard's HCP answer when the sync may reuse it, else None.

    Reused only when fresh (SHARED_ANSWER_SECONDS) and made for this very phone, email and last
    name: a person who went back and typed another number is searched again.
    """
    answer = (lookup or {}).get("hcp")
    if not isinstance(answer, dict):
        return None
    try:
        at = datetime.fromisoformat(str(answer.get("at")))
    except ValueError:
        return None
    if at.tzinfo is None or not (
        timedelta(0) <= now - at <= timedelta(seconds=SHARED_ANSWER_SECONDS)
    ):
        return None
    email = matching.normalise_email(email or "")
    if (
        answer.get("phone") != phone
        or answer.get("email") != email
        or answer.get("last_name") != matching.normalise_name(last_name)
    ):
        return None
    if answer.get("customer") is None and email and "email" not in (answer.get("searched") or []):
        return None
    return answer

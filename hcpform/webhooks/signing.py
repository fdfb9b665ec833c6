"""HCP's webhook signature and replay window: pure functions over the raw bytes.

`Api-Signature` is the lowercase hex HMAC-SHA256 of `"{Api-Timestamp}.{raw body}"`, keyed with
the signing secret (UTF-8). It is checked in constant time over the exact bytes received.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

HANDSHAKE = {"foo": "bar"}  # HCP's unsigned URL-validation POST


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature HCP sends for this timestamp and body."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def timestamp_fresh(timestamp: str, *, now: float, tolerance: float) -> bool:
    """Return True when `timestamp` is unix seconds within `tolerance` of `now`."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(now - int(timestamp)) <= tolerance


def verify(
    secrets: Iterable[str],
    timestamp: str | None,
    given: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float,
) -> bool:
    """Return True when the signature matches one of the secrets and the timestamp is fresh."""
    if not timestamp or not given or not timestamp_fresh(timestamp, now=now, tolerance=tolerance):
        return False
    given = given.strip().lower()
    if given.startswith("sha256="):  # some senders prefix the algorithm
        given = given[len("sha256=") :]
    matched = False
    for secret in secrets:  # every secret is compared: the time does not tell which one matched
        if secret and hmac.compare_digest(signature(secret, timestamp, body), given):
            matched = True
    return matched


def dedupe_key(timestamp: str, body: bytes) -> str:
    """Return the key that stores a delivery once: sha256 of timestamp and body."""
    return hashlib.sha256(timestamp.encode() + b"." + body).hexdigest()


def is_handshake(body: bytes) -> bool:
    """Return True for HCP's URL-validation body, `{"foo":"bar"}`."""
    if len(body) > 100:
        return False
    try:
        return bool(json.loads(body) == HANDSHAKE)
    except ValueError:
        return False

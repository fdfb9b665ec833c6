"""Distances between US ZIP codes from offline coordinates (the `zipcodes` package), no map."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

import zipcodes

EARTH_RADIUS_MILES = 3958.8


@lru_cache(maxsize=4096)
def coordinates(zip_code: str) -> tuple[float, float] | None:
    """Return (latitude, longitude) of a ZIP's centre, or None when it is unknown."""
    zip5 = (zip_code or "")[:5]
    if len(zip5) != 5 or not zip5.isdigit():
        return None
    try:
        found = zipcodes.matching(zip5)
    except (TypeError, ValueError):
        return None
    if not found:
        return None
    try:
        return float(found[0]["lat"]), float(found[0]["long"])
    except (KeyError, TypeError, ValueError):
        return None


def place(zip_code: str) -> str:
    """Return "City, ST" for a ZIP, or '' when it is unknown."""
    zip5 = (zip_code or "")[:5]
    if len(zip5) != 5 or not zip5.isdigit():
        return ""
    try:
        found = zipcodes.matching(zip5)
    except (TypeError, ValueError):
        return ""
    return f"{found[0]['city']}, {found[0]['state']}" if found else ""


def haversine_miles(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle distance between two (latitude, longitude) points in miles."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(h)))


def nearest(zip_code: str, served: Iterable[str]) -> tuple[str, float] | None:
    """Return the served ZIP nearest to `zip_code` and its distance in miles, or None."""
    here = coordinates(zip_code)
    if here is None:
        return None
    best: tuple[str, float] | None = None
    for other in served:
        there = coordinates(other)
        if there is None:
            continue
        miles = haversine_miles(here, there)
        if best is None or miles < best[1]:
            best = (other[:5], miles)
    return best

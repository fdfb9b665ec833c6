"""Who works when and where: employees' working hours and the company's service zones.

HCP's API shows neither working hours nor which employee covers a day; they live in its
Online Booking settings and decide what GET /company/schedule_availability/booking_windows
answers. The sandbox seeds them and lets tests change them through /_sandbox/schedule.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from .util import SEED_NAMESPACE, Result, answer, paginate, state

if TYPE_CHECKING:
    from werkzeug.datastructures import MultiDict

    from .state import SandboxState

bp = Blueprint("staff", __name__)

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAYS = tuple(range(5))
Hours = dict[int, tuple[int, int]]  # weekday (0 = Monday) -> (start, end) in minutes from 0:00

# Three techs and the office work Monday to Friday 8-17; Tom covers Tuesday to Saturday.
_WORKING_DAYS: dict[str, tuple[int, ...]] = {
    "Marcus Reyes": WEEKDAYS,
    "Dana Whitfield": WEEKDAYS,
    "Luis Ortega": WEEKDAYS,
    "Tom Becker": (1, 2, 3, 4, 5),
    "Priya Shah": WEEKDAYS,
}
# name, ZIP codes, trip charge (cents), the pros who cover it
_ZONES: tuple[tuple[str, tuple[str, ...], int, tuple[str, ...]], ...] = (
    (
        "Central Austin",
        ("78701", "78702", "78703", "78704", "78705"),
        0,
        ("Marcus Reyes", "Dana Whitfield"),
    ),
    ("South Austin", ("78745", "78748", "78749"), 2500, ("Tom Becker", "Luis Ortega")),
)
_ZIP_IN_TEXT = re.compile(r"\b(\d{5})(?:-\d{4})?\b")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def seed_locked(st: SandboxState) -> None:
    """Put the seeded working hours and service zones in place (lock held)."""
    by_name = {f"{e['first_name']} {e['last_name']}": e for e in st.employees}
    st.working_hours = {
        e["id"]: {d: (8 * 60, 17 * 60) for d in _WORKING_DAYS.get(name, ())}
        for name, e in by_name.items()
    }
    zones = _ZONES if by_name else ()
    st.service_zones = [
        {
            "id": str(uuid.uuid5(SEED_NAMESPACE, f"zone:{name}")),
            "name": name,
            "coverage_type": "zip_codes",
            "trip_charge": charge,
            "fee_name": "Trip charge",
            "zip_codes": list(zips),
            "cities": [{"city": "Austin", "state": "TX", "country": "US"}],
            "service_pros": [_pro(by_name[p]) for p in pros if p in by_name],
        }
        for name, zips, charge, pros in zones
    ]


def _pro(employee: Mapping[str, Any]) -> dict[str, str]:
    first, last = employee["first_name"], employee["last_name"]
    return {
        "id": employee["id"],
        "first_name": first,
        "last_name": last,
        "email": employee["email"],
        "full_name": f"{first} {last}",
    }


def works_locked(st: SandboxState, employee_id: str, start: datetime, end: datetime) -> bool:
    """Return True when the employee's hours cover [start, end) (local, one day; lock held)."""
    hours = st.working_hours.get(employee_id, {}).get(start.weekday())
    if hours is None or start.date() != end.date():
        return False
    begin, finish = start.hour * 60 + start.minute, end.hour * 60 + end.minute
    return hours[0] <= begin and finish <= hours[1]


def hours_json(hours: Hours) -> dict[str, list[str] | None]:
    """Render one employee's hours as {"monday": ["08:00", "17:00"], "sunday": None, ...}."""
    return {
        name: [_hhmm(hours[d][0]), _hhmm(hours[d][1])] if d in hours else None
        for d, name in enumerate(DAY_NAMES)
    }


def parse_hours(data: Any) -> Hours:
    """Read {"monday": ["08:00", "17:00"], ...} (a missing or null day is off); ValueError."""
    if not isinstance(data, Mapping):
        raise ValueError("working hours must be an object of day names")
    unknown = set(data) - set(DAY_NAMES)
    if unknown:
        raise ValueError(f"unknown day names: {sorted(unknown)}")
    out: Hours = {}
    for d, name in enumerate(DAY_NAMES):
        span = data.get(name)
        if span is None:
            continue
        if not (isinstance(span, list | tuple) and len(span) == 2):
            raise ValueError(f"{name}: expected [start, end] like ['08:00', '17:00']")
        start, end = (_minutes(str(v)) for v in span)
        if end <= start:
            raise ValueError(f"{name}: the end must be after the start")
        out[d] = (start, end)
    return out


def _minutes(value: str) -> int:
    match = _HHMM.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a time like 08:00")
    return int(match[1]) * 60 + int(match[2])


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def list_zones(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /service_zones, filtered by zip_code or by an address's ZIP or city."""
    with st.lock:
        zones = [dict(z) for z in st.service_zones]
    zip_code = (args.get("zip_code") or "").strip()
    if zip_code:
        zones = [z for z in zones if zip_code[:5] in z["zip_codes"]]
    address = (args.get("address") or "").lower()
    found = _ZIP_IN_TEXT.findall(address)
    if found:
        zones = [z for z in zones if found[-1] in z["zip_codes"]]
    elif address:
        zones = [z for z in zones if any(c["city"].lower() in address for c in z["cities"])]
    page, envelope = paginate(zones, args)
    envelope["service_zones"] = page
    return 200, envelope


@bp.get("/service_zones")
def zones_index() -> Response:
    return answer(list_zones(state(), request.args))

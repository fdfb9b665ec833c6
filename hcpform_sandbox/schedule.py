"""The company's schedule: business hours, schedule windows and online booking windows.

Booking windows come from the company's hours, each bookable pro's working hours (staff.py)
and the scheduled jobs and estimates the sandbox holds, so booking a window takes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from flask import Blueprint, Response, request

from .staff import DAY_NAMES, works_locked
from .util import Result, answer, field_errors, int_arg, iso, parse_datetime, state, utcnow

if TYPE_CHECKING:
    from werkzeug.datastructures import MultiDict

    from .state import SandboxState

bp = Blueprint("schedule", __name__)

# The company's hours: Mon-Sat 8:00-17:00, closed on Sunday; each pro works part of them. The
# schedule windows (GET /company/schedule_availability) are 3-hour arrival windows inside them.
BUSINESS_HOURS: dict[int, tuple[int, int]] = {d: (8, 17) for d in range(6)}
SCHEDULE_WINDOW_HOURS = 3


def availability(st: SandboxState) -> Result:
    """GET /company/schedule_availability: the business hours as 3-hour windows (or none)."""
    data = []
    for weekday, name in enumerate(DAY_NAMES):
        windows = []
        if weekday in BUSINESS_HOURS and st.booking_windows_enabled:
            open_h, close_h = BUSINESS_HOURS[weekday]
            for h in range(open_h, close_h, SCHEDULE_WINDOW_HOURS):
                end = min(h + SCHEDULE_WINDOW_HOURS, close_h)
                windows.append({"start_time": f"{h:02d}:00", "end_time": f"{end:02d}:00"})
        data.append({"day_name": name, "schedule_windows": windows})
    return 200, {"availability_buffer_in_days": 0, "daily_availabilities": {"data": data}}


def _busy_locked(st: SandboxState) -> list[tuple[datetime, datetime, frozenset[str]]]:
    """Scheduled jobs and estimates as (start, end, assigned employee ids) (lock held)."""
    return [
        (
            parse_datetime(r["schedule"]["scheduled_start"], st.tz),
            parse_datetime(r["schedule"]["scheduled_end"], st.tz),
            frozenset(r["assigned_employee_ids"]),
        )
        for r in (*st.jobs.values(), *st.estimates.values())
        if r["schedule"]["scheduled_start"] and r["schedule"]["scheduled_end"]
    ]


def open_locked(
    st: SandboxState,
    busy: list[tuple[datetime, datetime, frozenset[str]]],
    start: datetime,
    end: datetime,
    wanted: set[str] | None,
) -> bool:
    """Return True when a wanted bookable pro is free for [start, end) (local times; lock held).

    HCP: a window cannot be booked "if all 'available to be booked online' employees are
    already scheduled to a job, estimate, or event during that time window". A job assigned to
    pros makes them busy. An unassigned one takes one free pro, preferably one outside `wanted`
    (HCP books online requests to its point of contact, so they are never left unassigned;
    counting unassigned work against capacity keeps a booked window from staying open).
    """
    pool = {
        e["id"]
        for e in st.employees
        if e["permissions"]["can_be_booked_online"] and works_locked(st, e["id"], start, end)
    }
    overlapping = [ids for s, e, ids in busy if s < end and e > start]
    free = pool - set().union(*overlapping)
    unassigned = sum(1 for ids in overlapping if not ids)
    mine = free if wanted is None else free & wanted
    others = len(free - mine)
    return len(mine) > max(0, unassigned - others)


def _days_open(st: SandboxState) -> set[int]:
    """Weekdays the company is open and some bookable pro works (lock held)."""
    bookable = [e["id"] for e in st.employees if e["permissions"]["can_be_booked_online"]]
    worked = {d for i in bookable for d in st.working_hours.get(i, {})}
    return worked & set(BUSINESS_HOURS)


def booking_windows(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /company/schedule_availability/booking_windows."""
    days = int_arg(args.get("show_for_days"), 7)
    if days < 1 or days > 90:
        return field_errors(422, {"show_for_days": ["must be between 1 and 90"]})
    duration = int_arg(args.get("service_duration"), st.booking_window_minutes)
    if duration < 1:
        return field_errors(422, {"service_duration": ["must be a positive integer"]})
    now = utcnow()
    with st.lock:
        enabled, open_days = st.booking_windows_enabled, _days_open(st)
    if args.get("start_date"):
        try:
            start_day = parse_datetime(args["start_date"], st.tz).astimezone(st.tz).date()
        except ValueError:
            return field_errors(422, {"start_date": ["is not a valid date"]})
    else:
        # "defaults to the next day with an available booking window"
        start_day = now.astimezone(st.tz).date() + timedelta(days=1)
        for _ in range(7):
            if start_day.weekday() in open_days:
                break
            start_day += timedelta(days=1)
    envelope = {"show_for_days": days, "start_date": start_day.isoformat()}
    if not enabled:
        return 200, {"booking_windows": [], **envelope}
    wanted = set(args.getlist("employee_ids[]")) or None
    windows = []
    with st.lock:
        busy = _busy_locked(st)
        for offset in range(days):
            day = start_day + timedelta(days=offset)
            hours = BUSINESS_HOURS.get(day.weekday())
            if hours is None:
                continue  # closed on Sunday
            cursor = datetime(day.year, day.month, day.day, hours[0], tzinfo=st.tz)
            close = datetime(day.year, day.month, day.day, hours[1], tzinfo=st.tz)
            while cursor + timedelta(minutes=duration) <= close:
                end = cursor + timedelta(minutes=duration)
                if cursor > now:
                    available = open_locked(st, busy, cursor, end, wanted)
                    windows.append(
                        {"start_time": iso(cursor), "end_time": iso(end), "available": available}
                    )
                cursor = end
    return 200, {"booking_windows": windows, **envelope}


@bp.get("/company/schedule_availability")
def availability_view() -> Response:
    return answer(availability(state()))


@bp.get("/company/schedule_availability/booking_windows")
def booking_windows_view() -> Response:
    return answer(booking_windows(state(), request.args))

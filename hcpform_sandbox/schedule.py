"""The company's schedule: business hours, schedule windows and online booking windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from flask import Blueprint, Response, request

from .util import Result, answer, field_errors, int_arg, iso, parse_datetime, state, utcnow

if TYPE_CHECKING:
    from werkzeug.datastructures import MultiDict

    from .state import SandboxState

bp = Blueprint("schedule", __name__)

# Business hours for booking windows: Mon-Sat 8:00-17:00, closed on Sunday. The schedule
# windows (GET /company/schedule_availability) are 3-hour arrival windows inside them.
BUSINESS_HOURS: dict[int, tuple[int, int]] = {d: (8, 17) for d in range(6)}
SCHEDULE_WINDOW_HOURS = 3
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def availability() -> Result:
    """GET /company/schedule_availability: the business hours as 3-hour windows."""
    data = []
    for weekday, name in enumerate(DAY_NAMES):
        windows = []
        if weekday in BUSINESS_HOURS:
            open_h, close_h = BUSINESS_HOURS[weekday]
            for h in range(open_h, close_h, SCHEDULE_WINDOW_HOURS):
                end = min(h + SCHEDULE_WINDOW_HOURS, close_h)
                windows.append({"start_time": f"{h:02d}:00", "end_time": f"{end:02d}:00"})
        data.append({"day_name": name, "schedule_windows": windows})
    return 200, {"availability_buffer_in_days": 0, "daily_availabilities": {"data": data}}


def booking_windows(st: SandboxState, args: MultiDict[str, str]) -> Result:
    """GET /company/schedule_availability/booking_windows."""
    days = int_arg(args.get("show_for_days"), 7)
    if days < 1 or days > 90:
        return field_errors(422, {"show_for_days": ["must be between 1 and 90"]})
    duration = int_arg(args.get("service_duration"), st.booking_window_minutes)
    if duration < 1:
        return field_errors(422, {"service_duration": ["must be a positive integer"]})
    now = utcnow()
    if args.get("start_date"):
        try:
            start_day = parse_datetime(args["start_date"], st.tz).astimezone(st.tz).date()
        except ValueError:
            return field_errors(422, {"start_date": ["is not a valid date"]})
    else:
        # "defaults to the next day with an available booking window"
        start_day = now.astimezone(st.tz).date() + timedelta(days=1)
        while start_day.weekday() not in BUSINESS_HOURS:
            start_day += timedelta(days=1)
    with st.lock:
        staff = [e for e in st.employees if e["permissions"]["can_be_booked_online"]]
        if args.getlist("employee_ids[]"):
            wanted = set(args.getlist("employee_ids[]"))
            staff = [e for e in staff if e["id"] in wanted]
        staff_ids = {e["id"] for e in staff}
        busy = [
            (
                parse_datetime(j["schedule"]["scheduled_start"], st.tz),
                parse_datetime(j["schedule"]["scheduled_end"], st.tz),
                set(j["assigned_employee_ids"]),
            )
            for j in st.jobs.values()
            if j["schedule"]["scheduled_start"] and j["schedule"]["scheduled_end"]
        ]
    windows = []
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
                # A job blocks a window for its assigned staff, or for one pro if unassigned.
                taken = sum(
                    len(ids & staff_ids) if ids else 1
                    for start, stop, ids in busy
                    if start < end and stop > cursor
                )
                available = taken < len(staff)
                windows.append(
                    {"start_time": iso(cursor), "end_time": iso(end), "available": available}
                )
            cursor = end
    return 200, {
        "booking_windows": windows,
        "show_for_days": days,
        "start_date": start_day.isoformat(),
    }


@bp.get("/company/schedule_availability")
def availability_view() -> Response:
    return answer(availability())


@bp.get("/company/schedule_availability/booking_windows")
def booking_windows_view() -> Response:
    return answer(booking_windows(state(), request.args))

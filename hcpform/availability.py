"""Open times for step 6: HCP's booking windows, cached, checked again at submit, held till synced.

Step 6 offers the open windows of the next `form.booking_days` days from HCP's
`GET /company/schedule_availability/booking_windows`, in the company's time zone, never one that
starts within the form's lead time. HCP answers for a minute from Redis (per service duration,
employee set and start date), so a busy form costs HCP at most one such call per minute per
service; the call counts against the shared HCP budget only when it is made.

HCP does not refuse a job in a taken window, so whoever books must check first: the review's
submit re-checks the chosen window with HCP under a short Redis lock, and a submission booked in
a window holds it (in the database) until the sync has created its job, after which HCP's own
answer shows it taken.

When HCP cannot answer (down, 5xx, 429 beyond a short wait, no booking windows configured) or
the form is set to "preferences only", step 6 offers the form's own windows as *preferred*
times, which become an unscheduled job the office confirms by phone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from .connection import connection_row, key_source, make_client
from .extensions import db, get_redis
from .hcp.client import HcpError, HousecallProClient
from .models import Form, Status, Submission

logger = logging.getLogger(__name__)

BOOKED = "booked"
PREFERENCE = "preference"
MODE_BOOKED = "booked"
MODE_PREFERENCES = "preferences"
DEFAULT_DURATION_MINUTES = 120
CACHE_SECONDS = 60
CACHE_PREFIX = "hcpform:availability:"
LOCK_PREFIX = "hcpform:slot-lock:"
LOCK_SECONDS = 20  # longer than one HCP check and the commit; a dead holder frees it by then
LOCK_WAIT_SECONDS = 10.0
SHORT_WAIT_SECONDS = 2.0  # the longest a homeowner waits on the shared HCP budget or a 429
FIRST_DAYS_SHOWN = 3  # days of windows before "Show more days"
ID_FORMAT = "%Y%m%dT%H%MZ"
# Submissions that will become a job in HCP (spam, failed and manual ones hold no window).
ON_THE_WAY = (Status.PENDING, Status.SYNCING, Status.WAITING)

# Why step 6 shows preferred times instead of open windows.
REASON_MODE = "mode"  # the form is set to preferences only
REASON_UNAVAILABLE = "unavailable"  # HCP could not answer
REASON_NONE_OPEN = "none_open"  # HCP has no open window in the days shown (or none configured)


@dataclass(frozen=True)
class Window:
    """One bookable window: an aware UTC start and end."""

    start: datetime
    end: datetime

    @property
    def id(self) -> str:
        """Return the window's value in forms and drafts: "20261201T1400Z-20261201T1600Z"."""
        return f"{self.start:{ID_FORMAT}}-{self.end:{ID_FORMAT}}"

    def label(self, tz: ZoneInfo) -> str:
        """Return the window's times as people read them: "8–10 am", "11 am–1 pm"."""
        return time_range(self.start.astimezone(tz), self.end.astimezone(tz))

    def day_label(self, tz: ZoneInfo) -> str:
        """Return the day and times: "Tuesday, December 1, 8–10 am"."""
        return f"{day_heading(self.start.astimezone(tz).date())}, {self.label(tz)}"


@dataclass
class Day:
    """The open windows of one day, in the company's time zone."""

    day: date
    heading: str
    windows: list[tuple[str, str]]  # (window id, label)


@dataclass
class Availability:
    """What step 6 offers: open HCP windows ("booked") or the form's own ("preference")."""

    kind: str
    time_zone: str
    days: list[Day] = field(default_factory=list)
    reason: str = ""

    @property
    def ids(self) -> set[str]:
        """Return the ids of every window offered."""
        return {wid for d in self.days for wid, _ in d.windows}


def parse_window_id(value: str) -> Window | None:
    """Return the window an id names, or None when it is no window id."""
    try:
        start_text, end_text = str(value).split("-", 1)
        start = datetime.strptime(start_text, ID_FORMAT).replace(tzinfo=UTC)
        end = datetime.strptime(end_text, ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return Window(start, end) if end > start else None


def _hour(moment: datetime) -> str:
    """Return "8", "8:30" (no am/pm)."""
    hour = moment.hour % 12 or 12
    return f"{hour}" if moment.minute == 0 else f"{hour}:{moment.minute:02d}"


def time_range(start: datetime, end: datetime) -> str:
    """Return "8–10 am", "11 am–1 pm" for two local times."""
    start_half, end_half = ("am" if start.hour < 12 else "pm"), ("am" if end.hour < 12 else "pm")
    if start_half == end_half:
        return f"{_hour(start)}–{_hour(end)} {end_half}"
    return f"{_hour(start)} {start_half}–{_hour(end)} {end_half}"


def day_heading(day: date) -> str:
    """Return "Tuesday, December 1"."""
    return f"{day:%A}, {day:%B} {day.day}"


def service_settings(form: Form, service_type: str) -> tuple[int, list[str]]:
    """Return the visit length in minutes and the pros (HCP employee ids) of a service type."""
    entry = next((s for s in form.service_types or [] if s.get("name") == service_type), {})
    try:
        minutes = int(entry.get("duration_minutes") or DEFAULT_DURATION_MINUTES)
    except (TypeError, ValueError):
        minutes = DEFAULT_DURATION_MINUTES
    employees = sorted({str(e) for e in entry.get("employee_ids") or [] if e})
    return max(15, min(minutes, 24 * 60)), employees


def _client() -> HousecallProClient:
    """Return a client that never keeps a homeowner waiting long on the shared budget."""
    timeout = float(current_app.config["HCP_LOOKUP_TIMEOUT"])
    client = make_client(timeout=(min(timeout, 2.0), timeout))
    if client.rate_limiter is not None:
        client.rate_limiter.max_wait = SHORT_WAIT_SECONDS
    return client


def _call(client: HousecallProClient, params: dict[str, Any]) -> dict[str, Any]:
    """Ask HCP once; after a 429 ask once more (the shared pause makes that wait, briefly)."""
    try:
        return client.booking_windows(**params)
    except HcpError as exc:
        if exc.status != 429 or (exc.retry_after or 0) > SHORT_WAIT_SECONDS:
            raise
    return client.booking_windows(**params)


def _cache_key(client: HousecallProClient, params: dict[str, Any]) -> str:
    text = json.dumps(params, sort_keys=True)
    return f"{CACHE_PREFIX}{client.fingerprint}:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def fetch_windows(
    client: HousecallProClient,
    *,
    start: date,
    days: int,
    duration: int,
    employee_ids: list[str],
    fresh: bool = False,
) -> list[dict[str, Any]]:
    """Return HCP's booking windows from `start` for `days` days (cached a minute unless fresh).

    Raises:
        HcpError: when HCP cannot answer.
    """
    params: dict[str, Any] = {
        "start_date": f"{start.isoformat()}T00:00:00",
        "show_for_days": max(1, min(int(days), 90)),
        "service_duration": duration,
    }
    if employee_ids:
        params["employee_ids"] = list(employee_ids)
    redis, key = get_redis(), _cache_key(client, params)
    if not fresh:
        try:
            cached = cast("bytes | None", redis.get(key))
            if cached:
                return list(json.loads(cached))
        except Exception as exc:  # the cache is a saving, not a need
            logger.warning("Availability cache read failed: %s", type(exc).__name__)
    windows = list(_call(client, params).get("booking_windows") or [])
    try:
        redis.set(key, json.dumps(windows), ex=CACHE_SECONDS)
    except Exception as exc:  # see above
        logger.warning("Availability cache write failed: %s", type(exc).__name__)
    return windows


def forget_cached(form: Form, service_type: str, *, now: datetime) -> None:
    """Drop the cached windows step 6 shows for a service (after a window was found taken)."""
    try:
        client = make_client()
        tz = ZoneInfo(_time_zone(client, form))
        duration, employees = service_settings(form, service_type)
        params: dict[str, Any] = {
            "start_date": f"{now.astimezone(tz).date().isoformat()}T00:00:00",
            "show_for_days": max(1, min(int(form.booking_days), 90)),
            "service_duration": duration,
        }
        if employees:
            params["employee_ids"] = employees
        get_redis().delete(_cache_key(client, params))
    except Exception as exc:  # a stale list for a minute is the worst case
        logger.warning("Could not drop cached windows: %s", type(exc).__name__)


def _time_zone(client: HousecallProClient, form: Form) -> str:
    """Return the company's time zone: as last seen by a connection test, else from HCP."""
    conn = connection_row()
    name = conn.time_zone or (client.company().get("time_zone") or "") or form.time_zone
    try:
        ZoneInfo(name)
    except (ValueError, KeyError):
        return form.time_zone
    return name


def _open(windows: list[dict[str, Any]], *, earliest: datetime) -> list[Window]:
    """Return the available windows that start at or after `earliest`, in order."""
    found = []
    for w in windows:
        if w.get("available") is not True:
            continue
        try:
            start = datetime.fromisoformat(str(w["start_time"]).replace("Z", "+00:00"))
            end = datetime.fromisoformat(str(w["end_time"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        if start.tzinfo is None or end <= start:
            continue
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if start >= earliest:
            found.append(Window(start, end))
    return sorted(set(found), key=lambda w: w.start)


def held_windows(*, now: datetime, recent: bool = False) -> list[Window]:
    """Return the windows booked by submissions whose job the sync has not created yet.

    With `recent`, also those booked in the last minute: a cached HCP answer may predate
    their job, so a list read from the cache must not offer their window again.
    """
    unsent = Submission.hcp_job_id.is_(None) & Submission.status.in_(ON_THE_WAY)
    if recent:
        unsent = unsent | (
            Submission.status.in_([*ON_THE_WAY, Status.SYNCED])
            & (Submission.updated_at > now - timedelta(seconds=CACHE_SECONDS + 5))
        )
    rows = db.session.execute(
        select(Submission.scheduled_start, Submission.scheduled_end).where(
            Submission.schedule_kind == BOOKED, Submission.scheduled_end > now, unsent
        )
    ).all()
    return [Window(s, e) for s, e in rows if s is not None and e is not None]


def _overlaps(window: Window, held: list[Window]) -> bool:
    return any(h.start < window.end and window.start < h.end for h in held)


def preference_only(form: Form) -> bool:
    """Return True when the form never books HCP windows (its mode, or no HCP key at all)."""
    if form.scheduling_mode == MODE_PREFERENCES:
        return True
    conn = connection_row()
    return conn.paused or conn.state == "disconnected" or key_source(conn) == "none"


def open_windows(form: Form, service_type: str, *, now: datetime) -> Availability:
    """Return what step 6 offers for a service type: HCP's open windows, or preferred times."""
    if preference_only(form):
        return Availability(PREFERENCE, form.time_zone, reason=REASON_MODE)
    duration, employees = service_settings(form, service_type)
    try:
        client = _client()
        tz_name = _time_zone(client, form)
        tz = ZoneInfo(tz_name)
        raw = fetch_windows(
            client,
            start=now.astimezone(tz).date(),
            days=form.booking_days,
            duration=duration,
            employee_ids=employees,
        )
    except HcpError as exc:
        logger.info("📅 Booking windows unavailable (%s): offering preferred times", exc.status)
        return Availability(PREFERENCE, form.time_zone, reason=REASON_UNAVAILABLE)
    except Exception as exc:  # Redis (the budget) or anything else: preferences still work
        logger.warning("📅 Booking windows skipped (%s)", type(exc).__name__)
        return Availability(PREFERENCE, form.time_zone, reason=REASON_UNAVAILABLE)
    earliest = now + timedelta(minutes=int(form.lead_time_minutes or 0))
    held = held_windows(now=now, recent=True)
    days: dict[date, Day] = {}
    for window in _open(raw, earliest=earliest):
        if _overlaps(window, held):
            continue
        local = window.start.astimezone(tz).date()
        day = days.setdefault(local, Day(local, day_heading(local), []))
        day.windows.append((window.id, window.label(tz)))
    if not days:
        return Availability(PREFERENCE, form.time_zone, reason=REASON_NONE_OPEN)
    return Availability(BOOKED, tz_name, days=sorted(days.values(), key=lambda d: d.day))


def still_open(form: Form, service_type: str, window: Window, *, now: datetime) -> bool | None:
    """Ask HCP (not the cache) whether a window is still open; None when HCP cannot answer.

    A window booked by a submission the sync has not sent yet counts as taken.
    """
    if window.start < now + timedelta(minutes=int(form.lead_time_minutes or 0)):
        return False
    if _overlaps(window, held_windows(now=now)):
        return False
    duration, employees = service_settings(form, service_type)
    try:
        client = _client()
        tz = ZoneInfo(_time_zone(client, form))
        raw = fetch_windows(
            client,
            start=window.start.astimezone(tz).date(),
            days=1,
            duration=duration,
            employee_ids=employees,
            fresh=True,
        )
    except HcpError as exc:
        logger.info("📅 Could not re-check the window (%s)", exc.status)
        return None
    except Exception as exc:  # see open_windows
        logger.warning("📅 Window re-check skipped (%s)", type(exc).__name__)
        return None
    return window in _open(raw, earliest=now)


@contextlib.contextmanager
def window_lock(window: Window) -> Iterator[bool]:
    """Hold the lock on a window's day while it is checked and booked; yield False if not got.

    One lock per day of the account, not per window: windows of different lengths (or pros)
    can overlap, and a booking is rare enough that a day's bookings may wait for one another.
    """
    name = f"{LOCK_PREFIX}{make_client().fingerprint}:{window.start:%Y%m%d}"
    lock = get_redis().lock(name, timeout=LOCK_SECONDS, blocking_timeout=LOCK_WAIT_SECONDS)
    try:
        got = bool(lock.acquire())
    except Exception as exc:  # Redis down: no lock, so the caller books nothing for sure
        logger.warning("📅 Window lock unavailable (%s)", type(exc).__name__)
        got = False
    try:
        yield got
    finally:
        if got:
            with contextlib.suppress(Exception):  # expired: not ours to delete any more
                lock.release()

"""Who does the work: the pro a booked window's job goes to, by the form's assignment rules.

Eligible pros are the service type's employees (every employee HCP lets book online when the
type lists none), less those who do not cover the request's ZIP (the form's territories, or
HCP's service zones), less those with a job overlapping the window. Of those, the one with the
fewest jobs that day gets it; a tie goes to the lowest HCP employee id, so the choice is stable.

HCP calls: GET /employees (cached with the other reference lists), GET /service_zones with the
ZIP (cached per ZIP, only when the form uses service zones), and GET /jobs for the day's jobs
of the eligible pros, needed only when there are several and kept in Redis for
DAY_JOBS_SECONDS like step 6's open windows, so a busy form asks once a minute per day and set
of pros, not once per request. A kept list cannot go stale towards our own work: every job this
app has assigned that day and that the list does not hold (not sent yet, or sent since the list
was read) is counted from the database, matched by HCP job id so none counts twice. Only a job
the office itself booked within that minute can be missed, and it then counts from the next
read. `assignment_lock` keeps two syncs of one day from choosing at the same moment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from .extensions import db, get_redis
from .hcp import payloads
from .hcp.client import HcpError, HcpTransientError, HousecallProClient
from .models import Form, Status, Submission

logger = logging.getLogger(__name__)

LOCK_PREFIX = "hcpform:assignment-lock:"
DAY_JOBS_PREFIX = "hcpform:day-jobs:"
DAY_JOBS_SECONDS = 60  # as long as step 6 keeps HCP's open windows
LOCK_SECONDS = 60  # longer than one choice and its commit; a dead holder frees it by then
LOCK_WAIT_SECONDS = 15.0
ON_THE_WAY = (Status.PENDING, Status.SYNCING, Status.WAITING)
CANCELED = ("user canceled", "pro canceled")
# "Marcus Reyes: 787, 78745" (also →, -> or =); a prefix is 3 to 5 digits.
TERRITORY_LINE = re.compile(r"^(.+?)\s*(?:→|->|:|=)\s*(.*)$")
PREFIX = re.compile(r"^\d{3,5}$")
SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class Choice:
    """The pro chosen for a request (None: it needs assignment by a person) and why."""

    employee_id: str | None
    name: str
    note: str


def employee_name(employee: Mapping[str, Any]) -> str:
    """Return an employee's name as the office knows it (the id when HCP gives no name)."""
    name = f"{employee.get('first_name') or ''} {employee.get('last_name') or ''}".strip()
    return name or str(employee.get("id") or "")


def bookable(employee: Mapping[str, Any]) -> bool:
    """Return True unless HCP says this employee may not be booked online."""
    permissions = employee.get("permissions")
    if not isinstance(permissions, Mapping):
        return True
    return permissions.get("can_be_booked_online") is not False


# ---------------------------------------------------------------- territories as text


def parse_territories(
    text: str | None,
    employees: list[dict[str, Any]],
    known_ids: set[str] | None = None,
    *,
    readable: bool = True,
) -> tuple[dict[str, list[str]], list[str]]:
    """Return ({employee id: ZIP prefixes}, an error per bad line) from the admin's lines.

    A line names an employee (by name as HCP shows it, or by id), then ZIPs or prefixes:
    "Marcus Reyes: 787, 78745". `known_ids` are ids accepted although HCP's list lacks them
    (those already stored, while HCP cannot be read; `readable` False says so in the errors).
    """
    by_name: dict[str, list[str]] = {}
    for e in employees:
        by_name.setdefault(employee_name(e).casefold(), []).append(str(e["id"]))
    ids = {str(e["id"]) for e in employees} | (known_ids or set())
    territories: dict[str, list[str]] = {}
    errors: list[str] = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = TERRITORY_LINE.match(line)
        if not match:
            errors.append(f"Line {number} ({line}): write it like Marcus Reyes: 787, 78745")
            continue
        who, zips = match.group(1).strip(), match.group(2)
        who = re.sub(r"\s*\(.*\)$", "", who)  # "pro_… (no longer in HCP)" as the page shows it
        if who in ids:
            employee_id = who
        elif len(by_name.get(who.casefold(), [])) == 1:
            employee_id = by_name[who.casefold()][0]
        elif by_name.get(who.casefold()):
            errors.append(f"Line {number}: two employees are called {who}; use the id instead")
            continue
        elif readable:
            errors.append(f"Line {number}: {who} is not an employee in Housecall Pro")
            continue
        else:
            errors.append(
                f"Line {number}: Housecall Pro can't be reached to look up {who}; try again later"
            )
            continue
        items = [z for z in SEPARATORS.split(zips) if z]
        bad = [z for z in items if not PREFIX.match(z)]
        if bad:
            errors.append(
                f"Line {number}: use 5-digit ZIPs or 3- or 4-digit prefixes; not: {', '.join(bad)}"
            )
        elif not items:
            errors.append(f"Line {number} ({line}): list at least one ZIP or prefix")
        elif employee_id in territories:
            errors.append(f"Line {number}: {who} is already listed; put the ZIPs on one line")
        else:
            territories[employee_id] = sorted(set(items))
    return territories, errors


def format_territories(
    territories: Mapping[str, list[str]], employees: list[dict[str, Any]], *, readable: bool
) -> str:
    """Return the territories as the lines the admin edits (an id HCP no longer has, marked)."""
    names = {str(e["id"]): employee_name(e) for e in employees}
    lines = []
    for employee_id, prefixes in territories.items():
        if employee_id in names:
            who = names[employee_id]
        else:
            who = employee_id + (" (no longer in HCP)" if readable else "")
        lines.append(f"{who}: {', '.join(prefixes)}")
    return "\n".join(lines)


def covers(prefixes: list[str], zip_code: str) -> bool:
    """Return True when a ZIP starts with one of the prefixes."""
    zip5 = (zip_code or "")[:5]
    return any(zip5.startswith(p) for p in prefixes)


# ---------------------------------------------------------------- the choice


@contextlib.contextmanager
def assignment_lock(fingerprint: str, day: str) -> Iterator[None]:
    """Hold the lock on one day's assignments while a pro is chosen and stored.

    Raises:
        HcpTransientError: when another sync holds it too long (this one is retried later).
    """
    lock = get_redis().lock(
        f"{LOCK_PREFIX}{fingerprint}:{day}",
        timeout=LOCK_SECONDS,
        blocking_timeout=LOCK_WAIT_SECONDS,
    )
    if not lock.acquire():
        raise HcpTransientError("another sync is assigning a pro for the same day")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # expired, maybe taken over: not ours to delete
            lock.release()


def service_employees(form: Form, service_type: str) -> list[str]:
    """Return the HCP employee ids the service type is limited to ([]: anyone)."""
    entry = next((s for s in form.service_types or [] if s.get("name") == service_type), {})
    return sorted({str(e) for e in entry.get("employee_ids") or [] if e})


def choose(
    client: HousecallProClient,
    sub: Submission,
    *,
    time_zone: str,
) -> Choice:
    """Return the pro for a submission's booked window, or why it needs assignment.

    A refusal (4xx, 401 and 403 included: HCP's definition grants GET /service_zones to
    application keys only) leaves the job for a person instead of stopping the sync; if the key
    itself is bad, the record's POST that follows says so.

    Raises:
        HcpError: when HCP cannot answer for now (the sync retries).
    """
    if sub.schedule_kind != "booked" or not (sub.scheduled_start and sub.scheduled_end):
        return Choice(None, "", "Not booked in a window: assign a pro when you schedule it")
    try:
        return _choose(client, sub, time_zone)
    except HcpError as exc:
        if exc.retryable:
            raise
        logger.warning("Assignment skipped for %s: HCP answered %s", sub.reference, exc.status)
        return Choice(None, "", f"Housecall Pro did not answer who can take it ({exc.status})")


def _choose(client: HousecallProClient, sub: Submission, time_zone: str) -> Choice:
    form = sub.form
    employees = {str(e["id"]): e for e in client.employees() if e.get("id")}
    listed = service_employees(form, sub.service_type)
    if listed:
        pool = [i for i in listed if i in employees]
        if not pool:
            return Choice(None, "", "The pros set for this service type are not in HCP any more")
    else:
        pool = sorted(i for i, e in employees.items() if bookable(e))
    zip5 = (sub.zip or "")[:5]
    if form.use_service_zones:
        zone_pros = {
            str(p.get("id"))
            for zone in client.service_zones(zip5)
            for p in zone.get("service_pros") or []
            if isinstance(p, Mapping)
        }
        pool = [i for i in pool if i in zone_pros]
        where = f"No eligible pro is in a service zone with ZIP {zip5}"
    else:
        territories = form.territories or {}
        pool = [i for i in pool if i not in territories or covers(territories[i], zip5)]
        where = f"No eligible pro covers ZIP {zip5}"
    if not pool:
        return Choice(None, "", where)
    assert sub.scheduled_start is not None and sub.scheduled_end is not None
    window = (sub.scheduled_start, sub.scheduled_end)
    if len(pool) == 1:  # no choice to make: no need to count anyone's jobs
        only = pool[0]
        return Choice(only, employee_name(employees[only]), "The only eligible pro")
    loads, busy = _day_loads(client, sub, pool, window, ZoneInfo(time_zone))
    free = [i for i in pool if i not in busy]
    if not free:
        return Choice(None, "", "Every eligible pro has a job at that time")
    best = min(free, key=lambda i: (loads.get(i, 0), i))
    count = loads.get(best, 0)
    return Choice(
        best,
        employee_name(employees[best]),
        f"Least busy of {len(free)} eligible pros that day ({count} job{'s' * (count != 1)})",
    )


def _day_loads(
    client: HousecallProClient,
    sub: Submission,
    pool: list[str],
    window: tuple[datetime, datetime],
    tz: ZoneInfo,
) -> tuple[dict[str, int], set[str]]:
    """Return each pro's jobs that day and the pros with a job overlapping the window."""
    day = window[0].astimezone(tz).date()
    start = datetime.combine(day, time(0, 0), tzinfo=tz)
    end = start + timedelta(days=1) - timedelta(seconds=1)
    loads: dict[str, int] = {}
    busy: set[str] = set()
    wanted = set(pool)

    def count(ids: set[str], begin: datetime | None, finish: datetime | None) -> None:
        for employee_id in ids & wanted:
            loads[employee_id] = loads.get(employee_id, 0) + 1
            if begin and finish and begin < window[1] and window[0] < finish:
                busy.add(employee_id)

    listed: set[str] = set()
    for job_id, staff, begin, finish in _day_jobs(client, pool, start, end):
        listed.add(job_id)
        count(staff, begin, finish)
    # Pros this app chose for jobs HCP's list does not show: not created yet, or created
    # since the list was read.
    rows = db.session.execute(
        select(
            Submission.hcp_employee_id,
            Submission.hcp_job_id,
            Submission.status,
            Submission.scheduled_start,
            Submission.scheduled_end,
        ).where(
            Submission.id != sub.id,
            Submission.hcp_employee_id.in_(pool),
            Submission.status.in_((*ON_THE_WAY, Status.SYNCED)),
            Submission.scheduled_start >= start.astimezone(UTC),
            Submission.scheduled_start <= end.astimezone(UTC),
        )
    ).all()
    for employee_id, sent_job, status, begin, finish in rows:
        # An estimate (no job id) counts until it is sent, as HCP's job list never shows it.
        if (sent_job is None and status in ON_THE_WAY) or (sent_job and sent_job not in listed):
            count({str(employee_id)}, begin, finish)
    return loads, busy


def _day_jobs(
    client: HousecallProClient, pool: list[str], start: datetime, end: datetime
) -> list[tuple[str, set[str], datetime | None, datetime | None]]:
    """Return (job id, its pros, start, end) of the pros' jobs that day, not canceled.

    Read from HCP at most once per DAY_JOBS_SECONDS for one day and set of pros (see above).
    """
    text = json.dumps([start.isoformat(), sorted(pool)])
    key = f"{DAY_JOBS_PREFIX}{client.fingerprint}:{hashlib.sha256(text.encode()).hexdigest()[:24]}"
    redis = get_redis()
    raw: Any = None
    try:
        raw = redis.get(key)
    except Exception as exc:  # the cache is a saving, not a need
        logger.warning("Day jobs cache read failed: %s", type(exc).__name__)
    if raw:
        kept = json.loads(raw)
    else:
        kept = [
            [
                str(job.get("id") or ""),
                sorted({str(e.get("id")) for e in job.get("assigned_employees") or [] if e}),
                (job.get("schedule") or {}).get("scheduled_start"),
                (job.get("schedule") or {}).get("scheduled_end"),
            ]
            for job in client.scheduled_jobs(
                start_min=start.isoformat(), start_max=end.isoformat(), employee_ids=pool
            )
            if job.get("work_status") not in CANCELED
        ]
        try:
            redis.set(key, json.dumps(kept), ex=DAY_JOBS_SECONDS)
        except Exception as exc:  # see above
            logger.warning("Day jobs cache write failed: %s", type(exc).__name__)
    return [
        (job_id, set(staff), payloads.parse_time(a), payloads.parse_time(b))
        for job_id, staff, a, b in kept
    ]

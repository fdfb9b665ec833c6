"""A local stand-in for Housecall Pro's API (same paths, shapes, errors) with fault injection."""

from __future__ import annotations

import io
import json
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from flask import Flask, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..formdefs import TEMPLATE_SERVICE_TYPES
from . import spec

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_PORT = 8025
CONTROL_PREFIX = "/_sandbox"
REQUEST_LOG_SIZE = 20_000
MAX_PAGE_SIZE = 200  # what Ampersand and BeelineRoutes use against live HCP
DEFAULT_PAGE_SIZE = 10
DEFAULT_BOOKING_WINDOW_MINUTES = 30  # the definition: "Neither provided: Defaults to 30 minutes"

# Seeded reference data gets ids derived from its name, so that ids survive a restart or a
# reseed and a client's cached job-type/employee ids stay valid.
_SEED_NAMESPACE = uuid.UUID("8f3c1d2e-5b7a-4c69-9e21-0d4f6a8b1c35")
COMPANY_ID = str(uuid.uuid5(_SEED_NAMESPACE, "company"))

# The job types are the form template's service types, so a fresh setup maps by name.
JOB_TYPE_NAMES = TEMPLATE_SERVICE_TYPES
LEAD_SOURCE_NAMES = ("Website", "Google", "Facebook", "Referral", "hcpform")

# Business hours for booking windows: Mon-Sat 8:00-17:00, closed on Sunday. The schedule
# windows (GET /company/schedule_availability) are 3-hour arrival windows inside them.
BUSINESS_HOURS: dict[int, tuple[int, int]] = {d: (8, 17) for d in range(6)}
SCHEDULE_WINDOW_HOURS = 3
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# POSTs that create a record: the ones commit_then_fail_rate applies to.
CREATE_OPERATIONS = frozenset(
    {
        ("POST", "/customers"),
        ("POST", "/customers/{customer_id}/addresses"),
        ("POST", "/jobs"),
        ("POST", "/leads"),
        ("POST", "/lead_sources"),
        ("POST", "/job_fields/job_types"),
    }
)

# Fault kinds. A three-digit status ("500", "503", "429", "401", "422", ...) answers with that
# status before doing anything.
KIND_TIMEOUT = "timeout"  # do the work, then sleep before answering (client reads time out)
KIND_TIMEOUT_BEFORE = "timeout_before_commit"  # sleep first, then do the work (late commit)
KIND_COMMIT_500 = "commit_then_500"  # do the work, then answer 500
KIND_COMMIT_DROP = "commit_then_drop"  # do the work, then drop the connection unanswered
KIND_DROP = "drop"  # drop the connection without doing anything
NAMED_KINDS = frozenset(
    {KIND_TIMEOUT, KIND_TIMEOUT_BEFORE, KIND_COMMIT_500, KIND_COMMIT_DROP, KIND_DROP}
)

HTML_404 = """<!DOCTYPE html>
<html>
<head><title>The page you were looking for doesn't exist (404)</title></head>
<body>
<div class="dialog">
<h1>The page you were looking for doesn't exist.</h1>
<p>You may have mistyped the address or the page may have moved.</p>
</div>
</body>
</html>
"""


# --------------------------------------------------------------------------- small helpers


def new_id(prefix: str) -> str:
    """Return an HCP-style id: prefix, underscore, 32 lowercase hex digits."""
    return f"{prefix}_{uuid.uuid4().hex}"


def seed_id(prefix: str, name: str) -> str:
    """Return a stable id for seeded reference data."""
    return f"{prefix}_{uuid.uuid5(_SEED_NAMESPACE, f'{prefix}:{name}').hex}"


def iso(moment: datetime) -> str:
    """Format a timestamp the way HCP does: ISO-8601, UTC, second precision, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def digits(value: Any) -> str:
    """Return only the digits of a phone-like value, without a leading US country code."""
    out = re.sub(r"\D", "", str(value or ""))
    return out[1:] if len(out) == 11 and out.startswith("1") else out


def parse_datetime(value: str, tz: ZoneInfo) -> datetime:
    """Parse an ISO-8601 date-time; a naive one is read in the company's time zone."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _int_arg(value: str | None, default: int) -> int:
    """Read a numeric query value leniently (the spec types page as number or string)."""
    try:
        return int(float(value)) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    """HCP's ErrorResponse shape."""
    return status, {"error": {"message": message}}


def _field_errors(status: int, errors: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
    """HCP's 422 validation shape: {"errors": {"field": ["message", ...]}}."""
    return status, {"errors": dict(errors)}


# --------------------------------------------------------------------------- faults


@dataclass
class FaultRule:
    """A scripted fault: the next `times` requests matching method and path get `kind`."""

    kind: str
    method: str | None = None
    path: str | None = None  # a template (/customers/{customer_id}) or a literal path
    times: int = 1
    retry_after: str | None = None  # for 429: seconds or an HTTP date; None = the default
    seconds: float | None = None  # for timeouts: overrides timeout_seconds

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from control-endpoint JSON, raising ValueError on nonsense."""
        if not isinstance(data, Mapping):
            raise ValueError("a rule must be an object")
        unknown = set(data) - {"kind", "method", "path", "times", "retry_after", "seconds"}
        if unknown:
            raise ValueError(f"unknown rule fields: {sorted(unknown)}")
        kind = str(data.get("kind", ""))
        if kind not in NAMED_KINDS and not re.fullmatch(r"[45]\d\d", kind):
            raise ValueError(f"unknown fault kind {kind!r}")
        times = int(data.get("times", 1))
        if times < 1:
            raise ValueError("times must be at least 1")
        retry_after = data.get("retry_after")
        seconds = data.get("seconds")
        method = data.get("method")
        path = data.get("path")
        return cls(
            kind=kind,
            method=str(method).upper() if method not in (None, "", "*") else None,
            path=(str(path).rstrip("/") or "/") if path not in (None, "", "*") else None,
            times=times,
            retry_after=str(retry_after) if retry_after is not None else None,
            seconds=float(seconds) if seconds is not None else None,
        )

    def matches(self, method: str, path: str, template: str | None) -> bool:
        """Return True when this rule applies to the request."""
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path in (path.rstrip("/") or "/", template)

    def to_json(self) -> dict[str, Any]:
        """Return the rule as JSON."""
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "times": self.times,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
        }


RATE_FIELDS = ("error_rate", "rate_limit_rate", "timeout_rate", "commit_then_fail_rate")


@dataclass
class FaultConfig:
    """Random fault rates plus the queue of scripted rules."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: str | None = "1"
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    commit_then_fail_rate: float = 0.0
    rules: list[FaultRule] = field(default_factory=list)

    def update(self, data: Mapping[str, Any]) -> None:
        """Apply control-endpoint JSON: set the given settings, append the given rules."""
        known = {
            "latency_ms",
            "error_rate",
            "rate_limit_rate",
            "retry_after",
            "timeout_rate",
            "timeout_seconds",
            "commit_then_fail_rate",
            "rules",
            "seed",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        new = {k: data[k] for k in known - {"rules", "seed"} if k in data}
        for key in (*RATE_FIELDS, "latency_ms", "timeout_seconds"):
            if key in new:
                new[key] = float(new[key])
                if new[key] < 0 or not math.isfinite(new[key]):
                    raise ValueError(f"{key} must be a non-negative number")
        for key in RATE_FIELDS:
            if new.get(key, 0) > 1:
                raise ValueError(f"{key} must be between 0 and 1")
        if sum(new.get(k, getattr(self, k)) for k in RATE_FIELDS) > 1:
            raise ValueError("the four rates share one draw: their sum must not exceed 1")
        if "retry_after" in new and new["retry_after"] is not None:
            new["retry_after"] = str(new["retry_after"])
        rules = [FaultRule.from_json(r) for r in data.get("rules") or []]
        for key, value in new.items():
            setattr(self, key, value)
        self.rules.extend(rules)

    def to_json(self) -> dict[str, Any]:
        """Return the configuration as JSON."""
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "rate_limit_rate": self.rate_limit_rate,
            "retry_after": self.retry_after,
            "timeout_rate": self.timeout_rate,
            "timeout_seconds": self.timeout_seconds,
            "commit_then_fail_rate": self.commit_then_fail_rate,
            "rules": [r.to_json() for r in self.rules],
        }


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request."""

    kind: str
    retry_after: str | None
    seconds: float
    scripted: bool


# --------------------------------------------------------------------------- seed data


def _permissions(*, tech: bool, bookable: bool, admin: bool) -> dict[str, bool]:
    office = not tech
    return {
        "can_add_and_edit_job": True,
        "can_be_booked_online": bookable,
        "can_call_and_text_with_customers": True,
        "can_chat_with_customers": True,
        "can_delete_and_cancel_job": office or admin,
        "can_edit_message_on_invoice": office,
        "can_see_street_view_data": True,
        "can_share_job": True,
        "can_take_payment_see_prices": True,
        "can_see_customers": True,
        "can_see_full_schedule": office or admin,
        "can_see_future_jobs": True,
        "can_see_marketing_campaigns": office,
        "can_see_reporting": admin,
        "can_edit_settings": admin,
        "is_point_of_contact": office,
        "is_admin": admin,
    }


_EMPLOYEES = (
    # first, last, role, bookable online, admin, color
    ("Marcus", "Reyes", "field tech", True, False, "4A90E2"),
    ("Dana", "Whitfield", "field tech", True, False, "EF9159"),
    ("Luis", "Ortega", "field tech", False, False, "7ED321"),
    ("Tom", "Becker", "field tech", True, False, "BD10E0"),
    ("Priya", "Shah", "office staff", False, True, "F5A623"),
)


def _seed_time(offset_days: int) -> str:
    return iso(datetime(2024, 1, 15, 15, 0, tzinfo=UTC) + timedelta(days=offset_days))


def seed_company(time_zone: str) -> dict[str, Any]:
    """Return the seeded company (GET /company)."""
    return {
        "id": COMPANY_ID,
        "name": "Riverbend Plumbing & Air",
        "support_email": "office@riverbend-plumbing.example",
        "phone_number": "5125550142",
        "logo_url": "https://pro.housecallpro.com/assets/add_image_thumb_web_round.png",
        "address": {
            "street": "2200 S Lamar Blvd",
            "street_line_2": "Suite 4",
            "city": "Austin",
            "state": "TX",
            "zip": "78704",
            "country": "US",
        },
        "website": "https://riverbend-plumbing.example",
        "default_arrival_window": "120",  # minutes; the definition types it as a string
        "time_zone": time_zone,
        "service_areas_data": {"zip_codes": ["78701", "78702", "78703", "78704", "78745"]},
        "locations": [],
    }


def seed_employees() -> list[dict[str, Any]]:
    """Return the seeded employees (GET /employees)."""
    out = []
    for i, (first, last, role, bookable, admin, color) in enumerate(_EMPLOYEES):
        out.append(
            {
                "id": seed_id("pro", f"{first} {last}"),
                "first_name": first,
                "last_name": last,
                "email": f"{first.lower()}@riverbend-plumbing.example",
                "mobile_number": f"51255501{60 + i:02d}",
                "color_hex": color,
                "avatar_url": "https://pro.housecallpro.com/assets/add_image_thumb_web_round.png",
                "role": role,
                "created_at": _seed_time(i),
                "tags": [],
                "permissions": _permissions(
                    tech=role == "field tech", bookable=bookable, admin=admin
                ),
                "company_name": "Riverbend Plumbing & Air",
                "company_id": COMPANY_ID,
            }
        )
    return out


# --------------------------------------------------------------------------- state


@dataclass
class _Meta:
    """What the sandbox keeps about a record besides its public fields."""

    seq: int
    owner: str | None = None  # an address's customer id
    note_id: str | None = None  # id for a customer's notes when embedded in a job


class SandboxState:
    """Everything the sandbox knows, in memory, behind one lock."""

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        seed: bool = True,
        time_zone: str = "America/Chicago",
        faults: Mapping[str, Any] | None = None,
        rng_seed: int | None = None,
        seed_customers: list[dict[str, Any]] | None = None,
        require_known_lead_source: bool = True,
        booking_window_minutes: int = DEFAULT_BOOKING_WINDOW_MINUTES,
    ) -> None:
        try:
            self.tz = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {time_zone!r}") from exc
        self.lock = threading.Lock()
        self.time_zone = time_zone
        self.seed = seed
        self.require_known_lead_source = require_known_lead_source
        self.booking_window_minutes = booking_window_minutes
        self._initial_keys = tuple(api_keys)
        self._initial_faults = dict(faults or {})
        self._seed_customers = [dict(c) for c in seed_customers or []]
        self._rng_seed = rng_seed
        self.rng = random.Random(rng_seed)
        self.api_keys: set[str] = set(self._initial_keys)
        self.faults = FaultConfig()
        self.faults.update(self._initial_faults)
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._request_seq = 0
        self._reset_data(reseed=True)

    # ---- lifecycle

    def _reset_data(self, *, reseed: bool) -> None:
        """Clear customers, addresses, jobs, leads and the request log (lock held or init)."""
        self.customers: dict[str, dict[str, Any]] = {}
        self.addresses: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, _Meta] = {}
        self.customer_addresses: dict[str, list[str]] = {}  # customer id -> address ids, in order
        self._seq = 0
        self.invoice_number = 0
        self.lead_number = 0
        self.requests.clear()
        if reseed:
            self.company = seed_company(self.time_zone) if self.seed else _bare_company(self)
            self.employees = seed_employees() if self.seed else []
            self.job_types = (
                [{"id": seed_id("jt", n), "name": n} for n in JOB_TYPE_NAMES] if self.seed else []
            )
            self.lead_sources = (
                [
                    {"id": seed_id("ls", n), "name": n, "editable": n == "hcpform"}
                    for n in LEAD_SOURCE_NAMES
                ]
                if self.seed
                else []
            )
        for customer in self._seed_customers:
            status, body = self._create_customer(customer)
            if status != 201:
                raise ValueError(f"bad seed customer {customer!r}: {body}")

    def reset(self, *, reseed: bool = True) -> None:
        """Clear data and logs, restore the initial keys, faults and RNG, and (by default) reseed.

        Seeded ids are derived from names, so reseeding does not change them; reseed=False keeps
        reference data created through the API (job types, lead sources).
        """
        with self.lock:
            self._reset_data(reseed=reseed)
            self.api_keys = set(self._initial_keys)
            self.faults = FaultConfig()
            self.faults.update(self._initial_faults)
            self.rng.seed(self._rng_seed)  # the same fault sequence after every reset

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ---- auth and faults

    def key_is_valid(self, header: str | None) -> bool:
        """Check an Authorization header: `Token <key>` (documented) or `Bearer <key>`."""
        if not header:
            return False
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        with self.lock:
            return key.strip() in self.api_keys

    def pick_fault(self, method: str, path: str, template: str | None) -> Fault | None:
        """Choose this request's fault: the first matching scripted rule, else a random one."""
        with self.lock:
            cfg = self.faults
            for rule in cfg.rules:
                if rule.matches(method, path, template):
                    rule.times -= 1
                    if rule.times <= 0:
                        cfg.rules.remove(rule)
                    return Fault(
                        kind=rule.kind,
                        retry_after=rule.retry_after if rule.retry_after else cfg.retry_after,
                        seconds=rule.seconds if rule.seconds is not None else cfg.timeout_seconds,
                        scripted=True,
                    )
            # One draw split into consecutive bands, so each rate is the share it says.
            draw = self.rng.random()
            kind = None
            bands = (
                (cfg.error_rate, lambda: self.rng.choice(("500", "502", "503"))),
                (cfg.rate_limit_rate, lambda: "429"),
                (cfg.timeout_rate, lambda: KIND_TIMEOUT),
                (
                    cfg.commit_then_fail_rate,
                    lambda: self.rng.choice((KIND_COMMIT_500, KIND_COMMIT_DROP)),
                ),
            )
            edge = 0.0
            for i, (rate, make) in enumerate(bands):
                if draw < edge + rate:
                    if i == 3 and (method, template) not in CREATE_OPERATIONS:
                        break  # commit-then-fail only means something for creates
                    kind = make()
                    break
                edge += rate
            if kind is None:
                return None
            return Fault(kind, cfg.retry_after, cfg.timeout_seconds, scripted=False)

    def log_request(self, entry: dict[str, Any]) -> None:
        """Append a request to the capped log (the entry's status is filled in later)."""
        with self.lock:
            self._request_seq += 1
            entry["seq"] = self._request_seq
            self.requests.append(entry)

    # ---- rendering (lock held)

    def _address_json(self, address_id: str) -> dict[str, Any]:
        return dict(self.addresses[address_id])

    def _customer_json(self, customer_id: str, expand: Iterable[str] = ()) -> dict[str, Any]:
        out = dict(self.customers[customer_id])
        out["addresses"] = [self._address_json(a) for a in self.customer_addresses[customer_id]]
        if "attachments" in expand:
            out["attachments"] = []
        if "do_not_service" in expand:
            out["do_not_service"] = False
        return out

    def _customer_embed(self, customer_id: str) -> dict[str, Any]:
        """The customer as embedded in a job (notes is a list there, or null)."""
        customer = dict(self.customers[customer_id])
        note = customer.get("notes")
        customer["notes"] = (
            [{"id": self.meta[customer_id].note_id, "content": note}] if note else None
        )
        return customer

    def _employee(self, employee_id: str) -> dict[str, Any] | None:
        return next((dict(e) for e in self.employees if e["id"] == employee_id), None)

    def _job_json(self, job_id: str, expand: Iterable[str] = ()) -> dict[str, Any]:
        job = self.jobs[job_id]
        job_type = next((dict(t) for t in self.job_types if t["id"] == job["job_type_id"]), None)
        schedule = dict(job["schedule"])
        schedule["appointments"] = (
            [dict(a) for a in job["appointments"]] if "appointments" in expand else []
        )
        out = {
            "id": job["id"],
            "invoice_number": job["invoice_number"],
            "description": job["description"],
            "customer": self._customer_embed(job["customer_id"]),
            "address": self._address_json(job["address_id"]),
            "notes": [dict(n) for n in job["notes"]],
            "work_status": job["work_status"],
            "work_timestamps": {"on_my_way_at": None, "started_at": None, "completed_at": None},
            "schedule": schedule,
            "total_amount": job["total_amount"],
            "outstanding_balance": job["total_amount"],
            "subtotal": job["total_amount"],
            "assigned_employees": [
                e for e in (self._employee(i) for i in job["assigned_employee_ids"]) if e
            ],
            "tags": list(job["tags"]),
            "original_estimate_id": None,
            "original_estimate_uuids": [],
            "lead_source": job["lead_source"],
            "job_fields": {"job_type": job_type, "business_unit": None},
            "locked_at": None,
            "created_at": job["created_at"],
            "updated_at": job["updated_at"],
            "canceled_at": None,
            "deleted_at": None,
            "company_name": self.company.get("name", ""),
            "company_id": COMPANY_ID,
            "recurrence_number": None,
            "recurrence_rule": None,
        }
        if "attachments" in expand:
            out["attachments"] = []
        return out

    def _lead_json(self, lead_id: str) -> dict[str, Any]:
        lead = self.leads[lead_id]
        customer = dict(self.customers[lead["customer_id"]])
        out = {
            "id": lead["id"],
            "number": lead["number"],
            "customer": customer,
            "lead_source": lead["lead_source"],
            "tags": list(lead["tags"]),
            "assigned_employee": self._employee(lead["assigned_employee_id"] or ""),
            "status": "open",
            "pipeline_status": None,
            "company_name": self.company.get("name", ""),
            "company_id": COMPANY_ID,
            "lost_at": None,
            "total_amount": lead["total_amount"],
            "created_at": lead["created_at"],
            "updated_at": lead["updated_at"],
        }
        if lead["address_id"]:
            address = self._address_json(lead["address_id"])
            out["address"] = {
                k: address[k] for k in ("id", "street", "street_line_2", "city", "state", "zip")
            }
        return out

    # ---- checks shared by creates (lock held)

    def _lead_source_error(self, name: Any) -> tuple[int, dict[str, Any]] | None:
        # JohnsonBros saw HCP reject POST /leads with "Lead source not found" for unknown names.
        if not self.require_known_lead_source or name in (None, ""):
            return None
        known = {s["name"].lower() for s in self.lead_sources}
        if str(name).lower() not in known:
            return _error(422, "Lead source not found")
        return None

    # ---- customers

    def create_customer(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /customers (201); inline addresses become service addresses."""
        with self.lock:
            if err := self._lead_source_error(body.get("lead_source")):
                return err
            return self._create_customer(body)

    def _create_customer(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Create a customer (lock held, or during construction)."""
        contact = [f for f in spec.CUSTOMER_CONTACT_FIELDS if isinstance(body.get(f), str)]
        if not any(body[f].strip() for f in contact):
            names = ", ".join(spec.CUSTOMER_CONTACT_FIELDS)
            return _field_errors(422, {"base": [f"one of {names} is required"]})
        now = iso(utcnow())
        customer_id = new_id("cus")
        self.customers[customer_id] = {
            "id": customer_id,
            "first_name": body.get("first_name"),
            "last_name": body.get("last_name"),
            "email": body.get("email"),
            "mobile_number": body.get("mobile_number"),
            "home_number": body.get("home_number"),
            "work_number": body.get("work_number"),
            "company": body.get("company"),
            "notifications_enabled": bool(body.get("notifications_enabled", False)),
            "lead_source": body.get("lead_source"),
            "notes": body.get("notes") or None,
            "created_at": now,
            "updated_at": now,
            "company_name": self.company.get("name", ""),
            "company_id": COMPANY_ID,
            "tags": list(body.get("tags") or []),
        }
        self.meta[customer_id] = _Meta(seq=self._next_seq(), note_id=new_id("nte"))
        self.customer_addresses[customer_id] = []
        for address in body.get("addresses") or []:
            self._add_address(customer_id, address)
        return 201, self._customer_json(customer_id)

    def update_customer(
        self, customer_id: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """PUT /customers/{customer_id}."""
        with self.lock:
            customer = self.customers.get(customer_id)
            if customer is None:
                return _error(404, "customer not found")
            if "lead_source" in body and (err := self._lead_source_error(body["lead_source"])):
                return err
            for key in (
                "first_name",
                "last_name",
                "email",
                "company",
                "notifications_enabled",
                "mobile_number",
                "home_number",
                "work_number",
                "tags",
                "lead_source",
                "notes",
            ):
                if key in body:
                    customer[key] = body[key]
            customer["updated_at"] = iso(utcnow())
            return 200, self._customer_json(customer_id)

    def get_customer(
        self, customer_id: str, expand: Iterable[str] = ()
    ) -> tuple[int, dict[str, Any]]:
        """GET /customers/{customer_id}."""
        with self.lock:
            if customer_id not in self.customers:
                return _error(404, "customer not found")
            return 200, self._customer_json(customer_id, expand)

    def _customer_matches(self, customer_id: str, q: str) -> bool:
        customer = self.customers[customer_id]
        parts = [
            customer.get("first_name"),
            customer.get("last_name"),
            customer.get("email"),
            customer.get("company"),
        ]
        for address_id in self.customer_addresses[customer_id]:
            a = self.addresses[address_id]
            parts += [a.get(k) for k in ("street", "street_line_2", "city", "state", "zip")]
        haystack = " ".join(str(p) for p in parts if p).lower()
        tokens = q.lower().split()
        if tokens and all(t in haystack for t in tokens):
            return True
        # Phone-like queries match on digits only, whatever the formatting on either side.
        if re.fullmatch(r"[\d\s()+.\-]+", q) and len(digits(q)) >= 3:
            wanted = digits(q)
            numbers = ("mobile_number", "home_number", "work_number")
            return any(wanted in digits(customer.get(n)) for n in numbers if customer.get(n))
        return False

    def list_customers(self, args: MultiDict[str, str]) -> tuple[int, dict[str, Any]]:
        """GET /customers (q search, sorting, pagination)."""
        with self.lock:
            q = (args.get("q") or "").strip()
            ids = [c for c in self.customers if not q or self._customer_matches(c, q)]
            ids = self._sorted(ids, self.customers, args.get("sort_by"), args.get("sort_direction"))
            page_ids, envelope = paginate(ids, args)
            expand = args.getlist("expand[]")
            envelope["customers"] = [self._customer_json(c, expand) for c in page_ids]
            return 200, envelope

    def _sorted(
        self,
        ids: list[str],
        records: Mapping[str, Mapping[str, Any]],
        sort_by: str | None,
        direction: str | None,
    ) -> list[str]:
        key = sort_by or "created_at"

        def sort_key(record_id: str) -> tuple[Any, ...]:
            value = records[record_id].get(key)
            # Ties (same-second timestamps) fall back to creation order.
            return (
                value is not None,
                str(value) if value is not None else "",
                self.meta[record_id].seq,
            )

        return sorted(ids, key=sort_key, reverse=(direction or "desc") != "asc")

    # ---- addresses

    def _add_address(self, customer_id: str, body: Mapping[str, Any]) -> str:
        address_id = new_id("adr")
        self.addresses[address_id] = {
            "id": address_id,
            "type": "service",
            "street": body.get("street"),
            "street_line_2": body.get("street_line_2"),
            "city": body.get("city"),
            "state": body.get("state"),
            "zip": body.get("zip"),
            "country": body.get("country"),
        }
        for key in ("latitude", "longitude"):
            if body.get(key) is not None:
                self.addresses[address_id][key] = body[key]
        self.meta[address_id] = _Meta(seq=self._next_seq(), owner=customer_id)
        self.customer_addresses[customer_id].append(address_id)
        return address_id

    def create_address(
        self, customer_id: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST /customers/{customer_id}/addresses (200, as documented)."""
        with self.lock:
            if customer_id not in self.customers:
                return _error(404, "customer not found")
            address_id = self._add_address(customer_id, body)
            return 200, self._address_json(address_id)

    def list_addresses(
        self, customer_id: str, args: MultiDict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """GET /customers/{customer_id}/addresses."""
        with self.lock:
            if customer_id not in self.customers:
                return _error(404, "customer not found")
            ids = list(self.customer_addresses[customer_id])
            # Addresses carry no timestamps: creation order stands in for created/updated_at.
            ids.sort(
                key=lambda a: self.meta[a].seq, reverse=args.get("sort_direction", "desc") != "asc"
            )
            page_ids, envelope = paginate(ids, args)
            envelope["addresses"] = [self._address_json(a) for a in page_ids]
            return 200, envelope

    def get_address(self, customer_id: str, address_id: str) -> tuple[int, dict[str, Any]]:
        """GET /customers/{customer_id}/addresses/{address_id}."""
        with self.lock:
            if customer_id not in self.customers:
                return _error(404, "customer not found")
            meta = self.meta.get(address_id)
            if address_id not in self.addresses or meta is None or meta.owner != customer_id:
                return _error(404, "address not found")
            return 200, self._address_json(address_id)

    # ---- jobs

    def _schedule(
        self, raw: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
        """Turn JobCreate.schedule into the stored schedule, in UTC."""
        empty = {"scheduled_start": None, "scheduled_end": None, "arrival_window": 0}
        if not raw:
            return empty, {}
        errors: dict[str, list[str]] = {}
        start = end = None
        try:
            if raw.get("anytime"):
                # An "anytime" job spans the business day of anytime_start_date.
                day = date.fromisoformat(str(raw.get("anytime_start_date")))
                open_h, close_h = BUSINESS_HOURS.get(day.weekday(), (8, 17))
                start = datetime(day.year, day.month, day.day, open_h, tzinfo=self.tz)
                end = datetime(day.year, day.month, day.day, close_h, tzinfo=self.tz)
            else:
                if raw.get("scheduled_start"):
                    start = parse_datetime(raw["scheduled_start"], self.tz)
                if raw.get("scheduled_end"):
                    end = parse_datetime(raw["scheduled_end"], self.tz)
        except ValueError as exc:
            errors["schedule"] = [f"invalid date: {exc}"]
            return None, errors
        if end is not None and start is None:
            errors["schedule.scheduled_start"] = ["is required with scheduled_end"]
            return None, errors
        if start is None:
            return dict(empty, arrival_window=int(raw.get("arrival_window") or 0)), {}
        if end is None:
            end = start + timedelta(hours=1)  # sandbox choice: a one-hour visit
        if end <= start:
            errors["schedule.scheduled_end"] = ["must be after scheduled_start"]
            return None, errors
        return {
            "scheduled_start": iso(start),
            "scheduled_end": iso(end),
            "arrival_window": int(raw.get("arrival_window") or 0),
        }, {}

    def create_job(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /jobs (201); the customer and address must exist and belong together."""
        with self.lock:
            customer_id = body.get("customer_id")
            address_id = body.get("address_id")
            if customer_id not in self.customers:
                return _error(404, "customer not found")
            if address_id not in self.addresses:
                return _error(404, "address not found")
            if self.meta[address_id].owner != customer_id:
                return _error(422, "address does not belong to the customer")
            fields = body.get("job_fields") or {}
            job_type_id = fields.get("job_type_id")
            if job_type_id and not any(t["id"] == job_type_id for t in self.job_types):
                return _error(422, "job type not found")
            if fields.get("business_unit_id"):
                return _error(422, "business unit not found")  # the sandbox has none
            employee_ids = list(body.get("assigned_employee_ids") or [])
            missing = [e for e in employee_ids if self._employee(e) is None]
            if missing:
                return _error(422, f"employee not found: {', '.join(missing)}")
            if err := self._lead_source_error(body.get("lead_source")):
                return err
            schedule, errors = self._schedule(body.get("schedule"))
            if errors or schedule is None:
                return _field_errors(422, errors)
            if body.get("invoice_number") is not None:
                number = int(body["invoice_number"])
                if any(j["invoice_number"] == str(number) for j in self.jobs.values()):
                    return _field_errors(422, {"invoice_number": ["has already been taken"]})
                self.invoice_number = max(self.invoice_number, number)
            else:
                self.invoice_number += 1
                number = self.invoice_number
            now = iso(utcnow())
            job_id = new_id("job")
            total = sum(
                round(float(i.get("unit_price") or 0) * float(i.get("quantity", 1)))
                for i in body.get("line_items") or []
            )
            appointments = []
            if schedule["scheduled_start"]:
                appointments.append(
                    {
                        "id": new_id("appt"),
                        "start_date": schedule["scheduled_start"][:10],
                        "start_time": schedule["scheduled_start"],
                        "end_time": schedule["scheduled_end"],
                        "anytime": bool((body.get("schedule") or {}).get("anytime")),
                        "arrival_window_minutes": schedule["arrival_window"],
                        "dispatched_employees_ids": employee_ids,
                    }
                )
            notes = body.get("notes")
            self.jobs[job_id] = {
                "id": job_id,
                "invoice_number": str(number),
                "description": "",
                "customer_id": customer_id,
                "address_id": address_id,
                "notes": [{"id": new_id("nte"), "content": notes}] if notes else [],
                "work_status": "scheduled" if schedule["scheduled_start"] else "needs scheduling",
                "schedule": schedule,
                "appointments": appointments,
                "total_amount": total,
                "line_items": [dict(i) for i in body.get("line_items") or []],
                "assigned_employee_ids": employee_ids,
                "tags": list(body.get("tags") or []),
                "lead_source": body.get("lead_source"),
                "job_type_id": job_type_id,
                "created_at": now,
                "updated_at": now,
            }
            self.meta[job_id] = _Meta(seq=self._next_seq())
            return 201, self._job_json(job_id)

    def get_job(self, job_id: str, expand: Iterable[str] = ()) -> tuple[int, dict[str, Any]]:
        """GET /jobs/{id}."""
        with self.lock:
            if job_id not in self.jobs:
                return _error(404, "job not found")
            return 200, self._job_json(job_id, expand)

    def list_jobs(self, args: MultiDict[str, str]) -> tuple[int, dict[str, Any]]:
        """GET /jobs with customer_id, work_status[], scheduled_start_min/max and sorting."""
        # The filter spells statuses differently from Job.work_status.
        status_filter = {
            "unscheduled": {"needs scheduling"},
            "scheduled": {"scheduled"},
            "in_progress": {"in progress"},
            "completed": {"complete rated", "complete unrated"},
            "canceled": {"user canceled", "pro canceled"},
        }
        with self.lock:
            ids = list(self.jobs)
            if args.get("customer_id"):
                ids = [j for j in ids if self.jobs[j]["customer_id"] == args["customer_id"]]
            wanted = set().union(
                *(status_filter.get(s, set()) for s in args.getlist("work_status[]"))
            )
            if args.getlist("work_status[]"):
                ids = [j for j in ids if self.jobs[j]["work_status"] in wanted]
            for name, field_name, test in (
                ("scheduled_start_min", "scheduled_start", lambda v, b: v >= b),
                ("scheduled_start_max", "scheduled_start", lambda v, b: v <= b),
                ("scheduled_end_min", "scheduled_end", lambda v, b: v >= b),
                ("scheduled_end_max", "scheduled_end", lambda v, b: v <= b),
            ):
                if args.get(name):
                    try:
                        bound = parse_datetime(args[name], self.tz)
                    except ValueError:
                        return _field_errors(422, {name: ["is not a valid date"]})
                    ids = [
                        j
                        for j in ids
                        if self.jobs[j]["schedule"][field_name]
                        and test(
                            parse_datetime(self.jobs[j]["schedule"][field_name], self.tz), bound
                        )
                    ]
            if args.getlist("employee_ids[]"):
                staff = set(args.getlist("employee_ids[]"))
                ids = [j for j in ids if staff & set(self.jobs[j]["assigned_employee_ids"])]
            sort_by = args.get("sort_by") or "created_at"
            if sort_by == "invoice_number":
                reverse = (args.get("sort_direction") or "desc") != "asc"
                ids.sort(
                    key=lambda j: (int(self.jobs[j]["invoice_number"]), self.meta[j].seq),
                    reverse=reverse,
                )
            else:
                ids = self._sorted(ids, self.jobs, sort_by, args.get("sort_direction"))
            page_ids, envelope = paginate(ids, args)
            expand = args.getlist("expand[]")
            envelope["jobs"] = [self._job_json(j, expand) for j in page_ids]
            return 200, envelope

    # ---- reference data

    def list_job_types(self, args: MultiDict[str, str]) -> tuple[int, dict[str, Any]]:
        """GET /job_fields/job_types (the definition takes only `name`: one page holds all)."""
        with self.lock:
            name = (args.get("name") or "").lower()
            items = [dict(t) for t in self.job_types if name in t["name"].lower()]
        envelope = {
            "page": 1,
            "page_size": max(DEFAULT_PAGE_SIZE, len(items)),
            "total_pages": 1 if items else 0,
            "total_items": len(items),
            "job_types": items,
        }
        return 200, envelope

    def create_job_type(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /job_fields/job_types (200, as documented)."""
        with self.lock:
            name = str(body.get("name") or "").strip()
            if not name:
                return _field_errors(422, {"name": ["can't be blank"]})
            if any(t["name"].lower() == name.lower() for t in self.job_types):
                return _field_errors(422, {"name": ["has already been taken"]})
            job_type = {"id": new_id("jt"), "name": name}
            self.job_types.append(job_type)
            return 200, dict(job_type)

    def list_employees(self, args: MultiDict[str, str]) -> tuple[int, dict[str, Any]]:
        """GET /employees."""
        with self.lock:
            key = args.get("sort_by") or "created_at"
            items = sorted(
                self.employees,
                key=lambda e: str(e.get(key) or ""),
                reverse=(args.get("sort_direction") or "desc") != "asc",
            )
            page, envelope = paginate(items, args)
            envelope["employees"] = [dict(e) for e in page]
            return 200, envelope

    def list_lead_sources(self, args: MultiDict[str, str]) -> tuple[int, dict[str, Any]]:
        """GET /lead_sources."""
        with self.lock:
            q = (args.get("q") or "").lower()
            items = [dict(s) for s in self.lead_sources if q in s["name"].lower()]
        if (args.get("sort_direction") or "desc") != "asc":
            items.reverse()
        page, envelope = paginate(items, args)
        envelope["lead_sources"] = page
        return 200, envelope

    def create_lead_source(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /lead_sources (201)."""
        with self.lock:
            name = str(body.get("name") or "").strip()
            if not name:
                return _field_errors(422, {"name": ["can't be blank"]})
            if any(s["name"].lower() == name.lower() for s in self.lead_sources):
                return _field_errors(422, {"name": ["has already been taken"]})
            source = {"id": new_id("ls"), "name": name, "editable": True}
            self.lead_sources.append(source)
            return 201, dict(source)

    # ---- leads

    def create_lead(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /leads (201) with customer_id or an inline customer."""
        with self.lock:
            if err := self._lead_source_error(body.get("lead_source")):
                return err
            customer_id = body.get("customer_id")
            if customer_id:
                if customer_id not in self.customers:
                    return _error(404, "customer not found")
            elif isinstance(body.get("customer"), dict):
                inline = body["customer"]
                if err := self._lead_source_error(inline.get("lead_source")):
                    return err
                status, created = self._create_customer(inline)
                if status != 201:
                    return status, created
                customer_id = created["id"]
            else:
                return _field_errors(422, {"customer": ["customer_id or customer is required"]})
            address_id = body.get("address_id")
            if address_id:
                meta = self.meta.get(address_id)
                if address_id not in self.addresses or meta is None:
                    return _error(404, "address not found")
                if meta.owner != customer_id:
                    return _error(422, "address does not belong to the customer")
            elif isinstance(body.get("address"), dict):
                address_id = self._add_address(customer_id, body["address"])
            else:
                owned = self.customer_addresses[customer_id]
                address_id = owned[0] if owned else None
            employee_id = body.get("assigned_employee_id")
            if employee_id and self._employee(employee_id) is None:
                return _error(422, f"employee not found: {employee_id}")
            self.lead_number += 1
            now = iso(utcnow())
            lead_id = new_id("lea")
            self.leads[lead_id] = {
                "id": lead_id,
                "number": self.lead_number,
                "customer_id": customer_id,
                "address_id": address_id,
                "assigned_employee_id": employee_id,
                "lead_source": body.get("lead_source"),
                "tags": list(body.get("tags") or []),
                "note": body.get("note"),
                "total_amount": sum(
                    int(i.get("unit_price") or 0) * int(i.get("quantity", 1))
                    for i in body.get("line_items") or []
                ),
                "created_at": now,
                "updated_at": now,
            }
            self.meta[lead_id] = _Meta(seq=self._next_seq())
            return 201, self._lead_json(lead_id)

    def get_lead(self, lead_id: str) -> tuple[int, dict[str, Any]]:
        """GET /leads/{id}."""
        with self.lock:
            if lead_id not in self.leads:
                return _error(404, "lead not found")
            return 200, self._lead_json(lead_id)

    def list_leads(self, args: MultiDict[str, str]) -> tuple[int, dict[str, Any]]:
        """GET /leads."""
        with self.lock:
            ids = list(self.leads)
            if args.get("customer_id"):
                ids = [i for i in ids if self.leads[i]["customer_id"] == args["customer_id"]]
            if args.get("status") and args["status"] != "open":
                ids = []  # sandbox leads stay open
            ids = self._sorted(ids, self.leads, args.get("sort_by"), args.get("sort_direction"))
            page_ids, envelope = paginate(ids, args)
            envelope["leads"] = [self._lead_json(i) for i in page_ids]
            return 200, envelope

    # ---- company and schedule

    def get_company(self) -> tuple[int, dict[str, Any]]:
        """GET /company."""
        with self.lock:
            return 200, json.loads(json.dumps(self.company))

    def schedule_availability(self) -> tuple[int, dict[str, Any]]:
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

    def booking_windows(self, args: MultiDict[str, str]) -> tuple[int, dict[str, Any]]:
        """GET /company/schedule_availability/booking_windows."""
        days = _int_arg(args.get("show_for_days"), 7)
        if days < 1 or days > 90:
            return _field_errors(422, {"show_for_days": ["must be between 1 and 90"]})
        duration = _int_arg(args.get("service_duration"), self.booking_window_minutes)
        if duration < 1:
            return _field_errors(422, {"service_duration": ["must be a positive integer"]})
        now = utcnow()
        today = now.astimezone(self.tz).date()
        if args.get("start_date"):
            try:
                start_day = parse_datetime(args["start_date"], self.tz).astimezone(self.tz).date()
            except ValueError:
                return _field_errors(422, {"start_date": ["is not a valid date"]})
        else:
            # "defaults to the next day with an available booking window"
            start_day = today + timedelta(days=1)
            while start_day.weekday() not in BUSINESS_HOURS:
                start_day += timedelta(days=1)
        with self.lock:
            staff = [e for e in self.employees if e["permissions"]["can_be_booked_online"]]
            if args.getlist("employee_ids[]"):
                wanted = set(args.getlist("employee_ids[]"))
                staff = [e for e in staff if e["id"] in wanted]
            staff_ids = {e["id"] for e in staff}
            busy = [
                (
                    parse_datetime(j["schedule"]["scheduled_start"], self.tz),
                    parse_datetime(j["schedule"]["scheduled_end"], self.tz),
                    set(j["assigned_employee_ids"]),
                )
                for j in self.jobs.values()
                if j["schedule"]["scheduled_start"] and j["schedule"]["scheduled_end"]
            ]
        windows = []
        for offset in range(days):
            day = start_day + timedelta(days=offset)
            hours = BUSINESS_HOURS.get(day.weekday())
            if hours is None:
                continue  # closed on Sunday
            cursor = datetime(day.year, day.month, day.day, hours[0], tzinfo=self.tz)
            close = datetime(day.year, day.month, day.day, hours[1], tzinfo=self.tz)
            while cursor + timedelta(minutes=duration) <= close:
                end = cursor + timedelta(minutes=duration)
                if cursor > now:
                    # A job blocks a window for its assigned staff, or for one pro if unassigned.
                    taken = sum(
                        len(ids & staff_ids) if ids else 1
                        for start, stop, ids in busy
                        if start < end and stop > cursor
                    )
                    windows.append(
                        {
                            "start_time": iso(cursor),
                            "end_time": iso(end),
                            "available": taken < len(staff),
                        }
                    )
                cursor = end
        return 200, {
            "booking_windows": windows,
            "show_for_days": days,
            "start_date": start_day.isoformat(),
        }

    # ---- control endpoint views

    def snapshot(self) -> dict[str, Any]:
        """Return counts and full lists, for GET /_sandbox/state."""
        with self.lock:
            addresses = []
            for address_id in self.addresses:
                address = self._address_json(address_id)
                address["customer_id"] = self.meta[address_id].owner
                addresses.append(address)
            return {
                "counts": {
                    "customers": len(self.customers),
                    "addresses": len(self.addresses),
                    "jobs": len(self.jobs),
                    "leads": len(self.leads),
                    "requests": len(self.requests),
                },
                "customers": [self._customer_json(c) for c in self.customers],
                "addresses": addresses,
                "jobs": [self._job_json(j, ("appointments",)) for j in self.jobs],
                "leads": [self._lead_json(i) for i in self.leads],
                "company": json.loads(json.dumps(self.company)),
                "job_types": [dict(t) for t in self.job_types],
                "employees": [dict(e) for e in self.employees],
                "lead_sources": [dict(s) for s in self.lead_sources],
                "faults": self.faults.to_json(),
                "valid_keys": sorted(self.api_keys),
            }


def _bare_company(state: SandboxState) -> dict[str, Any]:
    """The company when seed=False: only what GET /company cannot do without."""
    return {
        "id": COMPANY_ID,
        "name": "Sandbox Company",
        "default_arrival_window": "0",
        "time_zone": state.time_zone,
        "locations": [],
    }


def paginate(items: list[Any], args: Mapping[str, str]) -> tuple[list[Any], dict[str, Any]]:
    """Slice items for page/page_size (1-based, page_size capped at 200) and build the envelope."""
    page = max(1, _int_arg(args.get("page"), 1))
    page_size = min(MAX_PAGE_SIZE, max(1, _int_arg(args.get("page_size"), DEFAULT_PAGE_SIZE)))
    total = len(items)
    start = (page - 1) * page_size
    return items[start : start + page_size], {
        "page": page,
        "page_size": page_size,
        "total_pages": math.ceil(total / page_size),
        "total_items": total,
    }


# --------------------------------------------------------------------------- WSGI fault layer


def _is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back so that Flask can read it again."""
    from werkzeug.wsgi import get_input_stream

    data = get_input_stream(environ).read()
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input_terminated"] = True
    return data


def _decode_json(data: bytes, content_type: str | None) -> tuple[Any, str | None]:
    """Return (decoded body or None, error message or None)."""
    if not data.strip():
        return None, None
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return None, f"the request body must be application/json (got {media or 'no type'})"
    try:
        return json.loads(data), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"the request body is not valid JSON: {exc}"


def _canned(kind: str, retry_after: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
    """The response for a status-code fault."""
    status = int(kind)
    if status >= 500:
        # HCP's 5xx bodies are not JSON (BeelineRoutes); an HTML error page is typical.
        body = f"<html><body><h1>{status} {_reason(status)}</h1></body></html>\n".encode()
        return status, [("Content-Type", "text/html; charset=utf-8")], body
    if status == 429:
        # Rack::Attack's default throttle answer; HCP is a Rails app. Inferred, not observed.
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        return status, headers, b"Retry later\n"
    if status == 401:
        payload: dict[str, Any] = {"message": "Unauthorized"}
    elif status == 422:
        payload = {"errors": {"base": ["scripted failure (HCP sandbox)"]}}
    else:
        payload = {"error": {"message": f"scripted {status} (HCP sandbox)"}}
    return status, [("Content-Type", "application/json")], json.dumps(payload).encode()


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _drop_connection(environ: Mapping[str, Any]) -> bool:
    """Close the client's connection without an answer; False if the server gives no socket."""
    sock = environ.get("werkzeug.socket")
    if sock is None:
        return False
    try:
        # linger 0: the peer sees the connection end at once, with no response bytes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return True


class FaultMiddleware:
    """WSGI layer around the sandbox app: request log, latency, and injected faults.

    It sits outside Flask because some faults happen after the app has answered (commit then
    fail, commit then time out, drop the connection).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], state: SandboxState) -> None:
        self.app = app
        self.state = state

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if _is_control(path):
            return self.app(environ, start_response)
        started = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        raw = _read_body(environ)
        query = MultiDict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        body, body_error = _decode_json(raw, environ.get("CONTENT_TYPE"))
        matched = spec.match_path(path)
        template = matched[0] if matched else None
        if body_error is None:
            violations = spec.check_request(method, path, query, body)
        else:
            violations = [spec.Violation("body", "", body_error)]
        entry: dict[str, Any] = {
            "at": iso(utcnow()),
            "method": method,
            "path": path,
            "template": template,
            "query": query.to_dict(flat=False),
            "json": body,
            "status": None,
            "violations": [str(v) for v in violations],
            "fault": None,
            "duration_ms": None,
        }
        self.state.log_request(entry)
        environ["hcp_sandbox.body"] = body
        environ["hcp_sandbox.body_error"] = body_error
        environ["hcp_sandbox.violations"] = violations

        latency = self.state.faults.latency_ms
        if latency:
            time.sleep(latency / 1000)
        fault = self.state.pick_fault(method, path, template)
        entry["fault"] = fault.kind if fault else None

        def finish(status: int | None) -> None:
            entry["status"] = status
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)

        if fault and re.fullmatch(r"\d{3}", fault.kind):
            status, headers, payload = _canned(fault.kind, fault.retry_after)
            finish(status)
            start_response(f"{status} {_reason(status)}", headers)
            return [payload]
        if fault and fault.kind == KIND_DROP:
            if _drop_connection(environ):
                finish(None)
                start_response("500 Internal Server Error", [("Content-Length", "0")])
                return [b""]
            status, headers, payload = _canned("500", None)  # no raw socket: the nearest thing
            finish(status)
            start_response(f"{status} {_reason(status)}", headers)
            return [payload]
        if fault and fault.kind == KIND_TIMEOUT_BEFORE:
            time.sleep(fault.seconds)

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        result = self.app(environ, capture)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status_line, headers = captured["status"], captured["headers"]

        if fault and fault.kind == KIND_COMMIT_DROP and _drop_connection(environ):
            finish(None)
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]
        if fault and fault.kind in (KIND_COMMIT_500, KIND_COMMIT_DROP):
            # commit_then_500, or a drop the server cannot do (no raw socket): answer 500.
            status, headers, payload = _canned("500", None)
            status_line = f"500 {_reason(500)}"
        if fault and fault.kind == KIND_TIMEOUT:
            time.sleep(fault.seconds)
        finish(int(status_line.split()[0]))
        start_response(status_line, headers)
        return [payload]


# --------------------------------------------------------------------------- Flask app


def get_state(app: Flask) -> SandboxState:
    """Return the sandbox state behind a sandbox app."""
    return app.extensions["hcp_sandbox"]


def _json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload), status=status, mimetype="application/json", headers=dict(headers or {})
    )


def _html_404() -> Response:
    return Response(HTML_404, status=404, mimetype="text/html")


def create_sandbox_app(
    *,
    api_keys: Iterable[str] = (DEFAULT_API_KEY,),
    seed: bool = True,
    time_zone: str = "America/Chicago",
    faults: dict[str, Any] | None = None,
    rng_seed: int | None = None,
    seed_customers: list[dict[str, Any]] | None = None,
    require_known_lead_source: bool = True,
    booking_window_minutes: int = DEFAULT_BOOKING_WINDOW_MINUTES,
) -> Flask:
    """Build the sandbox: a Flask app answering like HCP's API, plus /_sandbox/ controls."""
    state = SandboxState(
        api_keys=api_keys,
        seed=seed,
        time_zone=time_zone,
        faults=faults,
        rng_seed=rng_seed,
        seed_customers=seed_customers,
        require_known_lead_source=require_known_lead_source,
        booking_window_minutes=booking_window_minutes,
    )
    spec.contract()  # compile the definition now, not during the first (timed) request
    app = Flask(__name__)
    app.extensions["hcp_sandbox"] = state
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.wsgi_app = FaultMiddleware(app.wsgi_app, state)  # type: ignore[method-assign]

    def body() -> Any:
        if "hcp_sandbox.body" in request.environ:
            return request.environ["hcp_sandbox.body"]
        return request.get_json(silent=True)

    def answer(result: tuple[int, Any]) -> Response:
        return _json_response(*result)

    @app.before_request
    def gate() -> Response | None:
        if _is_control(request.path):
            return None
        if request.url_rule is None and spec.find_operation(request.method, request.path) is None:
            # HCP's router answers unknown paths/methods with an HTML 404 before any auth.
            return _html_404()
        if not state.key_is_valid(request.headers.get("Authorization")):
            return _json_response(401, {"message": "Unauthorized"})
        body_error = request.environ.get("hcp_sandbox.body_error")
        if body_error:
            return _json_response(400, {"error": {"message": body_error}})
        violations = request.environ.get("hcp_sandbox.violations")
        if violations is None:
            violations = spec.check_request(request.method, request.path, request.args, body())
        # Unknown query parameter names stay in the request log but are not refused: HCP (a
        # Rails app) ignores them. Bad array syntax, types and enums are refused like HCP's
        # 422 "must be an array".
        violations = [v for v in violations if v.code != spec.UNKNOWN_PARAMETER]
        if violations:
            errors: dict[str, list[str]] = {}
            for v in violations:
                errors.setdefault(v.field or "base", []).append(v.message)
            return _json_response(422, {"errors": errors})
        if request.url_rule is None:
            message = f"{request.method} {request.path} is in HCP's API but not in the sandbox"
            return _json_response(501, {"error": {"message": message}})
        return None

    @app.errorhandler(404)
    @app.errorhandler(405)
    def not_found(_exc: Exception) -> Response:
        return _html_404()

    # ---- HCP API

    @app.get("/customers")
    def list_customers() -> Response:
        return answer(state.list_customers(request.args))

    @app.post("/customers")
    def create_customer() -> Response:
        return answer(state.create_customer(body()))

    @app.get("/customers/<customer_id>")
    def get_customer(customer_id: str) -> Response:
        return answer(state.get_customer(customer_id, request.args.getlist("expand[]")))

    @app.put("/customers/<customer_id>")
    def update_customer(customer_id: str) -> Response:
        return answer(state.update_customer(customer_id, body() or {}))

    @app.get("/customers/<customer_id>/addresses")
    def list_addresses(customer_id: str) -> Response:
        return answer(state.list_addresses(customer_id, request.args))

    @app.post("/customers/<customer_id>/addresses")
    def create_address(customer_id: str) -> Response:
        return answer(state.create_address(customer_id, body()))

    @app.get("/customers/<customer_id>/addresses/<address_id>")
    def get_address(customer_id: str, address_id: str) -> Response:
        return answer(state.get_address(customer_id, address_id))

    @app.post("/jobs")
    def create_job() -> Response:
        return answer(state.create_job(body()))

    @app.get("/jobs")
    def list_jobs() -> Response:
        return answer(state.list_jobs(request.args))

    @app.get("/jobs/<job_id>")
    def get_job(job_id: str) -> Response:
        return answer(state.get_job(job_id, request.args.getlist("expand[]")))

    @app.get("/job_fields/job_types")
    def list_job_types() -> Response:
        return answer(state.list_job_types(request.args))

    @app.post("/job_fields/job_types")
    def create_job_type() -> Response:
        return answer(state.create_job_type(body()))

    @app.get("/employees")
    def list_employees() -> Response:
        return answer(state.list_employees(request.args))

    @app.get("/lead_sources")
    def list_lead_sources() -> Response:
        return answer(state.list_lead_sources(request.args))

    @app.post("/lead_sources")
    def create_lead_source() -> Response:
        return answer(state.create_lead_source(body()))

    @app.post("/leads")
    def create_lead() -> Response:
        return answer(state.create_lead(body()))

    @app.get("/leads")
    def list_leads() -> Response:
        return answer(state.list_leads(request.args))

    @app.get("/leads/<lead_id>")
    def get_lead(lead_id: str) -> Response:
        return answer(state.get_lead(lead_id))

    @app.get("/company")
    def get_company() -> Response:
        return answer(state.get_company())

    @app.get("/company/schedule_availability")
    def schedule_availability() -> Response:
        return answer(state.schedule_availability())

    @app.get("/company/schedule_availability/booking_windows")
    def booking_windows() -> Response:
        return answer(state.booking_windows(request.args))

    # ---- control endpoint (no auth, no faults, not logged)

    def control_json() -> dict[str, Any] | Response:
        data = request.get_json(silent=True)
        if data is None and request.get_data().strip():
            return _json_response(400, {"error": {"message": "the body must be JSON"}})
        if data is not None and not isinstance(data, dict):
            return _json_response(400, {"error": {"message": "the body must be a JSON object"}})
        return data or {}

    @app.get(f"{CONTROL_PREFIX}/state")
    def control_state() -> Response:
        return _json_response(200, state.snapshot())

    @app.get(f"{CONTROL_PREFIX}/faults")
    def control_faults() -> Response:
        with state.lock:
            return _json_response(200, state.faults.to_json())

    @app.post(f"{CONTROL_PREFIX}/faults")
    def control_set_faults() -> Response:
        data = control_json()
        if isinstance(data, Response):
            return data
        with state.lock:
            try:
                state.faults.update(data)
            except (TypeError, ValueError) as exc:
                return _json_response(400, {"error": {"message": str(exc)}})
            if "seed" in data:
                state.rng.seed(data["seed"])
            return _json_response(200, state.faults.to_json())

    @app.delete(f"{CONTROL_PREFIX}/faults")
    def control_clear_faults() -> Response:
        with state.lock:
            state.faults = FaultConfig()
            return _json_response(200, state.faults.to_json())

    @app.post(f"{CONTROL_PREFIX}/reset")
    def control_reset() -> Response:
        data = control_json()
        if isinstance(data, Response):
            return data
        state.reset(reseed=bool(data.get("reseed", True)))
        return _json_response(200, state.snapshot()["counts"])

    @app.get(f"{CONTROL_PREFIX}/keys")
    def control_keys() -> Response:
        with state.lock:
            return _json_response(200, {"valid": sorted(state.api_keys)})

    @app.post(f"{CONTROL_PREFIX}/keys")
    def control_set_keys() -> Response:
        data = control_json()
        if isinstance(data, Response):
            return data
        valid = data.get("valid")
        if not isinstance(valid, list) or not all(isinstance(k, str) for k in valid):
            return _json_response(400, {"error": {"message": '{"valid": [...strings]} expected'}})
        with state.lock:
            state.api_keys = set(valid)
            return _json_response(200, {"valid": sorted(state.api_keys)})

    @app.get(f"{CONTROL_PREFIX}/requests")
    def control_requests() -> Response:
        since = _int_arg(request.args.get("since"), 0)
        method = (request.args.get("method") or "").upper()
        path = request.args.get("path")
        only_bad = request.args.get("violations") in ("1", "true")
        with state.lock:
            entries = [
                dict(e)
                for e in state.requests
                if e["seq"] > since
                and (not method or e["method"] == method)
                and (not path or path in (e["path"], e["template"]))
                and (not only_bad or e["violations"])
            ]
        return _json_response(200, {"count": len(entries), "requests": entries})

    @app.delete(f"{CONTROL_PREFIX}/requests")
    def control_clear_requests() -> Response:
        with state.lock:
            state.requests.clear()
        return _json_response(200, {"count": 0, "requests": []})

    return app


# --------------------------------------------------------------------------- servers


class _Handler(WSGIRequestHandler):
    """Request handler that logs like werkzeug's (a subclass, so HTTP/1.1 stays local to it)."""


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request (tests)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class SandboxServer:
    """The sandbox on a real socket in a daemon thread (port=0 picks a free port)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True, **app_kwargs: Any
    ) -> None:
        self.host = host
        self.port = port
        self.quiet = quiet
        self.app = create_sandbox_app(**app_kwargs)
        self.state = get_state(self.app)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (valid once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; return self."""
        if self._server is not None:
            return self
        handler = _QuietHandler if self.quiet else _Handler
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=handler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"hcp-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (requests still sleeping are abandoned)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, **kwargs: Any) -> None:
    """Run the sandbox in the foreground until interrupted."""
    app = create_sandbox_app(**kwargs)
    state = get_state(app)
    server = make_server(host, port, app, threaded=True, request_handler=_Handler)
    keys = ", ".join(sorted(state.api_keys)) or "(none)"
    click.echo(f"HCP sandbox on http://{host}:{server.server_port}  (valid keys: {keys})")
    click.echo(f"control endpoint: http://{host}:{server.server_port}{CONTROL_PREFIX}/state")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command("hcp-sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port to bind.")
@click.option("--latency-ms", default=0.0, type=float, help="Delay added to every request.")
@click.option("--error-rate", default=0.0, type=float, help="Share answered 500/502/503.")
@click.option("--rate-limit-rate", default=0.0, type=float, help="Share answered 429.")
@click.option("--retry-after", default="1", show_default=True, help="Retry-After for 429s.")
@click.option("--timeout-rate", default=0.0, type=float, help="Share answered too late.")
@click.option(
    "--timeout-seconds", default=30.0, show_default=True, type=float, help="How late that is."
)
@click.option(
    "--commit-then-fail-rate",
    default=0.0,
    type=float,
    help="Share of creates that are saved, then answered 500 or dropped.",
)
@click.option("--seed", "rng_seed", default=None, type=int, help="Seed for the random faults.")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help=f"A valid API key (repeatable; default {DEFAULT_API_KEY}).",
)
@click.option("--time-zone", default="America/Chicago", show_default=True)
@click.option("--no-seed-data", is_flag=True, help="Start without company data and job types.")
def sandbox_command(
    host: str,
    port: int,
    latency_ms: float,
    error_rate: float,
    rate_limit_rate: float,
    retry_after: str,
    timeout_rate: float,
    timeout_seconds: float,
    commit_then_fail_rate: float,
    rng_seed: int | None,
    api_keys: tuple[str, ...],
    time_zone: str,
    no_seed_data: bool,
) -> None:
    """Run a local Housecall Pro API sandbox (see docs/sandbox.md)."""
    faults = {
        "latency_ms": latency_ms,
        "error_rate": error_rate,
        "rate_limit_rate": rate_limit_rate,
        "retry_after": retry_after,
        "timeout_rate": timeout_rate,
        "timeout_seconds": timeout_seconds,
        "commit_then_fail_rate": commit_then_fail_rate,
    }
    try:
        serve(
            host,
            port,
            api_keys=api_keys or (DEFAULT_API_KEY,),
            seed=not no_seed_data,
            time_zone=time_zone,
            faults=faults,
            rng_seed=rng_seed,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


if __name__ == "__main__":
    sandbox_command()

"""The sandbox's store: every record, key, fault setting and logged request, behind one lock."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import customers, reference, staff
from .faults import FaultConfig
from .util import DEFAULT_API_KEY

REQUEST_LOG_SIZE = 20_000
DEFAULT_BOOKING_WINDOW_MINUTES = 30  # the definition: "Neither provided: Defaults to 30 minutes"


@dataclass
class Meta:
    """What the sandbox keeps about a record besides its public fields."""

    seq: int
    owner: str | None = None  # an address's customer id
    note_id: str | None = None  # id for a customer's notes when embedded in a job


class SandboxState:
    """Everything the sandbox knows, in memory, behind one lock.

    The resource modules (customers, jobs, estimates, leads, reference, schedule, staff) read
    and change it; their public functions take the lock, their `_locked` helpers expect it held.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        seed: bool = True,
        job_types: Iterable[str] = (),
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
        self.job_type_names = tuple(job_types)
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
        self.company: dict[str, Any] = {}
        self.employees: list[dict[str, Any]] = []
        self.job_types: list[dict[str, Any]] = []
        self.lead_sources: list[dict[str, Any]] = []
        self.working_hours: dict[str, staff.Hours] = {}  # employee id -> weekday -> span
        self.service_zones: list[dict[str, Any]] = []
        self.webhook_sender: Any = None  # webhooks.py's delivery queue, once started
        self._reset_data(reseed=True)

    def _reset_data(self, *, reseed: bool) -> None:
        """Clear customers, addresses, jobs, estimates, leads and the log (lock held or init)."""
        self.customers: dict[str, dict[str, Any]] = {}
        self.addresses: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.estimates: dict[str, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.dispatches: list[dict[str, Any]] = []  # PUT /jobs/{id}/dispatch, in order
        # Off: the company has no online booking windows (GET .../booking_windows answers none).
        self.booking_windows_enabled = True
        self.meta: dict[str, Meta] = {}
        self.customer_addresses: dict[str, list[str]] = {}  # customer id -> address ids, in order
        self._seq = 0
        self.invoice_number = 0
        self.invoices: dict[str, dict[str, Any]] = {}  # invoice id -> invoice (invoices.py)
        # The registered webhook endpoint (webhooks.py) and what was sent to it.
        self.webhook: dict[str, Any] | None = None
        self.webhook_log: list[dict[str, Any]] = []
        self.webhook_held: list[dict[str, Any]] = []
        self.estimate_number = 0
        self.lead_number = 0
        self.requests.clear()
        if reseed:
            reference.seed_locked(self)
            staff.seed_locked(self)
        for customer in self._seed_customers:
            status, body = customers.create_locked(self, customer)
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

    def remember(
        self, record_id: str, *, owner: str | None = None, note_id: str | None = None
    ) -> None:
        """Record a new record's creation order (and owner) (lock held)."""
        self._seq += 1
        self.meta[record_id] = Meta(seq=self._seq, owner=owner, note_id=note_id)

    def sorted_ids(
        self,
        ids: list[str],
        records: Mapping[str, Mapping[str, Any]],
        sort_by: str | None,
        direction: str | None,
    ) -> list[str]:
        """Sort record ids by a field, newest first by default (lock held)."""
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

    def key_is_valid(self, header: str | None) -> bool:
        """Check an Authorization header: `Token <key>` (documented) or `Bearer <key>`."""
        if not header:
            return False
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        with self.lock:
            return key.strip() in self.api_keys

    def log_request(self, entry: dict[str, Any]) -> None:
        """Append a request to the capped log (the entry's status is filled in later)."""
        with self.lock:
            self._request_seq += 1
            entry["seq"] = self._request_seq
            self.requests.append(entry)

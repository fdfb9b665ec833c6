"""Database models: forms, drafts, submissions and their sync trail, admin and settings.

Models hold data and small invariants only: no HTTP, no request globals, no enqueueing.

Why one module: these classes are the schema. Alembic compares them with the migrations as one
metadata, and a newcomer finds every table and column in one file, in one place to read when a
migration is written; split by topic, a change to one table would often touch several files.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from . import formdefs
from .extensions import Model, db
from .formdefs import DEFAULT_EMERGENCY_KEYWORDS
from .timeutil import UTCDateTime, utcnow


class Status(StrEnum):
    """Where a submission stands on its way to Housecall Pro."""

    PENDING = "pending"  # saved, waiting for a worker (or for its next retry time)
    SYNCING = "syncing"  # claimed by a worker holding a lease
    SYNCED = "synced"  # customer, address and job exist in HCP
    FAILED = "failed"  # a permanent error; needs a person
    WAITING = "waiting"  # waiting for the HCP connection (bad key, or sync paused)
    QUARANTINED = "quarantined"  # suspected spam: never sent to HCP unless released
    MANUAL = "manual"  # handled by hand in HCP; the sync leaves it alone


class Form(Model):
    """A published wizard: its definition (steps and fields) and the business's settings."""

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    business_name: Mapped[str] = mapped_column(String(200), default="")
    business_phone: Mapped[str] = mapped_column(String(32), default="")
    # Steps, fields, labels, options, required flags and each field's HCP key.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    # [{"name": "Plumbing repair", "job_type_id": "jt_…" | None}] in display order.
    service_types: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Service-area ZIPs (5 digits); empty means every valid US ZIP is served.
    service_area_zips: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{"id": "08-11", "label": "8–11 am", "start": "08:00", "end": "11:00"}]
    time_windows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    closed_weekdays: Mapped[list[int]] = mapped_column(JSON, default=list)  # 0 = Monday
    closed_dates: Mapped[list[str]] = mapped_column(JSON, default=list)  # ISO dates
    booking_horizon_days: Mapped[int] = mapped_column(Integer, default=90)
    # "booked": step 6 offers HCP's open booking windows (the form's own windows only when HCP
    # can't answer); "preferences": always the form's windows, as preferred times.
    scheduling_mode: Mapped[str] = mapped_column(String(16), default="booked")
    booking_days: Mapped[int] = mapped_column(Integer, default=14)  # days of windows shown
    lead_time_minutes: Mapped[int] = mapped_column(Integer, default=120)  # no window sooner
    # Who does the work (assignment.py): ZIPs or ZIP prefixes per HCP employee id
    # ({"pro_…": ["787", "78745"]}; a pro without an entry covers every ZIP), or HCP's own
    # service zones instead; and whether a booked job is dispatched to its pro.
    territories: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    use_service_zones: Mapped[bool] = mapped_column(Boolean, default=False)
    dispatch_jobs: Mapped[bool] = mapped_column(Boolean, default=False)
    time_zone: Mapped[str] = mapped_column(String(64), default="America/Chicago")
    # Words in a description that make step 6 suggest Emergency (a hint; see emergency.py).
    emergency_keywords: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: list(DEFAULT_EMERGENCY_KEYWORDS)
    )
    emergency_job_type_id: Mapped[str] = mapped_column(String(64), default="")  # "" = as usual
    allowed_domains: Mapped[list[str]] = mapped_column(JSON, default=list)  # https origins
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    submissions_per_hour: Mapped[int] = mapped_column(Integer, default=150)
    brand_color: Mapped[str] = mapped_column(String(7), default="#1d4ed8")
    logo_url: Mapped[str] = mapped_column(String(500), default="")
    language: Mapped[str] = mapped_column(String(8), default="en")
    # Abandoned requests (migration 0012; hcpform/abandoned.py): a draft with a way to reach
    # the person and their consent, idle this long, is listed; sent to HCP as a lead when on.
    abandoned_after_minutes: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    abandoned_to_hcp: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Contact preferences and email (migration 0015; preferences.py, outbox.py): the contact
    # step's preselected choice, and the office addresses that get an alert per new request.
    contact_method_default: Mapped[str] = mapped_column(
        String(8), default="text", server_default="text"
    )
    office_emails: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # Which HCP account this form syncs to (one today; room for several businesses).
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("hcp_connection.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    terms_versions: Mapped[list[TermsVersion]] = relationship(
        back_populates="form", order_by="TermsVersion.version"
    )

    @property
    def current_terms(self) -> TermsVersion | None:
        """Return the terms text in force (the highest version)."""
        return self.terms_versions[-1] if self.terms_versions else None


class TermsVersion(Model):
    """One version of a form's terms text; submissions keep the version they accepted."""

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    form: Mapped[Form] = relationship(back_populates="terms_versions")

    __table_args__ = (db.UniqueConstraint("form_id", "version", name="uq_terms_form_version"),)


class Draft(Model):
    """A wizard in progress, keyed by an opaque random token; answers live here, not in cookies."""

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"), index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    completed_steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    furthest_step: Mapped[int] = mapped_column(
        Integer, default=0
    )  # steps completed, for the funnel
    attribution: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Returning-customer lookup kept server-side: {"phone": e164, "matched": bool, "hint": str}.
    lookup: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(16), default="hosted")  # hosted | embed
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Ticked "you may contact me if I don't finish" with a valid phone or email (migration
    # 0012); erased_at: its personal answers were erased when it expired.
    contact_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    form: Mapped[Form] = relationship()

    # Covering index for the admin's funnel (migration 0004).
    __table_args__ = (
        Index("ix_draft_started_funnel", "started_at", "furthest_step", "submitted_at"),
    )


class Submission(Model):
    """A submitted request: normalised answers, attribution, and its sync state toward HCP."""

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"), index=True)
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("draft.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Customer and service address (the eight required HCP keys and friends).
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    email: Mapped[str] = mapped_column(String(254), index=True)
    street: Mapped[str] = mapped_column(String(200))
    street_line_2: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2))
    zip: Mapped[str] = mapped_column(String(10))
    country: Mapped[str] = mapped_column(String(2), default="US")
    customer_type: Mapped[str] = mapped_column(String(16), default="residential")
    company: Mapped[str] = mapped_column(String(200), default="")
    is_first_time_client: Mapped[bool | None] = mapped_column(Boolean)

    # The request itself.
    service_type: Mapped[str] = mapped_column(String(100), index=True)
    urgency: Mapped[str] = mapped_column(String(16), index=True)
    description: Mapped[str] = mapped_column(Text)
    special_instructions: Mapped[str] = mapped_column(Text, default="")
    booking_date: Mapped[date | None] = mapped_column(Date)
    booking_window: Mapped[str] = mapped_column(String(32), default="")  # time window id
    scheduled_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scheduled_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "booked": an open HCP window, checked at submit (a scheduled job); "preference": a time
    # we confirm by phone (an unscheduled job with the preference in its notes).
    schedule_kind: Mapped[str] = mapped_column(String(16), default="preference")
    # "As soon as possible" on step 6: booked in the earliest open window, else unscheduled.
    asap: Mapped[bool] = mapped_column(Boolean, default=False)
    # An emergency stays on the dashboard's banner until someone in the office acknowledges it.
    emergency_acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    emergency_acknowledged_by: Mapped[str] = mapped_column(String(254), default="")
    terms_version_id: Mapped[int | None] = mapped_column(ForeignKey("terms_version.id"))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # every answer, by name
    language: Mapped[str] = mapped_column(String(8), default="en")

    # Lead attribution captured on the first page.
    utm_source: Mapped[str] = mapped_column(String(200), default="")
    utm_medium: Mapped[str] = mapped_column(String(200), default="")
    utm_campaign: Mapped[str] = mapped_column(String(200), default="")
    utm_term: Mapped[str] = mapped_column(String(200), default="")
    utm_content: Mapped[str] = mapped_column(String(200), default="")
    click_id: Mapped[str] = mapped_column(String(300), default="")  # gclid / gbraid / wbraid
    referrer: Mapped[str] = mapped_column(String(1000), default="")
    landing_url: Mapped[str] = mapped_column(String(1000), default="")
    source: Mapped[str] = mapped_column(String(16), default="hosted")  # hosted | embed

    # Sync state: each HCP id is stored and committed the moment it is known.
    hcp_customer_id: Mapped[str | None] = mapped_column(String(64))
    hcp_address_id: Mapped[str | None] = mapped_column(String(64))
    hcp_job_id: Mapped[str | None] = mapped_column(String(64))
    customer_matched_by: Mapped[str | None] = mapped_column(String(16))  # phone | email | None
    address_reused: Mapped[bool | None] = mapped_column(Boolean)
    # An HCP customer that shares the email or a number but is not a match: we made a new
    # customer rather than attach this work to someone else's record; the office may merge them.
    possible_duplicate_of: Mapped[str | None] = mapped_column(String(64))
    # A returning customer's typed email, name or mobile that differ from HCP's record, as the
    # job note line that tells the office (HCP's record itself is never overwritten).
    typed_differences: Mapped[str] = mapped_column(Text, default="")
    # HCP creates sent whose answer we may not have seen ("customer,address,job"): a retry
    # looks for what such a create made before sending it again.
    creates_sent: Mapped[str] = mapped_column(String(40), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    first_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_code: Mapped[int | None] = mapped_column(Integer)
    spam_reason: Mapped[str] = mapped_column(String(200), default="")
    manual_note: Mapped[str] = mapped_column(Text, default="")

    # Room for job intelligence: technician, estimate or lead, revenue from webhooks.
    hcp_employee_id: Mapped[str | None] = mapped_column(String(64))
    # The pro chosen for a booked window, stored before the job is sent (a resumed sync sends
    # the same one): when it was decided (None: not yet), the name, why; when dispatched.
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hcp_employee_name: Mapped[str] = mapped_column(String(200), default="")
    assignment_note: Mapped[str] = mapped_column(String(300), default="")
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hcp_lead_id: Mapped[str | None] = mapped_column(String(64))
    hcp_estimate_id: Mapped[str | None] = mapped_column(String(64))
    job_work_status: Mapped[str | None] = mapped_column(String(32))
    job_total_cents: Mapped[int | None] = mapped_column(Integer)
    # The lead sent for this request's draft while it lay abandoned (migration 0012).
    abandoned_lead_id: Mapped[str | None] = mapped_column(String(64))
    # How the person wants to be contacted ("call", "text", "email"; "" before 0015), and the
    # marketing consent: ticked, when, and the wording's version (preferences.consent_version).
    contact_method: Mapped[str] = mapped_column(String(8), default="", server_default="")
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    marketing_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    marketing_consent_version: Mapped[str] = mapped_column(
        String(16), default="", server_default=""
    )

    # What became of the record in HCP (migration 0008; hcpform/webhooks/): its status and
    # money, each group with the time of the newest state applied (an older event never
    # overwrites a newer one) and where it came from ("webhook" or "reconcile").
    hcp_status: Mapped[str | None] = mapped_column(String(24), index=True)
    hcp_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hcp_status_source: Mapped[str | None] = mapped_column(String(16))
    hcp_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hcp_canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invoiced_cents: Mapped[int | None] = mapped_column(Integer)
    paid_cents: Mapped[int | None] = mapped_column(Integer)
    hcp_paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hcp_money_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hcp_money_source: Mapped[str | None] = mapped_column(String(16))
    # {invoice id or "_job": {"amount", "due", "status", "paid_at", "at", "source"}}
    hcp_money: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hcp_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Recurring maintenance (recurring.py): the homeowner opted in to repeat this visit
    # ("monthly", "quarterly", "yearly"; "" = no), and the day the next follow-up falls due
    # (None once stopped). A follow-up row points at the original and keeps the day it was
    # due for: one follow-up per original and day (uq_submission_follow_up).
    repeat_every: Mapped[str] = mapped_column(String(16), default="")
    next_follow_up: Mapped[date | None] = mapped_column(Date, index=True)
    repeat_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    follow_up_of: Mapped[int | None] = mapped_column(ForeignKey("submission.id"), index=True)
    follow_up_due: Mapped[date | None] = mapped_column(Date)

    form: Mapped[Form] = relationship()
    original: Mapped[Submission | None] = relationship(remote_side="Submission.id")
    terms_version: Mapped[TermsVersion | None] = relationship()
    attempts_log: Mapped[list[SyncAttempt]] = relationship(
        back_populates="submission", order_by="SyncAttempt.id"
    )

    __table_args__ = (
        Index("ix_submission_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_submission_form_created", "form_id", "created_at"),
        # Covering indexes for the admin dashboard (migration 0004).
        Index("ix_submission_created_outcome", "created_at", "status", "customer_matched_by"),
        Index("ix_submission_form_status", "form_id", "status"),
        Index("ix_submission_draft_job", "draft_id", "hcp_job_id"),
        db.UniqueConstraint("follow_up_of", "follow_up_due", name="uq_submission_follow_up"),
        # The dashboard's open emergencies (migration 0011).
        Index(
            "ix_submission_emergency_open",
            "urgency",
            "emergency_acknowledged_at",
            "status",
            "created_at",
        ),
    )

    @property
    def full_name(self) -> str:
        """Return the customer's name as one string."""
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def hcp_record(self) -> tuple[str, str] | None:
        """Return (kind, HCP id) of the job, estimate or lead this request became, if any."""
        for kind, record_id in (
            ("job", self.hcp_job_id),
            ("estimate", self.hcp_estimate_id),
            ("lead", self.hcp_lead_id),
        ):
            if record_id:
                return kind, record_id
        return None

    @property
    def repeat_label(self) -> str:
        """Return how often the visit repeats, as the job notes say it ("every 3 months")."""
        return formdefs.repeat_label(self.repeat_every or "")

    @property
    def follows(self) -> str:
        """Return, for a follow-up, the original's HCP record and reference (else '')."""
        original = self.original
        if original is None:
            return ""
        record = original.hcp_record
        return (f"HCP {record[0]} {record[1]} / " if record else "") + (
            f"reference {original.reference}"
        )


class SyncAttempt(Model):
    """One run of the sync for a submission: when, by whom, and how it ended."""

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16), default="running")  # synced|retry|failed|…
    message: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(100), default="")

    submission: Mapped[Submission] = relationship(back_populates="attempts_log")


class HcpCall(Model):
    """One HTTP call to HCP, recorded with PII redacted, for the timeline and health figures."""

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(200))
    status: Mapped[int | None] = mapped_column(Integer)  # None: no answer (timeout, reset)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    __table_args__ = (
        Index("ix_hcp_call_submission_id", "submission_id", "id"),
        # Covering index for the admin's latency and error figures (migration 0004).
        Index("ix_hcp_call_created_duration", "created_at", "duration_ms", "ok"),
    )


class HcpConnection(Model):
    """The business's HCP account: the encrypted key, its state, and the sync defaults."""

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_key_last4: Mapped[str] = mapped_column(String(4), default="")
    state: Mapped[str] = mapped_column(String(16), default="unknown")  # connected|disconnected
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message: Mapped[str] = mapped_column(String(500), default="")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)  # manual processing
    company_name: Mapped[str] = mapped_column(String(200), default="")
    time_zone: Mapped[str] = mapped_column(String(64), default="")
    default_lead_source: Mapped[str] = mapped_column(String(100), default="")
    default_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    default_job_type_id: Mapped[str] = mapped_column(String(64), default="")
    # HCP's webhook signing secret (write-only, encrypted like the key; migration 0008). After
    # a rotation the previous one stays valid until webhook_previous_until.
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_previous_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    webhook_secret_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    webhook_last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Connection checks failed in a row, and since when (migration 0012): the admin's banner.
    check_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OutOfAreaRequest(Model):
    """A request from a ZIP outside the service area, kept for expansion planning."""

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"), index=True)
    zip: Mapped[str] = mapped_column(String(10), index=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FunnelCount(Model):
    """Daily counters of wizard events that have no row of their own (e.g. first-page views)."""

    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    event: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class AdminUser(Model):
    """A person who may use the admin."""

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Part of every session's fingerprint: logging out adds one, so a copied cookie of any of
    # this admin's sessions is refused afterwards (the cookie itself lives in the browser).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuditEntry(Model):
    """An admin action: who, what, when and from where. Written once, never edited."""

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WebhookEvent(Model):
    """One verified delivery from HCP, stored once (keyed by a hash of timestamp and body).

    The raw body is kept until the event is applied; for a record we did not create it is
    kept for diagnosis, and every event is dropped after WEBHOOK_KEEP_DAYS (migration 0008).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    event: Mapped[str] = mapped_column(String(100), default="")
    resource: Mapped[str] = mapped_column(String(32), default="")  # job | invoice | estimate …
    record_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # received | applied | stale (older than what we hold) | unmatched | ignored
    state: Mapped[str] = mapped_column(String(16), default="received", index=True)
    submission_id: Mapped[int | None] = mapped_column(Integer, index=True)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text, default="")


class AbandonedRequest(Model):
    """A draft left idle with a way to reach the person and their consent (migration 0012).

    It carries the resume link's own token and, when the form sends abandoned requests to
    HCP, the lead's progress: claimed with a lease, each HCP id stored at once, a create
    marked in creates_sent before its POST (like a submission's sync).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("draft.id"), unique=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"), index=True)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resume_token: Mapped[str] = mapped_column(String(64), unique=True)
    # "" listed | sending (claimed) | retry | sent | failed | skipped (submitted first)
    lead_state: Mapped[str] = mapped_column(String(16), default="", index=True)
    creates_sent: Mapped[str] = mapped_column(String(40), default="")
    hcp_customer_id: Mapped[str | None] = mapped_column(String(64))
    hcp_address_id: Mapped[str | None] = mapped_column(String(64))
    hcp_lead_id: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lead_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")

    draft: Mapped[Draft] = relationship()
    form: Mapped[Form] = relationship()


class CampaignVisit(Model):
    """First-page views of a form per local day and campaign, for the Marketing page (0013).

    One row per form, day (the form's local day), source, medium and campaign (lowercased UTM
    values, "" when absent); the wizard's first page adds one to it.
    """

    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    medium: Mapped[str] = mapped_column(String(200), primary_key=True)
    campaign: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class AdSpend(Model):
    """What the business spent on ads from one source in one month, in cents (0013)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(200))  # lowercased, like the reports' sources
    month: Mapped[date] = mapped_column(Date, index=True)  # the month's first day
    amount_cents: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(254), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (db.UniqueConstraint("source", "month", name="uq_ad_spend_source_month"),)


class Photo(Model):
    """A homeowner's photo of the problem: the draft's while in the wizard, then the submission's.

    The file itself (re-encoded, metadata stripped) lives in the photo store (hcpform/storage.py)
    under `stored_name`, with its thumbnail under `thumb_name`; never in the web root.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)  # random; in URLs and HCP file name
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("draft.id"), index=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    content_type: Mapped[str] = mapped_column(String(32), default="image/jpeg")
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(Integer, default=0)  # bytes stored
    sha256: Mapped[str] = mapped_column(String(64))
    stored_name: Mapped[str] = mapped_column(String(200))
    thumb_name: Mapped[str] = mapped_column(String(200))
    # The attachment to the HCP job: waiting (no job yet), sending (claimed; the POST may be out),
    # attached, retrying (after an error, at next_attach_at), failed (needs a person), skipped.
    attach_state: Mapped[str] = mapped_column(String(16), default="waiting")
    attach_sent: Mapped[bool] = mapped_column(Boolean, default=False)  # a POST went out once
    attach_attempts: Mapped[int] = mapped_column(Integer, default=0)
    attach_error: Mapped[str] = mapped_column(Text, default="")
    next_attach_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attach_claim_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hcp_attachment_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_photo_attach_state_next", "attach_state", "next_attach_at"),)


class OutboxMessage(Model):
    """One message to send (migration 0015; outbox.py): queued with what triggers it, sent once.

    The channel is "email" today; SMS can be added as another channel without moving data.
    The body is rendered when sending, from the templates named by the kind (mail/<kind>.*);
    (submission, kind, recipient) is unique, so a message is queued exactly once.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), default="email")
    # confirmation | job_update | office_alert | emergency_alert
    kind: Mapped[str] = mapped_column(String(32))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300), default="")
    # queued | sending (claimed under a lease) | sent | failed (permanent, or out of retries)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        db.UniqueConstraint(
            "submission_id", "kind", "recipient", name="uq_outbox_submission_kind_recipient"
        ),
    )

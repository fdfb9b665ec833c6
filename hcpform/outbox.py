"""The outbox: messages queued with what triggers them, and sent once each by the workers.

A message is a row (`OutboxMessage`) added in the same transaction as its trigger: the
homeowner's confirmation and the office's alert with the submission, the update with the HCP
job's id. (submission, kind, recipient) is unique, so a trigger that runs twice queues nothing
new. Without HCPFORM_MAIL_URL nothing is queued (the admin says mail is off).

Sending (`deliver`) claims the row with a lease first (a conditional update: of two workers
racing, one wins), renders the templates mail/<kind>.txt and .html, sends, and marks it sent
under the same lease. A worker killed mid-send leaves the lease to expire; the sweep then sends
it again. SMTP can't be exactly-once: a crash between the server's 250 and our commit sends it
twice. That window is one database commit long; the Message-ID comes from the row's id, so a
mail client shows the copy once.

Who gets what (preferences.py): the confirmation goes to everyone who gave an email; updates
only to those who chose email; the office gets one alert per new request (subject marked
URGENT for emergencies). Quarantined (spam) requests get nothing.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, render_template
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import mail, preferences, validation
from .extensions import claim_with_lease, db, rowcount
from .i18n import N_, gettext, speaking, weekday_day_month
from .models import Form, OutboxMessage, Submission
from .redact import redact
from .timeutil import utcnow

logger = logging.getLogger(__name__)

CONFIRMATION, JOB_UPDATE = "confirmation", "job_update"
OFFICE_ALERT, EMERGENCY_ALERT = "office_alert", "emergency_alert"
QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
# Subjects: the homeowner's in one place (translatable later), the office's in English.
SUBJECTS = {
    CONFIRMATION: N_("We got your request {reference}"),
    JOB_UPDATE: N_("Your request {reference} is scheduled"),
    OFFICE_ALERT: "New request {reference}: {service}",
    EMERGENCY_ALERT: "URGENT: emergency request {reference}: {service}",
}
JOB_CREATED_SUBJECT = N_("Your request {reference} is with our team")
HOMEOWNER_KINDS = (CONFIRMATION, JOB_UPDATE)  # in the homeowner's language; the office's in English


def language_of(sub: Submission, kind: str) -> str:
    """Return the language of a message: the homeowner's for theirs, English for the office."""
    return (sub.language or "en") if kind in HOMEOWNER_KINDS else "en"


def mail_on() -> bool:
    """Return True when email is configured (HCPFORM_MAIL_URL)."""
    return bool(current_app.config.get("MAIL_URL"))


def mail_status() -> dict[str, Any]:
    """Return what the admin shows: on or off, the server (password masked), the counts."""
    cfg = current_app.config
    counts = dict(
        db.session.execute(
            select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
        ).all()
    )
    return {
        "on": mail_on(),
        "server": mail.describe(str(cfg["MAIL_URL"])) if mail_on() else "",
        "sender": str(cfg.get("MAIL_FROM") or ""),
        "counts": {state: int(counts.get(state, 0)) for state in (QUEUED, SENDING, SENT, FAILED)},
    }


def parse_addresses(text: str | None) -> tuple[list[str], list[str]]:
    """Return (the valid addresses of a comma- or line-separated list, unique; the problems)."""
    found: list[str] = []
    problems: list[str] = []
    for raw in (text or "").replace(";", ",").replace("\n", ",").split(","):
        raw = raw.strip()
        if not raw:
            continue
        try:
            address = validation.parse_email(raw)
        except validation.Invalid:
            problems.append(f"“{raw[:40]}” is not an email address")
            continue
        if address.lower() not in {a.lower() for a in found}:
            found.append(address)
    return found, problems


def subject_of(sub: Submission, kind: str, subject: str) -> str:
    """Return a message's subject in its language."""
    with speaking(language_of(sub, kind)):
        return gettext(subject).format(reference=sub.reference, service=sub.service_type)


def queue(sub: Submission, kind: str, recipient: str, *, now: datetime) -> bool:
    """Add one message unless it is queued already; return True when added (flushed)."""
    subject = SUBJECTS[kind]
    if kind == JOB_UPDATE and not sub.scheduled_start:
        subject = JOB_CREATED_SUBJECT
    row = OutboxMessage(
        channel="email",
        kind=kind,
        submission_id=sub.id,
        recipient=recipient,
        subject=subject_of(sub, kind, subject)[:300],
        state=QUEUED,
        attempts=0,
        created_at=now,
        last_error="",
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        return False
    return True


def queue_submitted(sub: Submission, form: Form, *, now: datetime) -> int:
    """Queue a new request's confirmation and office alerts; return how many (0: mail off)."""
    if not mail_on():
        return 0
    db.session.flush()  # the submission's id
    count = 0
    if sub.email:
        count += queue(sub, CONFIRMATION, sub.email, now=now)
    kind = EMERGENCY_ALERT if sub.urgency == "emergency" else OFFICE_ALERT
    for address in form.office_emails or []:
        count += queue(sub, kind, address, now=now)
    return count


def queue_job_update(sub: Submission, *, now: datetime) -> bool:
    """Queue the "your job is created / booked" email, for those who chose email."""
    if not mail_on() or not sub.email or not preferences.emails_updates(sub.contact_method):
        return False
    return queue(sub, JOB_UPDATE, sub.email, now=now)


def _due(now: datetime) -> Any:
    """Return the SQL condition of a message to send now (or one a dead worker left)."""
    return or_(
        and_(
            OutboxMessage.state == QUEUED,
            or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
        ),
        and_(OutboxMessage.state == SENDING, OutboxMessage.lease_until < now),
    )


def due_ids(*, now: datetime, limit: int = 200) -> list[int]:
    """Return the ids of messages due now, oldest first."""
    query = select(OutboxMessage.id).where(_due(now)).order_by(OutboxMessage.id).limit(limit)
    return list(db.session.scalars(query))


def claim(message_id: int, *, now: datetime) -> str | None:
    """Claim a due message with a lease (committed); return its token, None if not ours."""
    lease = timedelta(seconds=float(current_app.config["MAIL_LEASE_SECONDS"]))
    return claim_with_lease(
        OutboxMessage,
        message_id,
        _due(now),
        until=now + lease,
        state=SENDING,
        attempts=OutboxMessage.attempts + 1,
    )


def build(row: OutboxMessage) -> EmailMessage:
    """Return the email of a message: plain text and HTML from mail/<kind>.*, no remote parts."""
    sub = db.session.get(Submission, row.submission_id) if row.submission_id else None
    if sub is None:
        raise mail.MailError("The request this message was about no longer exists", refused=True)
    form = sub.form
    public = str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    context = {
        "sub": sub,
        "form": form,
        "business": form.business_name or form.name,
        "phone": validation.format_phone(form.business_phone) if form.business_phone else "",
        "method": preferences.METHODS.get(sub.contact_method, ""),
        "when": when_text(sub, form),
        "customer_phone": validation.format_phone(sub.phone) if sub.phone else "",
        "admin_url": f"{public}/admin/submissions/{sub.id}" if public else "",
    }
    message = EmailMessage()
    sender = str(current_app.config["MAIL_FROM"])
    message["From"] = formataddr((str(context["business"]), sender))
    message["To"] = row.recipient
    message["Subject"] = row.subject
    domain = sender.rpartition("@")[2] or "localhost"
    # The same id on every attempt: a client that gets two copies shows one.
    message["Message-ID"] = f"<hcpform-outbox-{row.id}-{row.created_at:%Y%m%d%H%M%S}@{domain}>"
    with speaking(language_of(sub, row.kind)):
        context["when"] = when_text(sub, form)  # the day's name in the message's language
        message.set_content(render_template(f"mail/{row.kind}.txt", **context))
        html = render_template(f"mail/{row.kind}.html", **context)
    message.add_alternative(html, subtype="html")
    return message


def when_text(sub: Submission, form: Form) -> str:
    """Return a booked visit's day and window in the form's time zone ("" when not booked)."""
    if not sub.scheduled_start or sub.schedule_kind != "booked":
        return ""
    zone = ZoneInfo(form.time_zone)
    start = sub.scheduled_start.astimezone(zone)
    text = f"{weekday_day_month(start.date())}, {_clock(start)}"
    if sub.scheduled_end:
        text += f"–{_clock(sub.scheduled_end.astimezone(zone))}"
    return text


def _clock(moment: datetime) -> str:
    """Return "9 am" or "9:30 am"."""
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes} {'am' if moment.hour < 12 else 'pm'}"


def backoff(attempts: int) -> float:
    """Return the seconds to wait after the attempts so far (doubling, capped, some jitter)."""
    cfg = current_app.config
    base = float(cfg["MAIL_RETRY_BASE_SECONDS"]) * 2.0 ** max(0, attempts - 1)
    wait = min(float(cfg["MAIL_RETRY_CAP_SECONDS"]), base)
    return wait * random.uniform(0.8, 1.0)


def deliver(message_id: int) -> str:
    """Send one message if it is due and we win its claim; return what became of it.

    Returns:
        "sent", "retry" (its next attempt is set), "failed", "mail off", or "skipped" (not due,
        or another worker holds it).
    """
    if not mail_on():
        return "mail off"
    now = utcnow()
    token = claim(message_id, now=now)
    if token is None:
        return "skipped"
    row = db.session.get(OutboxMessage, message_id)
    assert row is not None, "claimed just now"
    cfg = current_app.config
    try:
        server = mail.parse_url(str(cfg["MAIL_URL"]))
        try:
            message = build(row)
        except mail.MailError:
            raise
        except Exception as exc:  # a template or data problem: retrying won't help much
            logger.exception("Could not build email %s", message_id)
            message_text = f"Could not build the email: {type(exc).__name__}"
            raise mail.MailError(message_text, refused=True) from None
        mail.send(server, message, timeout=float(cfg["MAIL_TIMEOUT"]))
    except mail.MailError as exc:
        return _failed(row, token, exc)
    done = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.lease_token == token)
        .values(state=SENT, sent_at=utcnow(), lease_token=None, lease_until=None, last_error="")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if rowcount(done) != 1:  # our lease ran out mid-send: another worker may send it too
        logger.warning("Outbox message %s was sent after its lease ran out", message_id)
    logger.info("Email %s (%s) sent", message_id, row.kind)
    return "sent"


def _failed(row: OutboxMessage, token: str, exc: mail.MailError) -> str:
    """Record a failed send: retry after a backoff, or failed once out of attempts."""
    cfg = current_app.config
    limit = int(cfg["MAIL_REFUSED_ATTEMPTS"] if exc.refused else cfg["MAIL_MAX_ATTEMPTS"])
    attempts = row.attempts
    final = attempts >= limit
    values: dict[str, Any] = {
        "state": FAILED if final else QUEUED,
        "last_error": str(exc)[:500],
        "lease_token": None,
        "lease_until": None,
        "next_attempt_at": None if final else utcnow() + timedelta(seconds=backoff(attempts)),
    }
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row.id, OutboxMessage.lease_token == token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    logger.warning(
        "Email %s (%s) attempt %s failed%s: %s",
        row.id,
        row.kind,
        attempts,
        "; giving up" if final else "; will retry",
        redact(str(exc)),
    )
    return "failed" if final else "retry"


def next_attempt(message_id: int) -> datetime | None:
    """Return when a queued message is due next (None: not queued)."""
    db.session.rollback()
    row = db.session.get(OutboxMessage, message_id)
    return row.next_attempt_at if row is not None and row.state == QUEUED else None


def for_submission(submission_id: int) -> list[OutboxMessage]:
    """Return a submission's messages, in the order they were queued (for the admin)."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.submission_id == submission_id)
        .order_by(OutboxMessage.id)
    )
    return list(db.session.scalars(query))

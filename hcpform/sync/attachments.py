"""The photos' step: attach each photo of a synced submission to its HCP job, exactly once.

It runs as its own RQ job (jobs.attach_photos) once the job exists, so a photo that cannot be
sent never holds back or fails the submission: the submission is synced, the photo retries on
its own backoff and its state shows on the admin's submission page.

Per photo, like the other steps: claim it (a conditional update, so two workers never send the
same photo at once), and when a POST went out before whose answer was lost, look at the job's
attachments (GET /jobs/{id}?expand[]=attachments) for our file name, which carries the photo's
key, before sending it again; mark it sent (and commit) before the POST.

Estimates and leads: HCP's API takes attachments on jobs and on an estimate's options
(`/estimates/{id}/options/{option_id}/attachments`), none on leads. Only jobs are done here;
the photos of an estimate or a lead stay in the admin, marked "not sent".
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select, update

from .. import photos
from ..connection import KeyUnreadable, connection_row, key_source, make_client
from ..extensions import db, rowcount
from ..hcp.client import HcpError, HousecallProClient
from ..models import Photo, Status, Submission
from ..timeutil import utcnow
from . import backoff_seconds  # the sync's own backoff (sync/__init__ never imports this module)

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 120  # a claim outlives one upload; a worker that died frees it after this
OPEN_STATES = (photos.WAITING, photos.RETRYING, photos.SENDING)
NOT_A_JOB = "Not sent: this request became {kind} in Housecall Pro; photos go on jobs only."
KINDS = {"estimate": "an estimate", "lead": "a lead"}


def file_name(sub: Submission, photo: Photo, number: int) -> str:
    """Return the name the photo has in HCP: our reference, its number and its key."""
    return f"{sub.reference}-photo-{number}-{photo.key}.jpg"


def pending(submission_id: int) -> bool:
    """Return True when a submission has photos still to attach."""
    found = db.session.scalar(
        select(Photo.id)
        .where(Photo.submission_id == submission_id, Photo.attach_state.in_(OPEN_STATES))
        .limit(1)
    )
    return found is not None


def due_submissions(*, now: datetime, grace: timedelta, limit: int = 200) -> list[int]:
    """Return synced submissions with a photo the sweep should send (not claimed, due now)."""
    due = or_(
        and_(Photo.attach_state == photos.WAITING, Submission.synced_at <= now - grace),
        and_(Photo.attach_state == photos.RETRYING, Photo.next_attach_at <= now),
        and_(Photo.attach_state == photos.SENDING, Photo.attach_claim_until < now),
    )
    return list(
        db.session.scalars(
            select(Submission.id)
            .join(Photo, Photo.submission_id == Submission.id)
            .where(Submission.status == Status.SYNCED, due)
            .distinct()
            .limit(limit)
        )
    )


def attach_photos(submission_id: int) -> tuple[str, datetime | None]:
    """Attach what is due of a submission's photos; return (outcome, when to run again)."""
    sub = db.session.get(Submission, submission_id)
    if sub is None:
        return "missing", None
    todo = [p for p in photos.submission_photos(sub.id) if p.attach_state in OPEN_STATES]
    if not todo:
        return "nothing to attach", None
    record = sub.hcp_record
    if record is None:
        return "no record yet", None  # jobs.sync_submission enqueues this once synced
    if record[0] != "job":
        for photo in todo:
            photo.attach_state = photos.SKIPPED
            photo.attach_error = NOT_A_JOB.format(kind=KINDS.get(record[0], record[0]))
        db.session.commit()
        return "skipped", None
    conn = connection_row()
    if conn.paused or conn.state == "disconnected" or key_source(conn) == "none":
        return "waiting for the connection", None  # the sweep sends them once it is back
    numbers = {p.id: i for i, p in enumerate(photos.submission_photos(sub.id), start=1)}
    try:
        client = make_client(submission_id=sub.id, attempt=sub.attempts)
    except KeyUnreadable:
        return "waiting for the connection", None
    run = _Run(client, record[1])
    for photo in todo:
        if _claim(photo, now=utcnow()):
            _attach_one(run, sub, photo, numbers.get(photo.id, photo.position))
    run.fill_ids(sub)
    left = [p for p in photos.submission_photos(sub.id) if p.attach_state == photos.RETRYING]
    next_at = min((p.next_attach_at for p in left if p.next_attach_at), default=None)
    return ("retry" if next_at else "done"), next_at


class _Run:
    """One pass over a submission's photos: the client, the job, its attachments read once."""

    def __init__(self, client: HousecallProClient, job_id: str) -> None:
        self.client = client
        self.job_id = job_id
        self._listed: list[dict[str, Any]] | None = None
        self.new: list[Photo] = []

    def attachments(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """Return the job's attachments as HCP lists them (read once per pass)."""
        if self._listed is None or fresh:
            job = self.client.get_job(self.job_id, expand=["attachments"])
            self._listed = [a for a in job.get("attachments") or [] if isinstance(a, dict)]
        return self._listed

    def find(self, photo: Photo, *, fresh: bool = False) -> dict[str, Any] | None:
        """Return the job's attachment whose file name carries this photo's key."""
        return next(
            (a for a in self.attachments(fresh=fresh) if photo.key in str(a.get("file_name"))),
            None,
        )

    def fill_ids(self, sub: Submission) -> None:
        """Store HCP's ids of the photos attached in this pass (one read; best effort)."""
        missing = [p for p in self.new if not p.hcp_attachment_id]
        if not missing:
            return
        try:
            for photo in missing:
                found = self.find(photo, fresh=photo is missing[0])
                photo.hcp_attachment_id = str(found["id"])[:64] if found else None
        except HcpError as exc:  # the photos are attached; only their ids stay unknown
            logger.info("Attachment ids of %s not read: %s", sub.reference, exc.message)
        db.session.commit()


def _claim(photo: Photo, *, now: datetime) -> bool:
    """Take one photo for this pass (conditional update); False when it is not due or taken."""
    due = or_(
        Photo.attach_state == photos.WAITING,
        and_(
            Photo.attach_state == photos.RETRYING,
            or_(Photo.next_attach_at.is_(None), Photo.next_attach_at <= now),
        ),
        and_(Photo.attach_state == photos.SENDING, Photo.attach_claim_until < now),
    )
    result = db.session.execute(
        update(Photo)
        .where(Photo.id == photo.id, due)
        .values(
            attach_state=photos.SENDING,
            attach_claim_until=now + timedelta(seconds=CLAIM_SECONDS),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if rowcount(result) != 1:
        return False
    db.session.refresh(photo)
    return True


def _attach_one(run: _Run, sub: Submission, photo: Photo, number: int) -> None:
    """Send one claimed photo (after looking for it when a POST of it went out before)."""
    try:
        if photo.attach_sent:
            found = run.find(photo)
            if found is not None:
                _attached(photo, str(found.get("id") or "")[:64] or None)
                return
        data = photos.read_file(photo)
        if data is None:
            _give_up(photo, "The photo's file is missing from the photo store.")
            return
        photo.attach_sent = True  # before the POST: a lost answer is looked for next time
        photo.attach_attempts += 1
        db.session.commit()
        run.client.add_job_attachment(run.job_id, file_name(sub, photo, number), data)
        _attached(photo, None)
        run.new.append(photo)
    except HcpError as exc:
        db.session.rollback()
        _failed(photo, exc)


def _attached(photo: Photo, attachment_id: str | None) -> None:
    photo.attach_state = photos.ATTACHED
    photo.attached_at = utcnow()
    photo.attach_claim_until = None
    photo.next_attach_at = None
    photo.attach_error = ""
    if attachment_id:
        photo.hcp_attachment_id = attachment_id
    db.session.commit()
    logger.info("📎 Photo %s attached to its HCP job", photo.key)


def _give_up(photo: Photo, message: str) -> None:
    photo.attach_state = photos.FAILED
    photo.attach_claim_until = None
    photo.next_attach_at = None
    photo.attach_error = message[:2000]
    db.session.commit()
    logger.warning("❌ Photo %s not attached: %s", photo.key, message)


def _failed(photo: Photo, exc: HcpError) -> None:
    """Schedule the photo's next try, or give up on a permanent error or after the last try."""
    status = exc.status if exc.status is not None else "no answer"
    message = f"HCP error ({status}: {exc.message})"
    limit = int(current_app.config["PHOTO_ATTACH_MAX_ATTEMPTS"])
    if not exc.retryable and exc.kind != "auth":
        _give_up(photo, message)
        return
    if photo.attach_attempts >= limit:
        _give_up(photo, f"{message}; gave up after {photo.attach_attempts} tries")
        return
    delay = backoff_seconds(max(1, photo.attach_attempts), retry_after=exc.retry_after)
    photo.attach_state = photos.RETRYING
    photo.attach_claim_until = None
    photo.next_attach_at = utcnow() + timedelta(seconds=delay)
    photo.attach_error = f"{message}; retrying in {delay:.0f} s"[:2000]
    db.session.commit()
    logger.info("Photo %s: %s", photo.key, photo.attach_error)

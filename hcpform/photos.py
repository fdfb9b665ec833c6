"""Photos of the problem: add to a draft, remove, hand over to the submission, erase.

A photo belongs to its draft while the wizard is in progress, and to the submission as well
once submitted (submissions.submit hands them over). Files go to the photo store (storage.py),
re-encoded by imaging.py; rows say where. Like the other domain operations these add and flush;
the caller commits (files are written before the row is added and deleted after it is gone, so
a crash leaves at worst an orphan file, never a row without its file).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import IO

from flask import current_app
from sqlalchemy import delete, func, or_, select, update

from . import imaging
from .extensions import db
from .models import Draft, Photo, Submission
from .storage import get_store

logger = logging.getLogger(__name__)

PHOTO_STEP = "description"  # the wizard step that takes photos, when a form has it
FIELD = "photos"  # the file input's name
# Attachment states (Photo.attach_state).
WAITING, SENDING, ATTACHED, RETRYING, FAILED, SKIPPED = (
    "waiting",
    "sending",
    "attached",
    "retrying",
    "failed",
    "skipped",
)
STATE_LABELS = {
    WAITING: "Waiting for the job",
    SENDING: "Sending",
    ATTACHED: "Attached to the job",
    RETRYING: "Will retry",
    FAILED: "Failed",
    SKIPPED: "Not sent",
}


def max_count() -> int:
    """Return how many photos one request may carry."""
    return int(current_app.config["PHOTO_MAX_COUNT"])


def max_bytes() -> int:
    """Return the largest file accepted, in bytes."""
    return int(current_app.config["PHOTO_MAX_BYTES"])


def upload_body_limit(files: int) -> int:
    """Return the request body limit of an upload route taking this many files at most."""
    return files * max_bytes() + 256 * 1024  # the form's other fields and multipart framing


def too_many_message() -> str:
    """Return the message for a photo past the limit."""
    return f"You can add up to {max_count()} photos. Remove one to add another."


def draft_photos(draft: Draft) -> list[Photo]:
    """Return the draft's photos in the order they were added."""
    return list(
        db.session.scalars(
            select(Photo).where(Photo.draft_id == draft.id).order_by(Photo.position, Photo.id)
        )
    )


def submission_photos(submission_id: int) -> list[Photo]:
    """Return a submission's photos in order."""
    return list(
        db.session.scalars(
            select(Photo)
            .where(Photo.submission_id == submission_id)
            .order_by(Photo.position, Photo.id)
        )
    )


def count_for(draft: Draft) -> int:
    """Return how many photos the draft holds."""
    return int(
        db.session.scalar(select(func.count(Photo.id)).where(Photo.draft_id == draft.id)) or 0
    )


def add_photo(draft: Draft, stream: IO[bytes]) -> Photo:
    """Check, re-encode and store one uploaded file as the draft's next photo.

    Raises:
        imaging.PhotoRefused: with the homeowner's message (too many, empty, too big, not a
            photo, a decompression bomb, damaged).
    """
    if count_for(draft) >= max_count():
        raise imaging.PhotoRefused(too_many_message())
    cfg = current_app.config
    data = imaging.read_limited(stream, max_bytes())
    processed = imaging.process(
        data,
        max_bytes=max_bytes(),
        max_side=int(cfg["PHOTO_MAX_SIDE"]),
        max_pixels=int(cfg["PHOTO_MAX_PIXELS"]),
    )
    key = secrets.token_hex(16)
    store = get_store()
    stored, thumb = f"{key}.jpg", f"{key}-thumb.jpg"
    store.put(stored, processed.data)
    store.put(thumb, processed.thumb)
    last = db.session.scalar(select(func.max(Photo.position)).where(Photo.draft_id == draft.id))
    photo = Photo(
        key=key,
        draft_id=draft.id,
        position=(last or 0) + 1,
        width=processed.width,
        height=processed.height,
        size=len(processed.data),
        sha256=processed.sha256,
        stored_name=stored,
        thumb_name=thumb,
    )
    db.session.add(photo)
    db.session.flush()
    logger.info(
        "Photo %s added to a draft (%s, %d bytes)", key, processed.source_format, photo.size
    )
    return photo


def find_for_draft(draft: Draft, key: str) -> Photo | None:
    """Return the draft's photo with this key (None for another draft's or an unknown key)."""
    return db.session.scalar(select(Photo).where(Photo.key == key, Photo.draft_id == draft.id))


def remove_photo(draft: Draft, key: str) -> bool:
    """Delete one of the draft's photos (row and files); False when it has no such photo."""
    photo = find_for_draft(draft, key)
    if photo is None or photo.submission_id is not None:
        return False
    names = [photo.stored_name, photo.thumb_name]
    db.session.delete(photo)
    db.session.flush()
    delete_files(names)
    return True


def hand_over(draft: Draft, submission: Submission) -> None:
    """Make the draft's photos the submission's too (submissions.submit calls it)."""
    db.session.execute(
        update(Photo)
        .where(Photo.draft_id == draft.id, Photo.submission_id.is_(None))
        .values(submission_id=submission.id)
        .execution_options(synchronize_session=False)
    )


def read_file(photo: Photo, *, thumb: bool = False) -> bytes | None:
    """Return a photo's stored JPEG (or thumbnail), or None when its file is gone."""
    try:
        return get_store().get(photo.thumb_name if thumb else photo.stored_name)
    except FileNotFoundError:
        return None


def delete_files(names: Iterable[str]) -> None:
    """Delete stored files; one that can't be deleted is logged, not raised."""
    store = get_store()
    for name in names:
        try:
            store.delete(name)
        except (OSError, ValueError) as exc:
            logger.warning("Could not delete photo file %s: %s", name, exc.__class__.__name__)


def of_people(*, submission_ids: list[int], draft_ids: list[int]) -> list[Photo]:
    """Return the photos of these submissions and drafts (for a privacy export)."""
    match = or_(Photo.submission_id.in_(submission_ids), Photo.draft_id.in_(draft_ids))
    return list(db.session.scalars(select(Photo).where(match).order_by(Photo.id)))


def erase(*, submission_ids: list[int], draft_ids: list[int], unsent_only: bool = False) -> int:
    """Delete the photos (rows, then files) of these submissions and drafts; return how many.

    With `unsent_only`, only the drafts' photos that never became a submission's (an expired
    draft's): a submission keeps the photos it was sent with.
    """
    if not submission_ids and not draft_ids:
        return 0
    match = or_(Photo.submission_id.in_(submission_ids), Photo.draft_id.in_(draft_ids))
    if unsent_only:
        match = Photo.draft_id.in_(draft_ids) & Photo.submission_id.is_(None)
    rows = list(db.session.execute(select(Photo.stored_name, Photo.thumb_name).where(match)))
    db.session.execute(delete(Photo).where(match).execution_options(synchronize_session=False))
    db.session.flush()
    delete_files(name for row in rows for name in row)
    return len(rows)

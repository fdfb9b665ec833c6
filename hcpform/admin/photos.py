"""The photos on the admin's submission page: the files (admins only) and a retry of failed ones.

The blueprint's gate (admin/__init__.py) sends anyone not signed in to the login page, so the
files are never served to anyone else; the homeowner sees only thumbnails of their own draft.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select, update

from .. import jobs, photos
from ..extensions import db, rowcount
from ..models import Photo, Submission
from ..timeutil import utcnow
from . import bp
from .audit import record


@bp.get("/photos/<key>")
def photo_file(key: str) -> ResponseReturnValue:
    """Serve one photo, full size (re-encoded, without metadata), to a signed-in admin."""
    return _serve(key, thumb=False)


@bp.get("/photos/<key>/thumb")
def photo_thumb(key: str) -> ResponseReturnValue:
    """Serve one photo's thumbnail to a signed-in admin."""
    return _serve(key, thumb=True)


def _serve(key: str, *, thumb: bool) -> ResponseReturnValue:
    photo = db.session.scalar(select(Photo).where(Photo.key == key[:64]))
    data = photos.read_file(photo, thumb=thumb) if photo is not None else None
    if photo is None or data is None:
        abort(404)
    response = Response(data, mimetype="image/jpeg")
    response.headers["Content-Disposition"] = f'inline; filename="photo-{photo.key}.jpg"'
    return response


@bp.post("/submissions/<int:sub_id>/photos/retry")
def retry_photos(sub_id: int) -> ResponseReturnValue:
    """Send the submission's failed photos to its HCP job again."""
    sub = db.get_or_404(Submission, sub_id)
    result = db.session.execute(
        update(Photo)
        .where(Photo.submission_id == sub.id, Photo.attach_state == photos.FAILED)
        .values(
            attach_state=photos.RETRYING,
            next_attach_at=utcnow(),
            attach_attempts=0,
            attach_error="",
        )
        .execution_options(synchronize_session=False)
    )
    count = rowcount(result)
    record("retry photos", target=sub.reference, detail=f"{count} photos")
    db.session.commit()
    if count and sub.hcp_job_id:
        jobs.enqueue_attach(sub.id)
    flash(f"{count} photos of {sub.reference} will be sent to the job again.", "success")
    return redirect(url_for("admin.submission", sub_id=sub.id), code=303)


@bp.app_template_global("submission_photos")
def submission_photos(submission_id: int) -> list[dict[str, Any]]:
    """Return a submission's photos for its admin page: URLs, size and attachment state."""
    return [
        {
            "key": p.key,
            "url": url_for("admin.photo_file", key=p.key),
            "thumb": url_for("admin.photo_thumb", key=p.key),
            "width": p.width,
            "height": p.height,
            "size": p.size,
            "state": p.attach_state,
            "label": photos.STATE_LABELS.get(p.attach_state, p.attach_state),
            "error": p.attach_error,
            "attachment_id": p.hcp_attachment_id,
            "attempts": p.attach_attempts,
        }
        for p in photos.submission_photos(submission_id)
    ]

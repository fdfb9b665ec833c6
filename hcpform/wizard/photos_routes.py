"""Photo routes of the wizard: one-file uploads and removals for wizard.js, and thumbnails.

Every route finds the draft by the token the wizard already carries (`?d=`, or the hosted site's
first-party cookie), so only the draft's owner sees or changes its photos. The full-size files
are served to signed-in admins only (admin/photos.py).
"""

from __future__ import annotations

from flask import Response, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from .. import imaging, photos, submissions
from ..extensions import db
from ..i18n import gettext
from ..models import Draft, Form
from ..timeutil import utcnow
from . import bp, uploads
from .csrf import EXPIRED, posted_token_ok
from .limits import refuse_over
from .tokens import current_token
from .views import load_form

GONE = "Your saved request has expired. Reload the page to start again."
CHOOSE = "Choose a photo to add."


def _draft(form: Form) -> Draft | None:
    """Return the live, unsubmitted draft this request carries."""
    draft = submissions.load_draft(form, current_token(form), now=utcnow())
    return None if draft is None or draft.submitted_at else draft


def _error(message: str, status: int) -> ResponseReturnValue:
    return jsonify({"error": message}), status, {"Cache-Control": "no-store"}


@bp.post("/<slug>/photos")
def upload_photo(slug: str) -> ResponseReturnValue:
    """Take one photo for the draft (wizard.js); answer JSON: the photo, or why it was refused."""
    form = load_form(slug)
    draft = _draft(form)
    if draft is None:
        return _error(GONE, 404)
    try:
        files = uploads.posted_files()
    except RequestEntityTooLarge:
        return _error(imaging.too_big_message(photos.max_bytes()), 413)
    if not posted_token_ok(form.slug, draft.token):
        return _error(gettext(EXPIRED), 400)
    refused = refuse_over("photos", "RATELIMIT_PHOTOS_PER_IP")
    if refused is not None:
        return _error("We've had a lot of photos from here. Please wait a little.", 429)
    if len(files) != 1:
        return _error(CHOOSE, 400)
    try:
        photo = photos.add_photo(draft, files[0].stream)
    except imaging.PhotoRefused as exc:
        db.session.rollback()
        return _error(uploads.message_for(files[0], str(exc)), 400)
    db.session.commit()
    return (
        jsonify(
            {
                "key": photo.key,
                "thumb": uploads.thumb_url(form, draft.token, photo.key),
                "width": photo.width,
                "height": photo.height,
                "count": photos.count_for(draft),
                "max": photos.max_count(),
            }
        ),
        201,
        {"Cache-Control": "no-store"},
    )


@bp.post("/<slug>/photos/<key>/remove")
def remove_photo_js(slug: str, key: str) -> ResponseReturnValue:
    """Remove one of the draft's photos (wizard.js); JSON with how many are left."""
    form = load_form(slug)
    draft = _draft(form)
    if draft is None:
        return _error(GONE, 404)
    if not posted_token_ok(form.slug, draft.token):
        return _error(gettext(EXPIRED), 400)
    removed = photos.remove_photo(draft, key[:64])
    db.session.commit()
    return jsonify({"removed": removed, "count": photos.count_for(draft)}), 200


@bp.get("/<slug>/photos/<key>/thumb")
def photo_thumb(slug: str, key: str) -> ResponseReturnValue:
    """Serve a thumbnail of one of the draft's photos to the draft's owner."""
    form = load_form(slug)
    draft = submissions.load_draft(form, current_token(form), now=utcnow())
    photo = photos.find_for_draft(draft, key[:64]) if draft is not None else None
    data = photos.read_file(photo, thumb=True) if photo is not None else None
    if data is None:
        return Response("Not found", status=404, mimetype="text/plain")
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=600"
    response.headers["Content-Disposition"] = "inline"
    return response

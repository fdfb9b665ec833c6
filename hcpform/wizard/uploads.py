"""The photo step's uploads: its body limit, the files of a post, removals, the page's context.

With JavaScript off, the step's own form carries the files (`multipart/form-data`): "Add photos"
and each photo's "Remove" button post it and come back to the step with the typed answers kept;
"Continue" stores the photos and the answers together. With JavaScript on, wizard.js sends each
file on its own to the upload route (photos_routes.py) while the person types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import request, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from .. import imaging, photos
from ..models import Draft, Form
from . import bp
from .csrf import posted_token_ok

UPLOAD_ENDPOINT = "upload_photo"
NAME_LIMIT = 60  # of a file name quoted back in a message
THUMB_SHOWN = 160  # CSS pixels of a thumbnail's longest side on the pages


@bp.before_request
def photo_body_limit() -> None:
    """Raise the request body limit for the photo step's POST and the upload route only."""
    if request.method != "POST" or not request.endpoint:
        return
    endpoint = request.endpoint.rsplit(".", 1)[-1]
    args = request.view_args or {}
    if endpoint == "step" and args.get("step") == photos.PHOTO_STEP:
        # Room for one more file than allowed (and a little), so that a 6th photo, or one file
        # of several times the limit, gets its message next to the field, not a 413 page.
        request.max_content_length = photos.upload_body_limit(photos.max_count() + 2)
    elif endpoint == UPLOAD_ENDPOINT:
        request.max_content_length = photos.upload_body_limit(4)


@dataclass
class PhotoPost:
    """What a post of the photo step did with photos."""

    stay: bool = False  # "Add photos" or "Remove": show the step again, answers as typed
    body_refused: bool = False  # over the body limit: nothing posted could be read
    errors: list[str] = field(default_factory=list)
    added: int = 0

    @property
    def back_to_step(self) -> bool:
        """Return True when the post shows the step again instead of going on."""
        return self.stay or self.body_refused


def is_photo_step(form: Form, slug: str) -> bool:
    """Return True when this step of this form takes photos."""
    return slug == photos.PHOTO_STEP


def posted_files() -> list[FileStorage]:
    """Return the files posted under `photos` that have a name or content (the empty ones a
    browser sends for an untouched file input are left out).

    Raises:
        RequestEntityTooLarge: when the whole body is over the route's limit.
    """
    return [f for f in request.files.getlist(photos.FIELD) if f.filename or f.content_length]


def too_much_message() -> str:
    """Return the message for a post whose photos together are over the body limit."""
    return (
        f"These photos are too large to send together. Add them a few at a time, each up to "
        f"{photos.max_bytes() // (1024 * 1024)} MB."
    )


def take_post(form: Form, draft: Draft | None, slug: str) -> PhotoPost | None:
    """Store the photos of a photo-step post and do its removal; None for any other step.

    Nothing happens on a post that is not our own page's (the step's validation then says so).
    """
    if draft is None or not is_photo_step(form, slug):
        return None
    result = PhotoPost()
    try:
        files = posted_files()
        if not posted_token_ok(form.slug, draft.token):
            return result
    except RequestEntityTooLarge:
        result.body_refused = True
        result.errors.append(too_much_message())
        return result
    remove = request.form.get("remove_photo", "")
    if remove:
        photos.remove_photo(draft, remove[:64])
        result.stay = True
    if request.form.get("photo_action") == "add":
        result.stay = True
    for upload in files:
        try:
            photos.add_photo(draft, upload.stream)
            result.added += 1
        except imaging.PhotoRefused as exc:
            result.errors.append(message_for(upload, str(exc)))
    return result


def message_for(upload: FileStorage, message: str) -> str:
    """Return a refusal naming the file, so that the person knows which one."""
    name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable())[:NAME_LIMIT]
    return f"{name}: {message}" if name else message


def page_context(form: Form, draft: Draft | None, slug: str, errors: list[str]) -> dict[str, Any]:
    """Return what step.html needs to show the photo field (nothing on other steps)."""
    if not is_photo_step(form, slug):
        return {"photo_step": False}
    token = draft.token if draft else None
    held = photos.draft_photos(draft) if draft else []
    return {
        "photo_step": True,
        "photo_errors": errors,
        "draft_photos": held,
        "photo_thumbs": {p.key: thumb_url(form, token, p.key) for p in held},
        "photo_sizes": {p.key: fit(p.width, p.height, THUMB_SHOWN) for p in held},
        "photo_max": photos.max_count(),
        "photo_max_mb": photos.max_bytes() // (1024 * 1024),
        "photo_accept": imaging.ACCEPT_ATTRIBUTE,
        "photo_upload_url": url_for(".upload_photo", slug=form.slug, d=token) if token else "",
        "photo_remove_url": (
            url_for(".remove_photo_js", slug=form.slug, key="KEY", d=token) if token else ""
        ),
    }


def thumb_url(form: Form, token: str | None, key: str) -> str:
    """Return the URL of a photo's thumbnail for the draft's owner."""
    return url_for(".photo_thumb", slug=form.slug, key=key, d=token)


def fit(width: int, height: int, side: int) -> tuple[int, int]:
    """Return the size of a width x height image shrunk to fit a side x side box."""
    longest = max(width, height, 1)
    scale = min(1.0, side / longest)
    return max(1, round(width * scale)), max(1, round(height * scale))


@bp.context_processor
def review_photo_helpers() -> dict[str, Any]:
    """Give the review page its photos: thumbnails for the draft's owner."""

    def review_photos(form: Form, draft: Draft | None) -> dict[str, Any]:
        if draft is None or not any(
            s["slug"] == photos.PHOTO_STEP for s in form.definition.get("steps", [])
        ):
            return {"items": [], "step_url": ""}
        held = photos.draft_photos(draft)
        items = [
            {
                "url": thumb_url(form, draft.token, p.key),
                "size": fit(p.width, p.height, THUMB_SHOWN),
            }
            for p in held
        ]
        step_url = url_for(".step", slug=form.slug, step=photos.PHOTO_STEP, d=draft.token)
        return {"items": items, "step_url": step_url}

    return {"review_photos": review_photos}

"""A form as a file: download its JSON, upload one (create or update), duplicate a form."""

from __future__ import annotations

from flask import Response, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from ..extensions import db
from ..models import Form
from . import bp, formio
from .audit import record
from .form_editor import IMPORT_MAX_BYTES, FormImportForm, NewFormForm

MAX_SHOWN = 30  # errors flashed at most; the rest are counted


def _back(slug: str | None) -> ResponseReturnValue:
    target = url_for("admin.form_settings", slug=slug) if slug else url_for("admin.forms")
    return redirect(target, code=303)


def _flash_refusal(errors: list[str]) -> None:
    flash("Nothing was changed. Fix these and try again:", "error")
    for message in errors[:MAX_SHOWN]:
        flash(message, "error")
    if len(errors) > MAX_SHOWN:
        flash(f"… and {len(errors) - MAX_SHOWN} more problems.", "error")


@bp.get("/forms/<slug>/export.json")
def form_export(slug: str) -> ResponseReturnValue:
    """Download a form's definition and settings as JSON (docs/forms.md)."""
    form: Form = db.one_or_404(select(Form).where(Form.slug == slug))
    body = formio.dumps(form)
    record("form exported", target=form.slug)
    db.session.commit()
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{form.slug}.json"'},
    )


@bp.post("/forms/import")
def form_import() -> ResponseReturnValue:
    """Create or update the form a JSON file names; all of it, or nothing when it is refused."""
    request.max_content_length = IMPORT_MAX_BYTES + 4096  # this route's own cap
    back = request.form.get("back") or None
    back = back if back and db.session.scalar(select(Form.id).where(Form.slug == back)) else None
    wt = FormImportForm()
    if not wt.validate_on_submit():
        for message in wt.file.errors or ["The page had expired: choose the file again."]:
            flash(str(message), "error")
        return _back(back)
    try:
        data = formio.loads(wt.file.data.read(IMPORT_MAX_BYTES + 1))
        result = formio.import_form(data, publish=bool(wt.publish.data))
    except formio.ImportRefused as exc:
        _flash_refusal(exc.errors)
        return _back(back)
    db.session.commit()
    verb = "Created" if result.created else "Updated"
    flash(f"{verb} the form {result.form.name} from the file.", "success")
    if result.unpublished_because:
        flash(f"Not published: {result.unpublished_because}.", "error")
    return _back(result.form.slug)


@bp.post("/forms/<slug>/duplicate")
def form_duplicate(slug: str) -> ResponseReturnValue:
    """Copy a form's definition and settings under a new slug, unpublished."""
    source: Form = db.one_or_404(select(Form).where(Form.slug == slug))
    wt = NewFormForm()
    if not wt.validate_on_submit():
        _flash_refusal([f"{wt[n].label.text}: {m}" for n, ms in wt.errors.items() for m in ms])
        return _back(source.slug)
    try:
        copy = formio.duplicate_form(source, wt.slug.data or "", (wt.name.data or "").strip())
    except formio.ImportRefused as exc:
        _flash_refusal(exc.errors)
        return _back(slug)
    db.session.commit()
    flash(f"Copied {source.name} to {copy.name}. It is not published yet.", "success")
    return _back(copy.slug)

"""The resume link of an abandoned request: `/f/<slug>/resume/<token>`.

The token is the abandoned request's own (never the draft's): it opens the draft on the
furthest step reached, answers kept, for as long as the draft lives. A wrong or expired token
gets a kind page that offers a fresh start, never an error.
"""

from __future__ import annotations

from flask import redirect, url_for
from flask.typing import ResponseReturnValue

from .. import abandoned, formdefs
from ..timeutil import utcnow
from . import bp, steps
from .tokens import well_formed, with_cookie
from .views import load_form, render_page, step_url


@bp.get("/<slug>/resume/<token>")
def resume(slug: str, token: str) -> ResponseReturnValue:
    """Open an abandoned request's draft where the person stopped."""
    form = load_form(slug)
    draft = abandoned.find_for_resume(form, well_formed(token) or "", now=utcnow())
    if draft is None:
        return render_page(
            "wizard/resume_expired.html",
            form,
            None,
            status=404,
            start_url=url_for(".start", slug=form.slug),
        )
    if draft.submitted_at:
        return with_cookie(redirect(url_for(".done", slug=form.slug, d=draft.token)), form, draft)
    slugs = formdefs.step_slugs(form.definition)
    target = steps.first_incomplete(slugs, draft.completed_steps or [])
    return with_cookie(redirect(step_url(form, target, draft)), form, draft)

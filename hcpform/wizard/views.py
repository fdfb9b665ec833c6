"""Wizard views: load the draft, build the step form, validate, call one domain function, commit."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import (
    abort,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.wrappers import Response

from .. import (
    availability,
    emergency,
    formdefs,
    jobs,
    mailjobs,
    marketing,
    ratelimits,
    submissions,
    validation,
)
from ..extensions import db
from ..formdefs import choices_for
from ..i18n import gettext as _
from ..models import Draft, Form
from ..people import lookup_customer
from ..security import allow_framing_by
from ..timeutil import utcnow
from . import bp, language, steps, uploads, urgent
from .csrf import EXPIRED, make_token, posted_token_ok
from .forms import (
    ATTRIBUTION_FIELDS,
    CONSENT_FIELD,
    HONEYPOT,
    MARKETING_FIELD,
    METHOD_FIELD,
    PREFILL_FIELDS,
    SLOT_FIELD,
    WizardForm,
    build_step_form,
    date_bounds,
    valid_prefill,
)
from .limits import limit_submissions, refuse_over
from .slots import booked_window, days_shown, repeat_rows, service_type_of, slots_for
from .tokens import current_token, given_token, is_embed, well_formed, with_cookie

logger = logging.getLogger(__name__)
NOT_PAGES = {"theme", "photo_thumb"}  # GETs that are no page view (stylesheet, thumbnails)


@bp.before_request
def limit_page_views() -> ResponseReturnValue | None:
    """Refuse wizard pages with the 429 page once one client IP asks for too many."""
    if request.method in ("GET", "HEAD") and request.endpoint:
        if request.endpoint.rsplit(".", 1)[-1] not in NOT_PAGES:
            return refuse_over("page-views", "RATELIMIT_PAGE_VIEWS_PER_IP")
    return None


@bp.before_request
def frame_policy() -> None:
    """Let the iframe variant be framed by the form's allowed domains only."""
    if is_embed():
        slug = (request.view_args or {}).get("slug")
        form = find_form(slug) if slug else None
        allow_framing_by(form.allowed_domains if form else [])


def find_form(slug: str) -> Form | None:
    """Return the form with this slug, read once per request."""
    if g.get("wizard_form_slug") != slug:
        g.wizard_form = db.session.scalar(select(Form).where(Form.slug == slug))
        g.wizard_form_slug = slug
    found: Form | None = g.wizard_form
    return found


def load_form(slug: str) -> Form:
    """Return the published form with this slug, or 404."""
    form = find_form(slug)
    if form is None or not form.published:
        abort(404)
    return form


def step_url(form: Form, slug: str, draft: Draft | None, **extra: Any) -> str:
    """Return the URL of a step (or review/done page) within the current surface."""
    token = draft.token if draft else None
    if slug == steps.REVIEW:
        return url_for(".review", slug=form.slug, d=token, **extra)
    return url_for(".step", slug=form.slug, step=slug, d=token, **extra)


def render_page(
    template: str, form: Form, draft: Draft | None, status: int = 200, **ctx: Any
) -> Response:
    """Render a wizard page with the form's branding and the right base layout."""
    html = render_template(
        template,
        form=form,
        draft=draft,
        embed=is_embed(),
        base="embed/base.html" if is_embed() else "base.html",
        slugs=formdefs.step_slugs(form.definition),
        format_phone=validation.format_phone,
        page_token=make_token(form.slug, draft.token if draft else None),
        **ctx,
    )
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    return with_cookie(response, form, draft)


@bp.get("/<slug>/")
def start(slug: str) -> ResponseReturnValue:
    """Resume a live draft, or show the first step to a new visitor."""
    form = load_form(slug)
    now = utcnow()
    draft = language.load_draft(form, current_token(form), now=now)
    slugs = formdefs.step_slugs(form.definition)
    if draft is not None:
        if draft.submitted_at:
            return redirect(url_for(".done", slug=form.slug, d=draft.token))
        return redirect(step_url(form, steps.first_incomplete(slugs, draft.completed_steps), draft))
    submissions.count_event(form, "start", now=now)
    marketing.count_visit(form, request.args, now=now)
    db.session.commit()
    return show_step(form, None, slugs[0], now=now)


@bp.route("/<slug>/<step>", methods=["GET", "POST"])
def step(slug: str, step: str) -> ResponseReturnValue:
    """Show or save one step."""
    form = load_form(slug)
    now = utcnow()
    slugs = formdefs.step_slugs(form.definition)
    if step not in slugs:
        abort(404)
    token = given_token(form)
    draft = language.load_draft(form, well_formed(token), now=now)
    if draft is None and step != slugs[0]:
        # No draft (expired, or a link without one): begin again, saying why when it expired.
        return redirect(url_for(".start", slug=form.slug, expired=1 if token else None))
    if draft is not None and draft.submitted_at:
        return redirect(url_for(".done", slug=form.slug, d=draft.token))
    completed = draft.completed_steps if draft else []
    if not steps.may_visit(slugs, completed, step):
        return redirect(step_url(form, steps.first_incomplete(slugs, completed), draft))
    if request.method == "GET":
        return show_step(form, draft, step, now=now)
    return save_step(form, draft, step, now=now)


def step_form(
    form: Form,
    draft: Draft | None,
    slug: str,
    *,
    now: datetime,
    formdata: Any = None,
    slots: availability.Availability | None = None,
) -> WizardForm:
    """Build the form of a step, filled from the draft when nothing was posted."""
    definition_step = formdefs.get_step(form.definition, slug)
    assert definition_step is not None, "the views check the step's slug first"
    definition_step = language.translate_step(definition_step)
    answers = dict(draft.answers) if draft else {}
    data = dict(answers.get("_prefill") or {}) | {
        k: v for k, v in answers.items() if not k.startswith("_")
    }
    _, time_name = formdefs.booking_fields(definition_step)
    if time_name and answers.get("_schedule_kind") == availability.BOOKED:
        data[SLOT_FIELD] = answers.get(time_name)
    data[CONSENT_FIELD] = bool(answers.get("_contact_consent"))
    data[MARKETING_FIELD] = bool(answers.get("_marketing_consent"))
    if answers.get("_contact_method"):
        data[METHOD_FIELD] = answers["_contact_method"]
    if draft is not None and (draft.lookup or {}).get("matched"):
        data.setdefault("isFirstTimeClient", "false")  # recognised by phone: a returning client
    if draft is None:  # first page: attribution and allowed prefills ride along hidden
        data.update(_first_page_hidden())
        if request.args.get("zip") and "zip" not in data:
            data["zip"] = request.args["zip"][:10]
    return build_step_form(
        form,
        definition_step,
        draft_token=draft.token if draft else None,
        now=now,
        formdata=formdata,
        data=data,
        first_step=draft is None,
        known=answers,
        slots=slots,
        asap=urgent.emergency_mode(draft),
    )


def _first_page_hidden() -> dict[str, str]:
    """Return the attribution and prefill values the first page carries to the draft."""
    args = request.args
    hidden = {name: args.get(name, "")[:1000] for name in ATTRIBUTION_FIELDS}
    # The loader passes the parent page's URL and referrer; a hosted page has its own.
    hidden["landing_url"] = (args.get("parent_url") or request.url)[:1000]
    hidden["referrer"] = (args.get("parent_referrer") or request.referrer or "")[:1000]
    for name in PREFILL_FIELDS:
        hidden[f"prefill_{name}"] = args.get(name, "")[:100]
    return hidden


def show_step(
    form: Form,
    draft: Draft | None,
    slug: str,
    *,
    now: datetime,
    wtform: WizardForm | None = None,
    status: int = 200,
    slots: availability.Availability | None = None,
    photo_errors: list[str] | None = None,
) -> Response:
    """Render a step page."""
    slugs = formdefs.step_slugs(form.definition)
    if wtform is None:
        slots = slots_for(form, draft, slug, now=now)
        wtform = step_form(form, draft, slug, now=now, slots=slots)
    prev = steps.prev_slug(slugs, slug)
    answers = draft.answers if draft else {}
    return render_page(
        "wizard/step.html",
        form,
        draft,
        status=status,
        wtform=wtform,
        step=language.translate_step(formdefs.get_step(form.definition, slug) or {}),
        number=steps.step_number(slugs, slug),
        total=len(slugs),
        back_url=step_url(form, prev, draft) if prev else None,
        action=step_url(form, slug, draft, **language.lang_arg(draft)),
        languages=language.switch_links(
            lambda code: step_url(form, slug, draft, **language.kept_args(draft), lang=code)
        ),
        date_min_max=date_bounds(form, now),
        emergency=answers.get("urgency") == "emergency" and slug != "service",
        expired=bool(request.args.get("expired")),
        lookup=(draft.lookup or {}) if draft else {},
        slots=slots,
        days_shown=days_shown(slots, wtform),
        taken=bool(request.args.get("taken")),
        urgent=urgent.context(form, draft, slots, now=now),
        **uploads.page_context(form, draft, slug, photo_errors or []),
    )


def save_step(form: Form, draft: Draft | None, slug: str, *, now: datetime) -> ResponseReturnValue:
    """Validate a posted step; on success store it and go to the next page."""
    slugs = formdefs.step_slugs(form.definition)
    slots = slots_for(form, draft, slug, now=now)
    posted = uploads.take_post(form, draft, slug)  # the photo step's files and removals
    photo_errors = posted.errors if posted else []
    if posted is not None:
        db.session.commit()
    formdata = None if posted and posted.body_refused else request.form  # None: saved answers
    wtform = step_form(form, draft, slug, now=now, formdata=formdata, slots=slots)
    back = posted is not None and posted.back_to_step  # "Add photos" or "Remove", not Continue
    if back or not wtform.validate() or photo_errors:
        status = 400 if photo_errors or not back else 200
        return show_step(
            form, draft, slug, now=now, wtform=wtform, status=status, slots=slots,
            photo_errors=photo_errors,
        )  # fmt: skip
    answers = dict(wtform.cleaned)
    if wtform[HONEYPOT].data:
        answers["_honeypot"] = "1"
    if draft is None:
        refused = refuse_over("drafts", "RATELIMIT_DRAFTS_PER_IP")
        if refused is not None:
            return refused
        draft = submissions.start_draft(
            form,
            now=now,
            source="embed" if is_embed() else "hosted",
            attribution={name: wtform[name].data or "" for name in ATTRIBUTION_FIELDS},
            prefill=valid_prefill(form, wtform),
        )
        language.keep(draft)
    result = submissions.save_step(draft, form, slug, answers, now=now)
    db.session.commit()
    phone = answers.get("customer_phone")
    if phone and (draft.lookup or {}).get("phone") != phone:
        # Committed first: the HCP lookup (up to HCP_LOOKUP_TIMEOUT) holds no database lock.
        draft.lookup = lookup_customer(
            phone,
            ip=ratelimits.client_ip(),
            last_name=str(answers.get("customer_lname") or ""),
            email=str(answers.get("customer_email") or ""),
        )
        db.session.commit()
    if result.out_of_area:
        return redirect(url_for(".out_of_area", slug=form.slug, d=draft.token))
    return redirect(step_url(form, steps.next_slug(slugs, slug), draft))


@bp.route("/<slug>/review", methods=["GET", "POST"])
def review(slug: str) -> ResponseReturnValue:
    """Show every answer with change links; POST submits the request (idempotent per draft)."""
    form = load_form(slug)
    now = utcnow()
    slugs = formdefs.step_slugs(form.definition)
    draft = language.load_draft(form, current_token(form), now=now)
    if draft is None:
        return redirect(url_for(".start", slug=form.slug, expired=1))
    if draft.submitted_at and request.method == "GET":
        return redirect(url_for(".done", slug=form.slug, d=draft.token))
    if not steps.may_visit(slugs, draft.completed_steps, steps.REVIEW):
        return redirect(step_url(form, steps.first_incomplete(slugs, draft.completed_steps), draft))
    error = None
    if request.method == "POST":
        if not posted_token_ok(form.slug, draft.token):
            error = _(EXPIRED)
        else:
            return submit(form, draft, now=now)
    return render_page(
        "wizard/review.html",
        form,
        draft,
        status=400 if error else 200,
        rows=review_rows(form, draft),
        error=error,
        back_url=step_url(form, slugs[-1], draft),
        action=step_url(form, steps.REVIEW, draft),
        honeypot=HONEYPOT,
        schedule_kind=(draft.answers or {}).get("_schedule_kind"),
    )


@limit_submissions  # per form and per IP, counted only here (wizard/limits.py)
def submit(form: Form, draft: Draft, *, now: datetime) -> ResponseReturnValue:
    """Commit the submission first, then enqueue its sync; a queue outage only delays it.

    A booked window is checked with HCP again under its lock, and the submission is committed
    inside it: the second of two people racing for the last window is sent back to step 6.
    """
    honeypot = request.form.get(HONEYPOT, "") or draft.answers.get("_honeypot", "")
    window, fresh = booked_window(form, draft), submissions.existing_submission(draft) is None
    if fresh and urgent.wants_asap(form, draft):  # the earliest open window, else unscheduled
        submission = urgent.submit_asap(form, draft, now=now, honeypot=honeypot)
    elif window is None or not fresh:
        submission = submissions.submit(draft, form, now=now, honeypot=honeypot)
        db.session.commit()
    else:
        with availability.window_lock(window) as locked:
            still = (
                availability.still_open(form, service_type_of(form, draft), window, now=now)
                if locked
                else None
            )
            if still is False:
                return window_taken(form, draft, now=now)
            if still is None:  # HCP can't say: keep the request, as a time to confirm by phone
                submissions.as_preference(draft)
            submission = submissions.submit(draft, form, now=now, honeypot=honeypot)
            db.session.commit()
    if submission.status == "pending" and submission.enqueued_at is None:
        if jobs.enqueue_sync(submission.id):
            submission.enqueued_at = utcnow()
            db.session.commit()
    logger.info("Submission %s saved (%s)", submission.reference, submission.status)
    if fresh:
        emergency.alert_office(submission)
        mailjobs.enqueue_for_submission(submission.id)  # queued with it; the sweep retries
    response = redirect(url_for(".done", slug=form.slug, d=draft.token))
    return with_cookie(response, form, draft)


def window_taken(form: Form, draft: Draft, *, now: datetime) -> ResponseReturnValue:
    """Send the person back to the step that picks the time, keeping every other answer."""
    slug = next(
        (s["slug"] for s in form.definition["steps"] if all(formdefs.booking_fields(s))), None
    )
    availability.forget_cached(form, service_type_of(form, draft), now=now)
    submissions.forget_window(draft, form, slug or "", now=now)
    db.session.commit()
    logger.info("📅 The chosen window was taken before submit; back to the schedule step")
    if slug is None:
        return redirect(step_url(form, steps.REVIEW, draft))
    return redirect(step_url(form, slug, draft, taken=1))


def review_rows(form: Form, draft: Draft) -> list[dict[str, Any]]:
    """Return each step's answers as label/value rows for the review page."""
    rows = []
    answers = draft.answers or {}
    booked = answers.get("_schedule_kind") == availability.BOOKED
    for step_def in map(language.translate_step, form.definition["steps"]):
        items = []
        date_name, time_name = formdefs.booking_fields(step_def)
        for field in step_def["fields"]:
            value = answers.get(field["name"], "")
            if (booked or answers.get("_asap")) and field["name"] == date_name:
                continue  # the window's row says the day too (ASAP has no day)
            if (booked or answers.get("_asap")) and field["name"] == time_name:
                items.append({"label": _("Appointment"), "value": answers.get("_window_when", "")})
                continue
            if field["type"] in ("select", "radio"):
                value = language.tr(dict(choices_for(field, form)).get(str(value), value))
            elif field["type"] == "tel" and value:
                value = validation.format_phone(value)
            elif field["type"] == "terms":
                value = _("Accepted") if value else _("Not accepted")
            if value in ("", None) and not field.get("required"):
                continue
            label = field["label"].replace(" (optional)", "").replace(" (opcional)", "")
            items.append({"label": label, "value": value})
        if date_name and time_name:
            items.extend(repeat_rows(form, draft))
        rows.append(
            {
                "title": step_def["title"],
                "url": step_url(form, step_def["slug"], draft),
                "items": items,
            }
        )
    return rows


@bp.get("/<slug>/done")
def done(slug: str) -> ResponseReturnValue:
    """Confirm the request with its reference and what happens next (no personal data shown)."""
    form = load_form(slug)
    now = utcnow()
    draft = language.load_draft(form, well_formed(request.args.get("d")), now=now)
    submission = submissions.existing_submission(draft) if draft else None
    if submission is None:
        return redirect(url_for(".start", slug=form.slug))
    return render_page(
        "wizard/done.html",
        form,
        draft,
        submission=submission,
        when=(draft.answers or {}).get("_window_when", "") if draft else "",
    )


@bp.route("/<slug>/out-of-area", methods=["GET", "POST"])
def out_of_area(slug: str) -> ResponseReturnValue:
    """Say kindly that we don't serve this ZIP yet, and offer to tell them when we do."""
    form = load_form(slug)
    now = utcnow()
    draft = language.load_draft(form, well_formed(request.args.get("d")), now=now)
    if draft is None or submissions.in_service_area(form, draft.answers.get("zip", "")):
        return redirect(url_for(".start", slug=form.slug))
    error, saved = None, False
    if request.method == "POST":
        if not posted_token_ok(form.slug, draft.token):
            error = _(EXPIRED)
        else:
            # Each post that may write a row counts against the client's allowance.
            refused = refuse_over("out-of-area", "RATELIMIT_OUT_OF_AREA_PER_IP")
            if refused is not None:
                return refused
            email = request.form.get("email", "")
            try:
                email = validation.parse_email(email) if email.strip() else ""
            except validation.Invalid as exc:
                error = str(exc)
            else:
                submissions.record_out_of_area(form, draft.answers["zip"], email, now=now)
                db.session.commit()
                saved = True
    return render_page(
        "wizard/out_of_area.html",
        form,
        draft,
        status=400 if error else 200,
        zip_code=draft.answers.get("zip", ""),
        error=error,
        saved=saved,
        back_url=step_url(form, formdefs.step_slugs(form.definition)[0], draft),
        action=url_for(".out_of_area", slug=form.slug, d=draft.token),
    )

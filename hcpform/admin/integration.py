"""The HCP connection page: API key (write-only), connection test, pause, job defaults."""

from __future__ import annotations

import logging

from flask import flash, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from .. import outbox
from ..connection import connection_row, key_source
from ..extensions import db
from ..models import HcpConnection
from . import bp, settings
from .audit import record
from .forms import ApiKeyForm, DefaultsForm, WebhookSecretForm
from .webhook_panel import panel

logger = logging.getLogger(__name__)


def defaults_form(conn: HcpConnection, lists: settings.HcpLists) -> DefaultsForm:
    """Return the defaults form with HCP's lists as choices (current values always kept)."""
    form = DefaultsForm(
        data={
            "lead_source": conn.default_lead_source,
            "tags": ", ".join(conn.default_tags or []),
            "job_type_id": conn.default_job_type_id,
        }
    )
    sources = [(s["name"], s["name"]) for s in lists.lead_sources if s.get("name")]
    if conn.default_lead_source and conn.default_lead_source not in dict(sources):
        sources.append((conn.default_lead_source, f"{conn.default_lead_source} (not found in HCP)"))
    form.lead_source.choices = [("", "None")] + sources
    types = [(jt["id"], jt.get("name") or jt["id"]) for jt in lists.job_types]
    if conn.default_job_type_id and conn.default_job_type_id not in dict(types):
        types.append((conn.default_job_type_id, f"{conn.default_job_type_id} (not found in HCP)"))
    form.job_type_id.choices = [("", "None: use the job type of the service")] + types
    return form


def render_page(
    key_form: ApiKeyForm | None = None,
    status: int = 200,
    *,
    webhook_form: WebhookSecretForm | None = None,
) -> ResponseReturnValue:
    """Render the page; HCP being unreachable only hides its lists."""
    conn = connection_row()
    lists = settings.hcp_lists()
    return (
        render_template(
            "admin/integration.html",
            conn=conn,
            source=key_source(conn),
            key_form=key_form or ApiKeyForm(formdata=None),
            defaults=defaults_form(conn, lists),
            lists=lists,
            waiting=settings.waiting_count(),
            webhook=panel(conn),
            webhook_form=webhook_form or WebhookSecretForm(formdata=None),
            mail=outbox.mail_status(),
        ),
        status,
    )


def _back() -> ResponseReturnValue:
    return redirect(url_for("admin.integration"), code=303)


def _report(result: settings.TestResult) -> None:
    record("connection tested", detail="connected" if result.connected else "disconnected")
    db.session.commit()
    if result.connected:
        sent = f" {result.resumed} waiting submissions are being sent." if result.resumed else ""
        flash(f"Connected. {result.message}.{sent}", "success")
    else:
        flash(f"Disconnected. {result.message}", "error")


@bp.get("/integration")
def integration() -> ResponseReturnValue:
    """Show the connection state, the key (last 4 characters only) and the defaults."""
    return render_page()


@bp.post("/integration/key")
def save_key() -> ResponseReturnValue:
    """Store a new API key (encrypted), then test the connection with it."""
    form = ApiKeyForm()
    if not form.validate_on_submit():
        return render_page(form, 400)
    conn = connection_row()
    settings.save_api_key(conn, form.api_key.data or "")
    record("key saved", detail=f"key ending in {conn.api_key_last4}")
    db.session.commit()
    logger.info("HCP API key saved by admin %s", g.admin.id)
    _report(settings.check_connection())
    return _back()


@bp.post("/integration/test")
def test_connection() -> ResponseReturnValue:
    """Call GET /company with the key in force and show Connected or Disconnected."""
    _report(settings.check_connection())
    return _back()


@bp.post("/integration/pause")
def pause() -> ResponseReturnValue:
    """Pause the sync (manual processing): submissions keep arriving and wait."""
    settings.set_paused(connection_row(), True)
    record("pause")
    db.session.commit()
    flash("Sync is paused. New submissions are saved and wait until you resume.", "success")
    return _back()


@bp.post("/integration/resume")
def resume() -> ResponseReturnValue:
    """Resume the sync; waiting submissions are sent on."""
    resumed = settings.set_paused(connection_row(), False)
    record("resume", detail=f"{resumed} waiting submissions sent on")
    db.session.commit()
    flash(f"Sync is running again. {resumed} waiting submissions are being sent.", "success")
    return _back()


@bp.post("/integration/defaults")
def save_defaults() -> ResponseReturnValue:
    """Store the lead source, tags and default job type."""
    conn = connection_row()
    form = defaults_form(conn, settings.hcp_lists())
    if not form.validate_on_submit():
        flash(
            "Check the defaults: " + "; ".join(e for errs in form.errors.values() for e in errs),
            "error",
        )
        return _back()
    settings.save_defaults(
        conn,
        lead_source=form.lead_source.data or "",
        tags=form.tag_list(),
        job_type_id=form.job_type_id.data or "",
    )
    record("defaults saved")
    db.session.commit()
    flash("Defaults saved.", "success")
    return _back()

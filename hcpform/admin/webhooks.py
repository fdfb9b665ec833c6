"""The webhook signing secret on the Housecall Pro page: store (write-only) or rotate it."""

from __future__ import annotations

import logging

from flask import flash, g, redirect, url_for
from flask.typing import ResponseReturnValue

from ..connection import connection_row
from ..extensions import db
from ..timeutil import utcnow
from ..webhooks import secret
from . import bp
from .audit import record
from .forms import WebhookSecretForm
from .integration import render_page

logger = logging.getLogger(__name__)


@bp.post("/integration/webhook-secret")
def save_webhook_secret() -> ResponseReturnValue:
    """Store HCP's signing secret encrypted; a previous one stays valid for 24 hours."""
    form = WebhookSecretForm()
    if not form.validate_on_submit():
        return render_page(webhook_form=form, status=400)
    conn = connection_row()
    rotated = secret.save(conn, form.secret.data or "", now=utcnow())
    record("webhook secret saved", detail="rotated" if rotated else "first secret")
    db.session.commit()
    logger.info("Webhook signing secret saved by admin %s", g.admin.id)
    if rotated:
        flash(
            "New signing secret saved. Deliveries signed with the previous one are accepted for "
            "24 more hours.",
            "success",
        )
    else:
        flash("Signing secret saved. Verified deliveries will show below.", "success")
    return redirect(url_for("admin.integration") + "#webhooks-h", code=303)


@bp.post("/integration/webhook-secret/previous")
def forget_previous_secret() -> ResponseReturnValue:
    """Stop accepting the previous signing secret now (after a leak, say)."""
    secret.forget_previous(connection_row())
    record("webhook previous secret revoked")
    db.session.commit()
    flash("The previous signing secret is no longer accepted.", "success")
    return redirect(url_for("admin.integration") + "#webhooks-h", code=303)

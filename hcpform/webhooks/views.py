"""`POST /hooks/hcp`: HCP's webhook deliveries (no session, no CSRF: the signature is the
authority). Stores the event and enqueues its apply; HCP gets its answer at once."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from .. import ratelimits
from ..extensions import db
from ..timeutil import utcnow
from . import store, tasks

logger = logging.getLogger(__name__)

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


def _answer(status: int, message: str) -> ResponseReturnValue:
    return jsonify({"ok": status < 300, "message": message}), status


@bp.post("/hcp")
def receive() -> ResponseReturnValue:
    """Answer the handshake; verify, store once and enqueue a signed delivery; else 401."""
    if ratelimits.enabled():
        limits = ratelimits.ip_limits("webhook", "RATELIMIT_WEBHOOK_PER_IP", ratelimits.client_ip())
        wait = ratelimits.hit(limits)
        if wait is not None:
            response = jsonify({"ok": False, "message": "too many requests"})
            response.headers["Retry-After"] = str(int(wait))
            return response, 429
    cap = int(current_app.config["WEBHOOK_MAX_BYTES"])
    request.max_content_length = cap  # this route's own cap, above the app-wide one
    if (request.content_length or 0) > cap:
        return _answer(413, "body too large")
    body = request.get_data(cache=False)
    if len(body) > cap:
        return _answer(413, "body too large")
    received = store.receive(body, request.headers, now=utcnow())
    if received.outcome == "handshake":
        return _answer(200, "ready")
    if received.outcome == "refused":
        db.session.rollback()
        logger.warning("Webhook refused: missing, stale or wrong signature")
        return _answer(401, "invalid signature")
    if received.outcome == "malformed":
        db.session.commit()  # the last-verified time only
        return _answer(400, "the body must be a JSON object with an event")
    db.session.commit()
    if received.outcome == "stored" and received.event_id is not None:
        tasks.enqueue_apply(received.event_id)
    return _answer(200, received.outcome)

"""Changes to the HCP connection and to forms: the key, defaults, pause, settings, mapping."""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from .. import crypto, formdefs
from ..connection import connection_row, key_source, make_client, test_connection
from ..database import create_form_from_template
from ..extensions import db
from ..hcp.client import HcpError
from ..jobs import resume_waiting
from ..models import Form, HcpConnection, Status, Submission, TermsVersion

logger = logging.getLogger(__name__)

# A page that lists HCP's job types must not hang on a slow HCP: read timeout for those calls.
LIST_READ_TIMEOUT = 5.0
# Keys the template uses on more than one step (location asks the ZIP first, contact again).
SHARED_KEYS = frozenset({"zip"})


# ---------------------------------------------------------------- the HCP connection


def save_api_key(conn: HcpConnection, key: str) -> None:
    """Store the key encrypted and bound to this row; only its last 4 characters stay readable."""
    conn.api_key_encrypted = crypto.encrypt(key, bound_to=f"hcp_connection:{conn.id}")
    conn.api_key_last4 = key[-4:]
    conn.state = "unknown"  # a new key has not been tested yet
    db.session.flush()


@dataclass
class TestResult:
    """What a connection test found, and how many waiting submissions it sent on."""

    connected: bool
    message: str
    resumed: int = 0


def check_connection() -> TestResult:
    """Run the connection test (GET /company); when connected, let waiting submissions sync."""
    conn = connection_row()
    if key_source(conn) == "none":
        return TestResult(False, "There is no API key yet: enter one first.")
    try:
        connected, message = test_connection()
    except ValueError:  # the stored key could not be decrypted with the current keys
        return TestResult(False, "The stored key can't be decrypted any more: enter it again.")
    resumed = resume_waiting() if connected and not conn.paused else 0
    return TestResult(connected, message, resumed)


def set_paused(conn: HcpConnection, paused: bool) -> int:
    """Pause or resume the sync; resuming sends waiting submissions on. Return how many."""
    conn.paused = paused
    db.session.commit()
    if paused or conn.state == "disconnected":
        return 0
    return resume_waiting()


def save_defaults(
    conn: HcpConnection, *, lead_source: str, tags: list[str], job_type_id: str
) -> None:
    """Store the job defaults (the caller commits)."""
    conn.default_lead_source = lead_source
    conn.default_tags = tags
    conn.default_job_type_id = job_type_id


@dataclass
class HcpLists:
    """HCP's job types, lead sources and employees for the selects, or why they can't be read."""

    job_types: list[dict[str, Any]] = field(default_factory=list)
    lead_sources: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""
    employees: list[dict[str, Any]] = field(default_factory=list)

    @property
    def job_type_ids(self) -> set[str]:
        """Return the ids of the live job types."""
        return {jt["id"] for jt in self.job_types}


def hcp_lists() -> HcpLists:
    """Read job types, lead sources and employees from HCP (cached by the client); never raise."""
    conn = connection_row()
    if key_source(conn) == "none":
        return HcpLists(problem="There is no API key yet, so HCP's lists can't be read.")
    if conn.state == "disconnected":
        return HcpLists(problem="HCP refused the connection, so its lists can't be read now.")
    try:
        client = make_client()
        client.timeout = (float(current_app.config["HCP_CONNECT_TIMEOUT"]), LIST_READ_TIMEOUT)
        return HcpLists(
            job_types=client.job_types(),
            lead_sources=client.lead_sources(),
            employees=client.employees(),
        )
    except (HcpError, ValueError) as exc:
        logger.warning("Could not read HCP's lists: %s", exc)
        return HcpLists(problem="Housecall Pro could not be reached, so its lists are not shown.")


def waiting_count() -> int:
    """Return how many submissions wait for the connection."""
    from sqlalchemy import func

    return (
        db.session.scalar(
            select(func.count()).select_from(Submission).where(Submission.status == Status.WAITING)
        )
        or 0
    )


# ---------------------------------------------------------------- forms


def publish_problem(definition: dict[str, Any]) -> str:
    """Return why a form with this definition cannot be published ('' when it can)."""
    missing = formdefs.missing_required_keys(definition)
    return formdefs.missing_mappings_message(missing) if missing else ""


def normalise_terms(text: str) -> str:
    """Return terms text with one kind of line ending and no outer blanks."""
    return (text or "").replace("\r\n", "\n").strip()


def apply_form_settings(
    form: Form, values: dict[str, Any], terms: str, *, now: datetime
) -> list[str]:
    """Set the form's settings; a changed terms text becomes a new version. Return what changed."""
    changed = []
    for name, value in values.items():
        if getattr(form, name) != value:
            setattr(form, name, value)
            changed.append(name)
    terms = normalise_terms(terms)
    current = form.current_terms
    if current is None or current.text != terms:
        version = (current.version if current else 0) + 1
        db.session.add(TermsVersion(form_id=form.id, version=version, text=terms, created_at=now))
        changed.append(f"terms (version {version})")
    db.session.flush()
    db.session.expire(form, ["terms_versions"])
    return changed


def mapping_errors(
    definition: dict[str, Any], chosen: list[str | None], *, published: bool
) -> list[str]:
    """Return why this mapping can't be saved: a key used twice, or required keys missing."""
    users: dict[str, list[str]] = defaultdict(list)
    for (step, fdef), key in zip(formdefs.iter_fields(definition), chosen, strict=True):
        if key:
            users[key].append(
                f"{fdef.get('label') or fdef['name']} ({step.get('title') or step['slug']})"
            )
    errors = [
        f"{key} is mapped by more than one field: {', '.join(names)}. Map it once."
        for key, names in users.items()
        if len(names) > 1 and key not in SHARED_KEYS
    ]
    if published:
        missing = [k for k in formdefs.REQUIRED_HCP_KEYS if k not in users]
        if missing:
            errors.append(
                formdefs.missing_mappings_message(missing)
                + ". A published form must map all of them: map them, or unpublish the form first."
            )
    return errors


def apply_mapping(form: Form, chosen: list[str | None]) -> list[str]:
    """Set each field's HCP key; return 'field: old → new' for each change."""
    definition = copy.deepcopy(form.definition)
    changes = []
    for (_, fdef), key in zip(formdefs.iter_fields(definition), chosen, strict=True):
        if (fdef.get("hcp_key") or None) != key:
            changes.append(f"{fdef['name']}: {fdef.get('hcp_key') or '-'} → {key or '-'}")
            fdef["hcp_key"] = key
    form.definition = definition  # a new dict, so SQLAlchemy sees the JSON change
    return changes


def create_form(slug: str, name: str) -> Form:
    """Add a form from the HousecallPro Service Request Template, unpublished for review.

    Raises:
        ValueError: when the slug is taken.
    """
    if db.session.scalar(select(Form.id).where(Form.slug == slug)) is not None:
        raise ValueError(f"The slug {slug} is already used by another form")
    return create_form_from_template(slug, name, published=False)

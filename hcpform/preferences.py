"""How the homeowner wants to be contacted, and their marketing consent (issue 13).

The homeowner-facing texts of the contact step's two questions live here, in one place, so a
translation can replace them later. The consent's wording version is a short hash of its text:
a submission keeps the version it agreed to, and a changed text gets a new version by itself.

Rules (documented in docs/operations.md):
- `notifications_enabled` on a new HCP customer is on when the person chose text or email
  (HCP's own job notifications), off when they asked for a call only.
- The confirmation email goes to every homeowner who gave an email address, whatever they
  chose: it is the one message they asked for by sending the request. Later updates (the job
  created or booked) are emailed only to those who chose email.
"""

from __future__ import annotations

import hashlib

from .i18n import N_

CALL, TEXT, EMAIL = "call", "text", "email"
METHODS: dict[str, str] = {
    CALL: N_("Call me"),
    TEXT: N_("Text me"),
    EMAIL: N_("Email me"),
}
DEFAULT_METHOD = TEXT
METHOD_LEGEND = N_("How would you like us to contact you?")
METHOD_INVALID = N_("Choose call, text or email")
# The job's tag and notes line for each choice: hcp/payloads.py (CONTACT_TAGS, CONTACT_NOTES).

MARKETING_LABEL = N_(
    "Send me occasional offers and maintenance reminders. You can stop them at any time."
)


def consent_version(text: str = MARKETING_LABEL) -> str:
    """Return the wording version of a consent text: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def notifications_enabled(method: str) -> bool:
    """Return HCP's notifications_enabled for a choice (on unless they chose a call only)."""
    return method != CALL


def emails_updates(method: str) -> bool:
    """Return True when the person chose email, so updates after the confirmation are sent."""
    return method == EMAIL

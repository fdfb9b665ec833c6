"""The homeowner's language: ?lang=, else the draft's, else Accept-Language, else the form's.

The choice rides on the draft's answers (`_lang`), so it survives an iframe without cookies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, has_request_context, request
from flask_babel import refresh

from .. import submissions
from ..extensions import db
from ..formdefs import REPEAT_MONTHS, required_message
from ..i18n import gettext, locale_code
from ..models import Draft, Form

SUPPORTED = ("en", "es")
# Each language named in itself, for the switch on every step.
NAMES = {"en": "English", "es": "Español"}


def pick(value: object) -> str | None:
    """Return the supported language code this value names ("es", "es-MX"), or None."""
    if not isinstance(value, str):
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    return code if code in SUPPORTED else None


def requested() -> str | None:
    """Return the language the URL asks for (?lang=es), or None."""
    return pick(request.args.get("lang"))


def select_locale() -> str:
    """Flask-Babel's locale selector: the admin stays English; the wizard follows the homeowner."""
    forced = pick(g.get("forced_lang"))
    if forced:  # i18n.speaking(): an email in the homeowner's language
        return forced
    if not has_request_context():  # the worker, the CLI: English (emails pick their own)
        return "en"
    if (request.blueprint or "").startswith("admin"):
        return "en"
    chosen = requested() or g.get("draft_lang")
    if chosen:
        return str(chosen)
    best = request.accept_languages.best_match(SUPPORTED)
    if best:
        return best
    form = g.get("wizard_form")
    return pick(getattr(form, "language", None)) or "en"


def follow(draft: Draft | None) -> None:
    """Use the draft's language for this request (unless ?lang= says otherwise)."""
    lang = pick((draft.answers or {}).get("_lang")) if draft is not None else None
    if lang != g.get("draft_lang"):
        g.draft_lang = lang
        refresh()


def keep(draft: Draft) -> bool:
    """Store the language of this request on the draft; True when it changed."""
    lang = locale_code()
    if (draft.answers or {}).get("_lang") == lang:
        return False
    draft.answers = {**(draft.answers or {}), "_lang": lang}
    return True


def switch_links(url_for_lang: Any) -> list[dict[str, str]]:
    """Return the other languages as {code, name, url} links; url_for_lang(code) builds each."""
    current = locale_code()
    return [
        {"code": code, "name": NAMES[code], "url": url_for_lang(code)}
        for code in SUPPORTED
        if code != current
    ]


def tr(text: str) -> str:
    """Return a form's own text in the homeowner's language when the catalogue knows it.

    The template form's texts are in the catalogues; a business's own texts are not, and stay
    in the form's language (never an empty label).
    """
    return gettext(text) if text else text


def translate_step(step: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a definition's step whose texts are in the homeowner's language."""
    out = dict(step)
    for key in ("title", "heading"):
        if out.get(key):
            out[key] = tr(out[key])
    fields = []
    for field in step.get("fields", []):
        copy = dict(field)
        copy["required_message"] = tr(required_message(field))
        for key in ("label", "hint"):
            if copy.get(key):
                copy[key] = tr(copy[key])
        if isinstance(copy.get("options"), list):
            copy["options"] = [[v, tr(str(label))] for v, label in copy["options"]]
        fields.append(copy)
    out["fields"] = fields
    return out


def load_draft(form: Form, token: str | None, *, now: datetime) -> Draft | None:
    """Return the live draft (as submissions.load_draft) and speak its language from now on."""
    draft = submissions.load_draft(form, token, now=now)
    follow(draft)
    if draft is not None and requested() and not draft.submitted_at:
        if keep(draft):  # the switch on a step: the draft speaks the new language
            db.session.commit()
    return draft


def lang_arg(draft: Draft | None) -> dict[str, str]:
    """Return {"lang": …} for a first page opened with ?lang= (no draft carries it yet)."""
    lang = requested()
    return {"lang": lang} if lang and draft is None else {}


def kept_args(draft: Draft | None) -> dict[str, str]:
    """Return the first page's query (attribution, prefills) for its language switch."""
    if draft is not None:
        return {}
    return {k: v for k, v in request.args.items() if k not in ("lang", "expired", "d")}


def repeat_words(frequency: str) -> str:
    """Return formdefs.repeat_label in the homeowner's language: "every 3 months" ('' for none)."""
    months = REPEAT_MONTHS.get(frequency)
    if months is None:
        return ""
    if months == 1:
        return gettext("every month")
    if months == 12:
        return gettext("every year")
    return gettext("every %(count)s months", count=months)

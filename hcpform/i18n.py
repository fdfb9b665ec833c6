"""The homeowner's language, typed: gettext for messages, and dates written the locale's way.

Outside a request (the worker, the CLI) there is no locale: texts stay English.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from babel.dates import format_date, format_skeleton
from flask import g
from flask_babel import get_locale, refresh
from flask_babel import gettext as _gettext


def N_(string: str) -> str:
    """Mark a constant for the catalogue; it is translated where it is shown (gettext(NAME))."""
    return string


def gettext(string: str, **variables: Any) -> str:
    """Return the message in the current language (% variables filled in)."""
    return str(_gettext(string, **variables))


def locale_code() -> str:
    """Return the current language code ("en" outside a request)."""
    try:
        locale = get_locale()
    except RuntimeError:  # no app context
        locale = None
    return str(locale or "en")


def day_month(day: date) -> str:
    """Return "December 1" / "1 de diciembre"."""
    return format_skeleton("MMMMd", day, locale=locale_code())


def day_month_year(day: date) -> str:
    """Return "December 1, 2026" / "1 de diciembre de 2026"."""
    return format_skeleton("yMMMMd", day, locale=locale_code())


def weekday_day_month(day: date) -> str:
    """Return "Monday, December 1" / "lunes, 1 de diciembre"."""
    locale = locale_code()
    pattern = {"en": "EEEE, MMMM d", "es": "EEEE, d 'de' MMMM"}.get(locale)
    if pattern is None:
        return format_skeleton("MMMMEEEEd", day, locale=locale)
    return format_date(day, pattern, locale=locale)


def weekdays(day: date) -> str:
    """Return the weekday in the plural: "Sundays" / "domingos" ("lunes" stays "lunes")."""
    name = format_date(day, "EEEE", locale=locale_code())
    return name if name.endswith("s") else name + "s"


# The texts static/js/wizard.js writes itself (English is its own fallback); a page in another
# language carries them translated on <body data-messages>.
JS_MESSAGES = (
    N_("You have %(count)s characters remaining"),
    N_("You have %(count)s characters too many"),
    N_("Photo %(number)s you added"),
    N_("Remove photo"),
    N_("%(name)s: This photo is larger than %(mb)s MB. Choose a smaller one."),
    N_("Sending %(name)s"),
    N_("%(added)s of %(count)s photos added."),
    N_("%(name)s: The photo couldn't be sent. Check your connection and try again."),
    N_("The photo couldn't be removed. Try again."),
    N_("Wait a moment: your photos are still being sent."),
)


def js_messages() -> dict[str, str]:
    """Return wizard.js's texts in the current language, keyed by their English."""
    return {text: str(_gettext(text)) for text in JS_MESSAGES}


@contextmanager
def speaking(lang: str) -> Iterator[None]:
    """Use this language inside the block (an email to the homeowner, rendered in the worker).

    Per app context (flask.g), so other threads keep their own language.
    """
    before = g.get("forced_lang")
    g.forced_lang = lang
    refresh()
    try:
        yield
    finally:
        g.forced_lang = before
        refresh()

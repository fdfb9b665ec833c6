"""Pure validation and normalisation of wizard answers: ZIPs, phones, emails, dates, text.

Code-like values (ZIP, phone, date) are NFKC-normalised first, so digits typed on a full-width
keyboard count, and then must be plain ASCII: a digit of another script, a zero-width character
or anything else passes no further, whatever Python's Unicode-aware `\\d` would say. Parsers
(phonenumbers, email_validator, and the ZIP table of `zipgeo`) are called through `_contained`:
a failure of theirs, even a Rust panic (a BaseException), becomes the field's own message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import phonenumbers
from email_validator import validate_email

from . import zipgeo
from .hcp.matching import display_phone
from .i18n import N_, day_month, day_month_year, gettext, weekdays

T = TypeVar("T")  # what a contained call returns
ZIP_RE = re.compile(r"^([0-9]{5})(?:-([0-9]{4}))?$", re.ASCII)
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", re.ASCII)
# What people type in a phone number: digits, +, spaces, ( ) . - /, and an extension.
PHONE_RE = re.compile(
    r"^\+?[0-9 ().\-/]{4,30}(?:\s*(?:x|ext\.?|extension|#)\s*[0-9]{1,7})?$", re.ASCII | re.I
)
# Exceptions a library call must never swallow: the process is being stopped or torn down.
_FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit)
# Invisible characters pasted along with text (zero-width space, word joiner, BOM, soft hyphen):
# removed silently, they mean nothing to the reader.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad\u180e"), None)
# Format characters that real writing needs: joiners in emoji sequences and in Indic, Arabic and
# Persian words. Every other format character (bidi overrides and isolates among them) is refused.
_KEEP_FORMAT = {"\u200c", "\u200d"}
_REFUSED = {"Cc", "Cf", "Cs", "Co"}  # control, format, surrogate, private use
MAX_MARKS = 4  # combining marks on one letter; more is "Zalgo" text, never a real name


class Invalid(ValueError):
    """A value a person typed that we cannot accept; the message is shown to them."""


def _contained(message: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a third-party parser; turn any failure of its own (a panic too) into Invalid(message).

    Raises:
        Invalid: when the call raised anything but a request to stop the process.
    """
    try:
        return call(*args, **kwargs)
    except _FATAL:
        raise
    except BaseException as exc:  # noqa: BLE001  a Rust panic is a BaseException
        raise Invalid(message) from exc


def code_text(value: object) -> str:
    """Return a code-like value (ZIP, phone, date, token) NFKC-normalised and trimmed."""
    text = "" if value is None else str(value)
    return unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).strip()


def clean_text(value: object, *, max_length: int, multiline: bool = False) -> str:
    """Return trimmed text in NFC, refusing control and format characters and overlong input.

    Invisible characters pasted by accident are dropped, every kind of space becomes a space,
    and line breaks are refused unless the field is multiline.

    Raises:
        Invalid: with a message for the person.
    """
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE))
    text = "".join(" " if unicodedata.category(ch) == "Zs" else ch for ch in text).strip()
    allowed = {"\n", "\t"} if multiline else set()
    marks = 0
    for ch in text:
        category = unicodedata.category(ch)
        if category in _REFUSED and ch not in allowed and ch not in _KEEP_FORMAT:
            if ch in "\n\t":
                raise Invalid(gettext("Use a single line here."))
            raise Invalid(gettext("Remove the special characters that can't be used here."))
        marks = marks + 1 if category in ("Mn", "Me") else 0
        if marks > MAX_MARKS:
            raise Invalid(gettext("Remove the extra accent marks stacked on one letter."))
    if len(text) > max_length:
        raise Invalid(
            gettext(
                "Use %(most)s characters or fewer (you have %(count)s).",
                most=f"{max_length:,}",
                count=f"{len(text):,}",
            )
        )
    return text


@dataclass(frozen=True)
class ZipInfo:
    """What the offline ZIP database knows about a ZIP code."""

    zip5: str
    city: str
    state: str
    # Every city name the Postal Service accepts for this ZIP (the main one first).
    cities: tuple[str, ...] = field(default=(), compare=False)


@lru_cache(maxsize=4096)
def _zip_lookup(zip5: str) -> ZipInfo | None:
    match = ZIP_RE.match(zip5)
    if not match:  # the table is only ever asked about 5 ASCII digits
        return None
    try:  # a damaged table (a broken install) is logged by zipgeo; here it is "no such ZIP"
        record = _contained("no such ZIP", zipgeo.lookup, match.group(1))
    except Invalid:
        return None
    if record is None:
        return None
    cities: list[str] = []
    for name in (record.city, *record.acceptable_cities):
        if name and name.title() not in cities:
            cities.append(name.title())
    return ZipInfo(zip5=zip5, city=record.city.title(), state=record.state, cities=tuple(cities))


def zip_info(zip5: str) -> ZipInfo | None:
    """Return what the offline ZIP database knows of a 5-digit ZIP, or None (never raises)."""
    return _zip_lookup(zip5)


def parse_zip(value: object) -> tuple[str, ZipInfo]:
    """Return (the ZIP as typed, normalised, and what the ZIP database knows of it).

    Raises:
        Invalid: when it is not 5 digits / ZIP+4 or no such ZIP exists.
    """
    text = re.sub(r"\s+", "", code_text(value))
    match = ZIP_RE.match(text)
    if not match:
        raise Invalid(
            gettext("Enter a ZIP code of 5 digits, like 60614 (or ZIP+4, like 60614-1234).")
        )
    info = _zip_lookup(match.group(1))
    if info is None:
        raise Invalid(
            gettext(
                "We couldn't find ZIP %(zip)s. Check the number and try again.", zip=match.group(1)
            )
        )
    return text, info


# -- city and state against the ZIP ---------------------------------------------------------

# Spellings of the same word in US place names; each maps to one canonical form.
_PLACE_WORDS = {
    "saint": "st", "st": "st", "sainte": "ste", "ste": "ste", "fort": "ft", "ft": "ft",
    "mount": "mt", "mt": "mt", "mountain": "mtn", "mtn": "mtn", "point": "pt", "pt": "pt",
    "port": "prt", "prt": "prt", "north": "n", "n": "n", "south": "s", "s": "s",
    "east": "e", "e": "e", "west": "w", "w": "w", "heights": "hts", "hts": "hts",
    "springs": "spgs", "spgs": "spgs", "spring": "spg", "spg": "spg", "junction": "jct",
    "jct": "jct", "township": "twp", "twp": "twp", "village": "vlg", "vlg": "vlg",
    "center": "ctr", "centre": "ctr", "ctr": "ctr", "lake": "lk", "lk": "lk", "beach": "bch",
    "bch": "bch", "island": "is", "is": "is", "falls": "fls", "fls": "fls", "city": "cty",
    "cty": "cty", "san": "sn", "sn": "sn",
}  # fmt: skip
_STATE_NAMES: dict[str, str] = {}


def place_key(value: str) -> str:
    """Return a city name reduced to compare spellings (`St. Louis` == `saint louis`)."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    return "".join(_PLACE_WORDS.get(w, w) for w in words)


def state_code(value: str) -> str:
    """Return a US state as its 2-letter code, from the code or the name (else as typed)."""
    from .formdefs import US_STATES

    if not _STATE_NAMES:
        _STATE_NAMES.update({place_key(name): code for code, name in US_STATES})
    text = code_text(value)
    if len(text) == 2 and text.isascii():
        return text.upper()
    return _STATE_NAMES.get(place_key(text), text.upper())


def address_mismatch(city: str, state: str, zip_code: str) -> ZipInfo | None:
    """Return what the ZIP says when the city or state typed is not one of its names, else None.

    An unknown ZIP or an empty city is not a mismatch here: the ZIP field says so itself.
    """
    info = _zip_lookup(code_text(zip_code)[:5])
    if info is None or not city.strip():
        return None
    if state_code(state) == info.state and place_key(city) in {
        place_key(name) for name in info.cities or (info.city,)
    }:
        return None
    return info


# -- phones ----------------------------------------------------------------------------------

PHONE_HINT = N_("Enter a phone number like (312) 555-0123.")


def parse_phone(value: object, region: str = "US") -> str:
    """Return the phone number in E.164, read in `region` unless it starts with +country.

    Raises:
        Invalid: when it is not a valid number.
    """
    text = code_text(value)
    if not text:
        raise Invalid(gettext("Enter your phone number."))
    if not PHONE_RE.match(text):
        raise Invalid(gettext(PHONE_HINT))
    number = _contained(PHONE_HINT, phonenumbers.parse, text, region)
    if not _contained(PHONE_HINT, phonenumbers.is_valid_number, number):
        raise Invalid(gettext("That phone number isn't valid. Enter it like (312) 555-0123."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(e164: str) -> str:
    """Return a stored E.164 number the way people read it: (312) 555-0123 for US numbers."""
    return display_phone(e164)


# -- email -----------------------------------------------------------------------------------

EMAIL_HINT = N_("Enter an email address like name@example.com.")


def parse_email(value: object) -> str:
    """Return the normalised email address (syntax only; no DNS lookups).

    Raises:
        Invalid: when it is not a valid address.
    """
    text = clean_text(value, max_length=254)
    if not text:
        raise Invalid(gettext("Enter your email address."))
    if any(ch.isspace() for ch in text):
        raise Invalid(gettext(EMAIL_HINT))
    # EmailNotValidError, and anything else the library raises, becomes the field's message.
    return _contained(EMAIL_HINT, validate_email, text, check_deliverability=False).normalized


def normalise_email(value: str) -> str:
    """Return the form of an email used to compare two addresses."""
    return value.strip().lower()


def today_in(tz_name: str, now: datetime) -> date:
    """Return today's date in the business's time zone."""
    return now.astimezone(ZoneInfo(tz_name)).date()


def parse_booking_date(
    value: object,
    *,
    now: datetime,
    tz_name: str,
    horizon_days: int,
    closed_weekdays: list[int],
    closed_dates: list[str],
) -> date:
    """Return the chosen date when the business can take it: tomorrow up to the horizon.

    Raises:
        Invalid: naming what is wrong with the date.
    """
    text = code_text(value)
    if not text:
        raise Invalid(gettext("Choose a preferred date."))
    try:
        if not DATE_RE.match(text):  # fromisoformat also takes 20261201 and week dates
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise Invalid(gettext("Enter the date as YYYY-MM-DD, for example 2026-12-01.")) from exc
    today = today_in(tz_name, now)
    first, last = today + timedelta(days=1), today + timedelta(days=horizon_days)
    if day <= today:
        raise Invalid(
            gettext(
                "Choose a date from tomorrow (%(day)s) on; that date has passed.",
                day=day_month(first),
            )
        )
    if day > last:
        raise Invalid(
            gettext(
                "Choose a date up to %(count)s days ahead (by %(day)s).",
                count=horizon_days,
                day=day_month_year(last),
            )
        )
    if day.weekday() in closed_weekdays:
        raise Invalid(
            gettext("We're closed on %(weekdays)s. Choose another day.", weekdays=weekdays(day))
        )
    if day.isoformat() in closed_dates:
        raise Invalid(gettext("We're closed on %(day)s. Choose another day.", day=day_month(day)))
    return day


def window_bounds(day: date, window: dict[str, Any], tz_name: str) -> tuple[datetime, datetime]:
    """Return the aware start and end of a time window on a day, in the business's zone."""
    tz = ZoneInfo(tz_name)
    start = datetime.combine(day, time.fromisoformat(window["start"]), tz)
    end = datetime.combine(day, time.fromisoformat(window["end"]), tz)
    return start, end

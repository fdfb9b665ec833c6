"""Pure validation and normalisation of wizard answers: ZIPs, phones, emails, dates, text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
import zipcodes
from email_validator import EmailNotValidError, validate_email

ZIP_RE = re.compile(r"^(\d{5})(?:-(\d{4}))?$")
# Letters, marks, digits, spaces and the punctuation names and addresses really use.
_CONTROL = {"Cc", "Cf", "Cs", "Co", "Cn"}


class Invalid(ValueError):
    """A value a person typed that we cannot accept; the message is shown to them."""


def clean_text(value: object, *, max_length: int, multiline: bool = False) -> str:
    """Return trimmed text, refusing control characters (NUL included) and overlong input.

    Raises:
        Invalid: with a message for the person.
    """
    text = "" if value is None else str(value)
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()
    allowed = {"\n", "\t"} if multiline else set()
    if any(unicodedata.category(ch) in _CONTROL and ch not in allowed for ch in text):
        raise Invalid("Remove the special characters that can't be used here.")
    if len(text) > max_length:
        raise Invalid(f"Use {max_length:,} characters or fewer (you have {len(text):,}).")
    return text


@dataclass(frozen=True)
class ZipInfo:
    """What the offline ZIP database knows about a ZIP code."""

    zip5: str
    city: str
    state: str


@lru_cache(maxsize=4096)
def _zip_lookup(zip5: str) -> ZipInfo | None:
    try:
        rows = zipcodes.matching(zip5)
    except (ValueError, TypeError):
        return None
    if not rows:
        return None
    row = rows[0]
    return ZipInfo(zip5=zip5, city=row["city"].title(), state=row["state"])


def parse_zip(value: object) -> tuple[str, ZipInfo]:
    """Return (the ZIP as typed, normalised, and what the ZIP database knows of it).

    Raises:
        Invalid: when it is not 5 digits / ZIP+4 or no such ZIP exists.
    """
    text = ("" if value is None else str(value)).strip().replace(" ", "")
    match = ZIP_RE.match(text)
    if not match:
        raise Invalid("Enter a ZIP code of 5 digits, like 60614 (or ZIP+4, like 60614-1234).")
    info = _zip_lookup(match.group(1))
    if info is None:
        raise Invalid(f"We couldn't find ZIP {match.group(1)}. Check the number and try again.")
    return text, info


def parse_phone(value: object, region: str = "US") -> str:
    """Return the phone number in E.164.

    Raises:
        Invalid: when it is not a valid number.
    """
    text = clean_text(value, max_length=32)
    if not text:
        raise Invalid("Enter your phone number.")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise Invalid("Enter a phone number like (312) 555-0123.") from exc
    if not phonenumbers.is_valid_number(number):
        raise Invalid("That phone number isn't valid. Enter it like (312) 555-0123.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(e164: str) -> str:
    """Return a stored E.164 number the way people read it: (312) 555-0123 for US numbers."""
    try:
        number = phonenumbers.parse(e164, "US")
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code == 1:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def phone_digits(e164: str) -> str:
    """Return the national digits of a phone number (what HCP stores: 3125550123)."""
    try:
        return str(phonenumbers.parse(e164, "US").national_number)
    except phonenumbers.NumberParseException:
        return re.sub(r"\D", "", e164)[-10:]


def parse_email(value: object) -> str:
    """Return the normalised email address (syntax only; no DNS lookups).

    Raises:
        Invalid: when it is not a valid address.
    """
    text = clean_text(value, max_length=254)
    if not text:
        raise Invalid("Enter your email address.")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid("Enter an email address like name@example.com.") from exc
    return result.normalized


def normalise_email(value: str) -> str:
    """Return the form of an email used to compare two addresses."""
    return value.strip().lower()


def normalise_street(value: str) -> str:
    """Return a street reduced to compare two spellings (`12 Main St.` == `12 main street`)."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    words = [_STREET_ABBREVIATIONS.get(w, w) for w in text.split()]
    return " ".join(words)


_STREET_ABBREVIATIONS = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr", "lane": "ln",
    "boulevard": "blvd", "court": "ct", "place": "pl", "terrace": "ter", "circle": "cir",
    "highway": "hwy", "parkway": "pkwy", "north": "n", "south": "s", "east": "e", "west": "w",
    "apartment": "apt", "suite": "ste",
}  # fmt: skip


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
    text = ("" if value is None else str(value)).strip()
    if not text:
        raise Invalid("Choose a preferred date.")
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise Invalid("Enter the date as YYYY-MM-DD, for example 2026-12-01.") from exc
    today = today_in(tz_name, now)
    first, last = today + timedelta(days=1), today + timedelta(days=horizon_days)
    if day <= today:
        raise Invalid(f"Choose a date from tomorrow ({first:%B %-d}) on; that date has passed.")
    if day > last:
        raise Invalid(f"Choose a date up to {horizon_days} days ahead (by {last:%B %-d, %Y}).")
    if day.weekday() in closed_weekdays:
        raise Invalid(f"We're closed on {day:%A}s. Choose another day.")
    if day.isoformat() in closed_dates:
        raise Invalid(f"We're closed on {day:%B %-d}. Choose another day.")
    return day


def window_bounds(day: date, window: dict, tz_name: str) -> tuple[datetime, datetime]:
    """Return the aware start and end of a time window on a day, in the business's zone."""
    tz = ZoneInfo(tz_name)
    start = datetime.combine(day, time.fromisoformat(window["start"]), tz)
    end = datetime.combine(day, time.fromisoformat(window["end"]), tz)
    return start, end

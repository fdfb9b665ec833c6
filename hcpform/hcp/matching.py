"""Who is who in HCP: matching a request's person and address to HCP's customers and addresses.

Pure functions, no I/O: phones compared in E.164, emails and last names normalised, streets and
units reduced to a comparable form. The sync (sync/steps.py) and the wizard's lookup (people.py)
decide with these which customer and address to reuse.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import phonenumbers

from .types import ServiceRequest

PHONE_KEYS = ("mobile_number", "home_number", "work_number")
# A unit word says nothing about which unit: "Apt 2", "Unit 2" and "# 2" are the same one.
UNIT_WORDS = frozenset({"apt", "unit", "ste", "no"})


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


def phone_e164(value: str | None) -> str:
    """Return a phone number as E.164, reading one without a country code as US; "" if unreadable.

    HCP keeps bare digits, so an international number saved there may have lost its "+": digits
    that are no valid US number are read once more as a number with its country code.
    """
    text = (value or "").strip()
    if not text:
        return ""
    number = _parse_phone(text, "US")
    if (number is None or not phonenumbers.is_valid_number(number)) and not text.startswith("+"):
        digits = re.sub(r"\D", "", text)
        if len(digits) > 10:
            international = _parse_phone("+" + digits, None)
            if international is not None and phonenumbers.is_valid_number(international):
                number = international
    if number is None:
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def hcp_phone(e164: str) -> str:
    """Return a number the way we send it to HCP: US national digits, else E.164 (never folded)."""
    number = _parse_phone(e164 or "", "US")
    if number is None:
        return re.sub(r"[^\d+]", "", e164 or "")
    if number.country_code == 1:
        return str(number.national_number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_query(e164: str) -> str:
    """Return the `q` that finds a number in HCP's customer search (which matches digits)."""
    return hcp_phone(e164).lstrip("+")


def display_phone(e164: str) -> str:
    """Return a number as people read it: (312) 555-0123 in the US, +44 20 7946 0958 elsewhere."""
    number = _parse_phone(e164 or "", "US")
    if number is None:
        return e164 or ""
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)


def normalise_name(value: str | None) -> str:
    """Return a name reduced to compare two spellings: no case, accents or whitespace."""
    text = unicodedata.normalize("NFKD", value or "")
    return "".join(c for c in text if not unicodedata.combining(c) and not c.isspace()).casefold()


def same_last_name(customer: dict[str, Any], last_name: str | None) -> bool:
    """Return True when the HCP customer's last name is this one (an empty name never matches)."""
    wanted = normalise_name(last_name)
    return bool(wanted) and normalise_name(customer.get("last_name")) == wanted


def customer_matches(
    customer: dict[str, Any], *, phone: str, email: str | None, last_name: str | None = None
) -> str | None:
    """Return 'phone' or 'email' when an HCP customer is this person, else None.

    A mobile number is the person's own: it matches alone. A home or work number is shared by a
    household or an office, and an email by a couple: they match only with the last name too.
    """
    wanted = phone_e164(phone)
    if wanted:
        if phone_e164(customer.get("mobile_number")) == wanted:
            return "phone"
        if same_last_name(customer, last_name) and any(
            phone_e164(customer.get(key)) == wanted for key in ("home_number", "work_number")
        ):
            return "phone"
    same_email = bool(email) and normalise_email(customer.get("email") or "") == normalise_email(
        email or ""
    )
    if same_email and same_last_name(customer, last_name):
        return "email"
    return None


def submission_matches(customer: dict[str, Any], sub: ServiceRequest) -> str | None:
    """Return how an HCP customer is the person of this submission ('phone', 'email'), or None."""
    return customer_matches(customer, phone=sub.phone, email=sub.email, last_name=sub.last_name)


def shares_contact(customer: dict[str, Any], *, phone: str, email: str | None) -> bool:
    """Return True when an HCP customer has this phone (any of its numbers) or this email."""
    wanted = phone_e164(phone)
    if wanted and any(phone_e164(customer.get(key)) == wanted for key in PHONE_KEYS):
        return True
    email = normalise_email(email or "")
    return bool(email) and normalise_email(customer.get("email") or "") == email


def possible_duplicate(customer: dict[str, Any], sub: ServiceRequest) -> bool:
    """Return True when a customer that is not a match shares the email or a number with sub."""
    wanted = phone_e164(sub.phone)
    if wanted and any(phone_e164(customer.get(key)) == wanted for key in PHONE_KEYS):
        return True
    email = normalise_email(sub.email or "")
    return bool(email) and normalise_email(customer.get("email") or "") == email


def typed_differences(customer: dict[str, Any], sub: ServiceRequest) -> dict[str, str]:
    """Return what a returning customer typed that HCP has otherwise, by field name.

    HCP's record stays as it is (the office decides); the values go to HCP's job notes only,
    never to logs (log the keys).
    """
    found = {}
    if normalise_email(sub.email or "") != normalise_email(customer.get("email") or ""):
        found["email"] = f"email {sub.email or 'none'} (HCP has {customer.get('email') or 'none'})"
    typed_name = f"{sub.first_name} {sub.last_name}".strip()
    hcp_name = " ".join(
        n.strip() for n in (customer.get("first_name") or "", customer.get("last_name") or "")
    ).strip()
    if normalise_name(typed_name) != normalise_name(hcp_name):
        found["name"] = f"name {typed_name or 'none'} (HCP has {hcp_name or 'none'})"
    hcp_mobile = customer.get("mobile_number") or ""
    if phone_e164(sub.phone) != phone_e164(hcp_mobile):
        shown = display_phone(phone_e164(hcp_mobile) or hcp_mobile) if hcp_mobile else "none"
        found["mobile"] = f"mobile {display_phone(sub.phone)} (HCP has {shown})"
    return found


def differences_note(differences: dict[str, str]) -> str:
    """Return the job note line for typed differences ("" when there are none)."""
    return ("Typed in the request: " + "; ".join(differences.values())) if differences else ""


def find_address(addresses: list[dict[str, Any]], sub: ServiceRequest) -> dict[str, Any] | None:
    """Return the customer's address with the same street, unit (street line 2) and ZIP, if any."""
    street, unit, zip5 = normalise_street(sub.street), _unit(sub.street_line_2), (sub.zip or "")[:5]
    for address in addresses:
        if (
            normalise_street(address.get("street") or "") == street
            and _unit(address.get("street_line_2")) == unit
            and (address.get("zip") or "")[:5] == zip5
        ):
            return address
    return None


def _unit(value: str | None) -> str:
    """Return street line 2 reduced to the unit itself: "Apt. 2B", "unit 2b" and "#2B" agree."""
    return " ".join(w for w in normalise_street(value or "").split() if w not in UNIT_WORDS)


# -- estimates and leads --------------------------------------------------------------------

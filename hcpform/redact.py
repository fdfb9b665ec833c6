"""Mask personal data (emails, phones, street addresses), secrets in URLs, and control characters
in log text."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["RedactingFilter", "install_redaction", "redact"]

# Local part and domain of an address; "%40" catches emails inside URL-encoded query strings
# (e.g. urllib3's debug line for GET /customers?q=...).
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])([A-Za-z0-9][A-Za-z0-9._%+\-]{0,63})(@|%40)"
    r"((?:[A-Za-z0-9\-]{1,63}\.)+[A-Za-z]{2,63})(?![A-Za-z0-9\-])",
)

_SEP = r"(?:[ \t.\-]|%20)?"
# North American numbers with or without +1/1: the area code must start with 2-9, which keeps
# 10-digit Unix timestamps (1xxxxxxxxx) and HTTP statuses out; the word-boundary guards keep
# digits inside ids (cus_..., UUID groups) out.
_US_PHONE = (
    r"(?:(?:\+|%2[Bb])?1" + _SEP + r")?"
    r"(?:\(\s*[2-9]\d{2}\s*\)|[2-9]\d{2})" + _SEP + r"\d{3}" + _SEP + r"\d{4}"
)
# E.164 and other international numbers must carry their "+" (or "%2B" when URL-encoded).
_INTL_PHONE = r"(?:\+|%2[Bb])\d(?:" + _SEP + r"(?:\(\d{1,4}\)|\d)){7,14}"
_PHONE = re.compile(r"(?<![\w+%])(?:" + _INTL_PHONE + "|" + _US_PHONE + r")(?![\w])")

_STREET_SUFFIXES = (
    "St|Street|Ave|Av|Avenue|Rd|Road|Dr|Drive|Ln|Lane|Blvd|Boulevard|Ct|Court|Way|Pl|Place|"
    "Ter|Terrace|Cir|Circle|Pkwy|Parkway|Hwy|Highway|Sq|Square|Trl|Trail|Pike|Aly|Alley|"
    "Cres|Crescent|Plz|Plaza|Expy|Expressway|Fwy|Freeway|Xing|Crossing|Cv|Cove|Rdg|Ridge"
)
# "<number> <1-5 words> <suffix>", e.g. "123 N Main St.", "4500 Old Mill Road"; case-insensitive
# because homeowners type addresses in every case. Suffixes that are common English words in
# log lines (Run, Pass, Path, Walk, Loop, Row, Point) are left out on purpose, and the words
# may not be bare numbers, so "3 at 1 Oak Rd" masks only "1 Oak Rd".
_STREET = re.compile(
    r"(?<![\w/\-•])\d{1,6}[A-Za-z]?(?:[ \t]+(?!\d+\b)[A-Za-z0-9][A-Za-z0-9.'\-]*){1,5}?[ \t]+"
    r"(?:" + _STREET_SUFFIXES + r")\b\.?",
    re.IGNORECASE,
)

# Query values that are secrets or personal in any URL a log line shows (request lines of access
# logs, redirects, referrers): `d` is a draft token (whoever has it can read and send that
# person's draft), `q` and the others are what staff searched for.
SECRET_QUERY_PARAMS = ("d", "q", "email", "phone", "token")
_QUERY_SECRET = re.compile(
    r"([?&](?:amp;)?(?:" + "|".join(SECRET_QUERY_PARAMS) + r")=)[^&\s\"'#]+", re.IGNORECASE
)
REDACTED = "[redacted]"

_DIGIT = re.compile(r"\d")
_URL_ESCAPE = re.compile(r"%2[0Bb]")

# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators: a value that
# contains them could forge extra log lines (OWASP log injection, ASVS 16.4.1).
_CONTROL_TABLE: dict[int, str] = {
    **{c: f"\\x{c:02x}" for c in range(0x20)},
    0x7F: "\\x7f",
    **{c: f"\\x{c:02x}" for c in range(0x80, 0xA0)},
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _mask_email(match: re.Match[str]) -> str:
    return f"{match.group(1)[0]}***{match.group(2)}{match.group(3)}"


def _mask_phone(match: re.Match[str]) -> str:
    # The digits of "%2B" and "%20" (URL-encoded "+" and space) are not part of the number.
    digits = [c for c in _URL_ESCAPE.sub("", match.group(0)) if c.isdigit()]
    return "•" * (len(digits) - 2) + "".join(digits[-2:])


def redact(text: str, *, escape_control: bool = True) -> str:
    """Return `text` with URL secrets, emails, phones and streets masked and controls escaped."""
    if not text:
        return text
    if not isinstance(text, str):
        text = str(text)
    if "=" in text:
        text = _QUERY_SECRET.sub(r"\1" + REDACTED, text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(_mask_email, text)
    if _DIGIT.search(text):
        text = _PHONE.sub(_mask_phone, text)
        text = _STREET.sub("[street]", text)
    if escape_control and _CONTROL.search(text):
        text = text.translate(_CONTROL_TABLE)
    return text


class RedactingFilter(logging.Filter):
    """Render each record's message, redact it, and drop its args so no handler sees PII."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; always let it through."""
        if getattr(record, "_hcpform_redacted", False):
            return True  # already done by a filter higher up (logger, then handler)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not drop the line or crash logging
            message = f"{record.msg!s} (unformattable args)"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text, so a redacted copy here is what every handler prints.
            # Tracebacks keep their newlines: they are ours, not user input.
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), escape_control=False
            )
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, escape_control=False)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, escape_control=False)
        record.__dict__["_hcpform_redacted"] = True
        return True


def _has_filter(filterer: logging.Filterer) -> bool:
    return any(isinstance(f, RedactingFilter) for f in filterer.filters)


def install_redaction(
    logger: logging.Logger | str | Iterable[logging.Logger | str] | None = None,
) -> RedactingFilter:
    """Add a RedactingFilter to the root logger's handlers and to the given loggers, once each.

    A filter on a logger only sees records logged on that very logger, while a filter on a
    handler sees everything that reaches it, so the root handlers are the catch-all.
    """
    flt = RedactingFilter()
    for handler in logging.getLogger().handlers:
        if not _has_filter(handler):
            handler.addFilter(flt)
    if logger is None:
        loggers: list[logging.Logger | str] = []
    elif isinstance(logger, (logging.Logger, str)):
        loggers = [logger]
    else:
        loggers = list(logger)
    for item in loggers:
        target = logging.getLogger(item) if isinstance(item, str) else item
        if not _has_filter(target):
            target.addFilter(flt)
        for handler in target.handlers:
            if not _has_filter(handler):
                handler.addFilter(flt)
    return flt

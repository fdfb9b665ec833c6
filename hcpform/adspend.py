"""Ad spend per source and month: reading amounts and CSV files, saving them, and prorating.

Spend is entered per source (the utm_source value, lowercased) and calendar month, in cents.
A period that covers part of a month gets that month's spend in proportion to its days.
"""

from __future__ import annotations

import calendar
import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from . import validation
from .extensions import db
from .models import AdSpend

MAX_CENTS = 1_000_000_000  # $10,000,000 a month: more is a typing slip
AMOUNT_RE = re.compile(r"^\$?\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?$")
MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})$")
CSV_HEADER = ("month", "source", "amount")
MAX_LINES = 2000
SOURCE_LIMIT = 200


class SpendError(ValueError):
    """A spend value that can't be used; the message says why, for the admin."""


def parse_amount(text: str | None) -> int:
    """Return a dollar amount like "1,234.50" or "$80" in cents.

    Raises:
        SpendError: when it is not an amount of dollars and cents, or is too large.
    """
    value = (text or "").strip()
    match = AMOUNT_RE.match(value)
    if not match:
        raise SpendError("Enter an amount in dollars, like 1250 or 1,250.00")
    dollars = int(match.group(1).replace(",", ""))
    cents = int((match.group(2) or "0").ljust(2, "0"))
    total = dollars * 100 + cents
    if total > MAX_CENTS:
        raise SpendError("Enter an amount of $10,000,000 or less")
    return total


def parse_month(text: str | None) -> date:
    """Return the first day of a month written YYYY-MM.

    Raises:
        SpendError: when it is not a month between 2000 and 2100.
    """
    match = MONTH_RE.match((text or "").strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or not 2000 <= int(match.group(1)) <= 2100:
        raise SpendError("Enter the month as YYYY-MM, like 2026-11")
    return date(int(match.group(1)), int(match.group(2)), 1)


def parse_source(text: str | None) -> str:
    """Return a source as the reports compare it (lowercased).

    Raises:
        SpendError: when it is empty or too long.
    """
    try:
        value = validation.clean_text(text or "", max_length=SOURCE_LIMIT).lower()
    except validation.Invalid as exc:
        raise SpendError(str(exc)) from exc
    if not value or value == "(none)":
        raise SpendError("Enter the source, as in utm_source (for example google)")
    return value


@dataclass(frozen=True)
class SpendLine:
    """One month's spend for one source."""

    month: date
    source: str
    amount_cents: int


def parse_csv(text: str) -> tuple[list[SpendLine], list[str]]:
    """Return the lines of a spend CSV (month,source,amount) and an error per bad line.

    The header line is required; the same source and month twice in one file is an error.
    """
    lines: list[SpendLine] = []
    errors: list[str] = []
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows or tuple(c.strip().lower() for c in rows[0]) != CSV_HEADER:
        return [], ["Line 1: the first line must be the header month,source,amount"]
    if len(rows) > MAX_LINES + 1:
        return [], [f"The file has more than {MAX_LINES} lines: split it in parts"]
    seen: dict[tuple[date, str], int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            errors.append(
                f"Line {number}: expected 3 values (month, source, amount), got {len(row)}"
            )
            continue
        try:
            line = SpendLine(parse_month(row[0]), parse_source(row[1]), parse_amount(row[2]))
        except SpendError as exc:
            errors.append(f"Line {number}: {exc}")
            continue
        first = seen.setdefault((line.month, line.source), number)
        if first != number:
            errors.append(
                f"Line {number}: {line.source} for {line.month:%Y-%m} is already on line {first}"
            )
            continue
        lines.append(line)
    if not lines and not errors:
        errors.append("The file has no spend lines under its header")
    return lines, errors


def save(line: SpendLine, *, by: str, now: datetime) -> AdSpend:
    """Set a source's spend for a month (replacing what was entered before); flush."""
    row = db.session.scalar(
        select(AdSpend).where(AdSpend.source == line.source, AdSpend.month == line.month)
    )
    if row is None:
        row = AdSpend(source=line.source, month=line.month)
        db.session.add(row)
    row.amount_cents = line.amount_cents
    row.updated_by = by
    row.updated_at = now
    db.session.flush()
    return row


def entries(limit: int = 500) -> list[AdSpend]:
    """Return the spend entered, newest month first."""
    return list(
        db.session.scalars(
            select(AdSpend).order_by(AdSpend.month.desc(), AdSpend.source).limit(limit)
        )
    )


def days_in_month(month: date) -> int:
    """Return how many days a month has."""
    return calendar.monthrange(month.year, month.month)[1]


def spend_in(start: date, end: date) -> dict[str, int]:
    """Return the spend per source from one day to another (both included), prorated by days."""
    first = start.replace(day=1)
    rows = db.session.execute(
        select(AdSpend.source, AdSpend.month, AdSpend.amount_cents).where(
            AdSpend.month >= first, AdSpend.month <= end
        )
    )
    # Summed as exact fractions of a cent per source, then rounded once (half up).
    shares: dict[str, tuple[int, int]] = {}
    for source, month, cents in rows:
        length = days_in_month(month)
        last = month.replace(day=length)
        covered = (min(last, end) - max(month, start)).days + 1
        if covered <= 0:
            continue
        num, den = shares.get(source, (0, 1))
        # num/den + cents*covered/length, kept over a common denominator
        shares[source] = (num * length + cents * covered * den, den * length)
    return {source: (2 * num + den) // (2 * den) for source, (num, den) in shares.items()}

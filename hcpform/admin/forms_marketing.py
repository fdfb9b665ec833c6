"""The Marketing page's forms: the period and form filter, one month's spend, a spend CSV."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, FileSize
from wtforms import DateField, Field, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from .. import adspend, validation
from ..marketing import Period, preset_period

PERIODS = (
    ("this_month", "This month"),
    ("last_month", "Last month"),
    ("last_30", "Last 30 days"),
    ("last_90", "Last 90 days"),
    ("custom", "From – to (below)"),
)
MAX_DAYS = 366
EARLIEST = date(2000, 1, 1)
CSV_MAX_BYTES = 200_000


class MarketingFilterForm(FlaskForm):
    """Which period and form the Marketing page shows (a GET form: no CSRF, nothing changes)."""

    class Meta:
        """Turn CSRF off: the filters only read."""

        csrf = False

    period = SelectField("Period", choices=PERIODS, default="this_month")
    date_from = DateField("From", [Optional()])
    date_to = DateField("To", [Optional()])
    form = SelectField("Form", choices=[("", "All forms")], default="")

    def chosen(self, today: date) -> Period:
        """Return the period asked for, or this month when what was asked is not valid.

        Errors land on the fields (shown by the page); a preset ignores the dates.
        """
        self.validate()
        for field in (self.date_from, self.date_to):
            if field.raw_data and field.raw_data[0] and not field.errors:
                if not validation.code_text(field.raw_data[0]).isascii():
                    field.errors = [*field.errors, "Use the digits 0-9"]
        if self.period.errors or self.period.data != "custom":
            return preset_period(self.period.data if not self.period.errors else "", today)
        start, end = self.date_from.data, self.date_to.data
        problems = {
            self.date_from: "Enter the first day, like 2026-11-01" if start is None else "",
            self.date_to: "Enter the last day, like 2026-11-30" if end is None else "",
        }
        if start is not None and end is not None:
            if start < EARLIEST:
                problems[self.date_from] = "Choose a day in 2000 or later"
            elif end < start:
                problems[self.date_to] = "The last day must be on or after the first day"
            elif (end - start).days + 1 > MAX_DAYS:
                problems[self.date_to] = f"Choose at most {MAX_DAYS} days"
            elif start > today:
                problems[self.date_from] = "The first day can't be in the future"
        for field, message in problems.items():
            if message and not field.errors:
                field.errors = [*field.errors, message]
        if self.date_from.errors or self.date_to.errors or start is None or end is None:
            return preset_period("", today)
        return Period(start, end, f"{start:%Y-%m-%d} to {end:%Y-%m-%d}")

    @property
    def has_errors(self) -> bool:
        """Return True when the period was refused (the page then shows this month).

        An unknown form is not an error: the page shows all forms.
        """
        return any(f.errors for f in (self.period, self.date_from, self.date_to))


class SpendForm(FlaskForm):
    """One source's ad spend for one month."""

    month = StringField(
        "Month",
        [DataRequired("Enter the month, like 2026-11")],
        render_kw={"placeholder": "YYYY-MM", "inputmode": "numeric", "autocomplete": "off"},
    )
    source = StringField(
        "Source",
        [DataRequired("Enter the source, as in utm_source"), Length(max=adspend.SOURCE_LIMIT)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    amount = StringField(
        "Amount spent (dollars)",
        [DataRequired("Enter the amount spent, like 1250.00")],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )

    def validate_month(self, field: Field) -> None:
        """Read YYYY-MM."""
        _check(adspend.parse_month, field)

    def validate_source(self, field: Field) -> None:
        """Refuse control characters and the placeholder for no source."""
        _check(adspend.parse_source, field)

    def validate_amount(self, field: Field) -> None:
        """Read dollars and cents."""
        _check(adspend.parse_amount, field)

    def line(self) -> adspend.SpendLine:
        """Return the validated spend line."""
        return adspend.SpendLine(
            adspend.parse_month(self.month.data),
            adspend.parse_source(self.source.data),
            adspend.parse_amount(self.amount.data),
        )


def _check(parse: Callable[[str | None], object], field: Field) -> None:
    try:
        parse(field.data)
    except adspend.SpendError as exc:
        raise ValidationError(str(exc)) from exc


class SpendImportForm(FlaskForm):
    """A CSV of spend lines: month,source,amount."""

    file = FileField(
        "CSV file",
        [
            FileRequired("Choose a CSV file"),
            FileSize(CSV_MAX_BYTES, message="The file is larger than 200 KB: split it in parts"),
        ],
    )


class DeleteSpendForm(FlaskForm):
    """Remove one month's spend for a source (a button: only the CSRF token)."""

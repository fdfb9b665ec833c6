"""WTForms of the abandoned-requests and out-of-area pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, IntegerField, StringField
from wtforms.validators import NumberRange, Optional, Regexp


class AbandonedSettingsForm(FlaskForm):
    """One form's abandoned-request settings."""

    abandoned_after_minutes = IntegerField(
        "Minutes without activity before a request counts as abandoned",
        [NumberRange(min=5, max=10080, message="Enter a number of minutes from 5 to 10080")],
    )
    abandoned_to_hcp = BooleanField("Send each abandoned request to Housecall Pro as a lead")


class OutOfAreaFilterForm(FlaskForm):
    """Filter the out-of-area requests by ZIP (or its first digits) and period (GET)."""

    class Meta:
        """A GET filter: no CSRF token in the URL."""

        csrf = False

    zip = StringField(
        "ZIP starts with",
        [Optional(), Regexp(r"^[0-9]{1,5}$", message="Enter up to 5 digits")],
    )
    since = DateField("From", [Optional()])
    until = DateField("To", [Optional()])

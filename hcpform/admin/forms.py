"""The admin's Flask-WTF forms for sign-in, submissions, the HCP connection and privacy."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    Field,
    IntegerField,
    PasswordField,
    SearchField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Length,
    Optional,
    ValidationError,
)

from .. import formdefs, validation
from ..models import Status
from ..webhooks.figures import STATUS_LABELS as HCP_STATUS_LABELS
from .form_editor import dedupe

STATUS_LABELS: dict[str, str] = {
    Status.PENDING: "Pending",
    Status.SYNCING: "Syncing",
    Status.SYNCED: "Synced",
    Status.FAILED: "Failed",
    Status.WAITING: "Waiting for connection",
    Status.QUARANTINED: "Quarantined",
    Status.MANUAL: "Handled manually",
}
STAGE_LABELS = {
    "lead": "Requests (not spam)",
    "job": "Job created",
    "completed": "Job completed",
    "paid": "Paid",
}
CUSTOMER_TYPES = (("residential", "Home (residential)"), ("commercial", "Business (commercial)"))


class LoginForm(FlaskForm):
    """Email and password."""

    email = StringField(
        "Email",
        [DataRequired("Enter your email address"), Length(max=254)],
        render_kw={"autocomplete": "username", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        [DataRequired("Enter your password"), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )


def _page_in_range(form: Any, field: Field) -> None:
    """Accept a page number from 1 to 100,000 (any int compared as an int)."""
    if field.data is not None and not 1 <= field.data <= 100_000:
        raise ValidationError("Use a page from 1 to 100000")


class SubmissionFilterForm(FlaskForm):
    """Filters and search of the submissions list (a GET form: no CSRF, nothing changes)."""

    class Meta:
        """Turn CSRF off: the filters only read."""

        csrf = False

    q = SearchField("Search", [Optional(), Length(max=200)])
    status = SelectField("Status", choices=[("", "Any status"), *STATUS_LABELS.items()])
    form = SelectField("Form", choices=[("", "Any form")])
    service_type = SelectField("Service type", choices=[("", "Any service")])
    urgency = SelectField("Urgency", choices=[("", "Any urgency"), *formdefs.URGENCY_CHOICES])
    customer_type = SelectField("Customer type", choices=[("", "Any customer"), *CUSTOMER_TYPES])
    outcome = SelectField(
        "In Housecall Pro",
        choices=[("", "Any outcome"), ("paid", "Paid"), *HCP_STATUS_LABELS.items()],
    )
    date_from = DateField("From", [Optional()])
    date_to = DateField("To", [Optional()])
    # The Marketing page's links: a campaign's requests ("(none)" = no UTM value), by stage.
    source = StringField("Source", [Optional(), Length(max=200)])
    medium = StringField("Medium", [Optional(), Length(max=200)])
    campaign = StringField("Campaign", [Optional(), Length(max=200)])
    stage = SelectField("Stage", choices=[("", "Any stage"), *STAGE_LABELS.items()])
    # Not NumberRange: it compares through float(), which overflows on a 400-digit number.
    page = IntegerField("Page", [Optional(), _page_in_range])

    def values(self) -> dict[str, Any]:
        """Return the filters that hold a valid value (a bad one is ignored, not an error)."""
        self.validate()
        for field in (self.page, self.date_from, self.date_to):
            # Python's int() and strptime read any script's digits; ours take ASCII after NFKC.
            if field.raw_data and not validation.code_text(field.raw_data[0]).isascii():
                field.errors = [*field.errors, "Use the digits 0-9"]
        return {
            name: field.data
            for name, field in self._fields.items()
            if name != "page" and field.data not in (None, "") and not field.errors
        }


class ManualForm(FlaskForm):
    """Mark a submission as handled by hand in HCP."""

    note = TextAreaField(
        "Note (what was done, by whom)",
        [DataRequired("Write a short note about how it was handled"), Length(max=2000)],
    )


class SelectedForm(FlaskForm):
    """Retry the submissions ticked in the list."""

    ids = SelectMultipleField("Submissions", coerce=int, validate_choice=False)


class WebhookSecretForm(FlaskForm):
    """HCP's webhook signing secret: write-only, never rendered back."""

    secret = PasswordField(
        "Webhook signing secret",
        [
            DataRequired("Enter the signing secret Housecall Pro shows"),
            Length(min=8, max=200, message="That is not a signing secret"),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )

    def validate_secret(self, field: Field) -> None:
        """Refuse spaces and control characters inside the secret."""
        value = (field.data or "").strip()
        if not value.isprintable() or any(c.isspace() for c in value):
            raise ValidationError("The secret has no spaces: copy it again from Housecall Pro")
        field.data = value


class ApiKeyForm(FlaskForm):
    """The HCP API key: write-only, never rendered back."""

    api_key = PasswordField(
        "Housecall Pro API key",
        [
            DataRequired("Enter the API key"),
            Length(min=8, max=200, message="That is not an API key"),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )

    def validate_api_key(self, field: Field) -> None:
        """Refuse spaces and control characters inside the key."""
        key = (field.data or "").strip()
        if not key.isprintable() or any(c.isspace() for c in key):
            raise ValidationError("The key contains spaces or special characters; paste it again")
        field.data = key


class DefaultsForm(FlaskForm):
    """What every job gets unless a submission says otherwise."""

    lead_source = SelectField("Lead source", choices=[], validate_choice=True)
    tags = StringField("Tags (comma-separated)", [Optional(), Length(max=500)])
    job_type_id = SelectField("Default job type", choices=[], validate_choice=True)

    def tag_list(self) -> list[str]:
        """Return the tags typed, trimmed and unique."""
        tags = [t.strip() for t in (self.tags.data or "").split(",")]
        return dedupe([t[:50] for t in tags if t])[:20]


class PersonForm(FlaskForm):
    """Find a person by email or phone (POSTed: personal data stays out of URLs)."""

    who = StringField(
        "Email or phone", [DataRequired("Enter an email or a phone"), Length(max=254)]
    )


class EraseForm(PersonForm):
    """Erase a person's data, once confirmed."""

    confirm = BooleanField(
        "I understand this erases their data here and cannot be undone",
        [DataRequired("Tick the box to confirm")],
    )

"""What step 6 offers: HCP's open windows for the chosen service, shown a few days at a time."""

from __future__ import annotations

import re
from datetime import datetime

from flask import request

from .. import availability, formdefs
from ..i18n import gettext
from ..models import Draft, Form
from ..submissions import REPEAT_ANSWER
from .forms import SLOT_FIELD, WizardForm
from .language import repeat_words


def slots_for(
    form: Form, draft: Draft | None, slug: str, *, now: datetime
) -> availability.Availability | None:
    """Return what the step that picks the time offers (None on every other step)."""
    date_name, time_name = formdefs.booking_fields(formdefs.get_step(form.definition, slug))
    if not (date_name and time_name):
        return None
    return availability.open_windows(form, service_type_of(form, draft), now=now)


def service_type_of(form: Form, draft: Draft | None) -> str:
    """Return the service type the draft chose (the answer mapped to booking_type)."""
    name = next(
        (f["name"] for _, f in formdefs.iter_fields(form.definition)
         if f.get("hcp_key") == "booking_type"),
        "booking_type",
    )  # fmt: skip
    return str(((draft.answers or {}) if draft else {}).get(name) or "")


DAYS_PARAM = re.compile(r"[0-9]{1,3}", re.ASCII)


def days_shown(slots: availability.Availability | None, wtform: WizardForm) -> int:
    """Return how many days of windows to show before "Show more days" (?days= asks for more)."""
    if slots is None or slots.kind != availability.BOOKED:
        return 0
    asked = request.args.get("days", "")
    wanted = int(asked) if DAYS_PARAM.fullmatch(asked) else availability.FIRST_DAYS_SHOWN
    chosen = str(wtform[SLOT_FIELD].data or "") if SLOT_FIELD in wtform else ""
    for i, day in enumerate(slots.days):  # the day of the chosen window is always shown
        if chosen in {wid for wid, _ in day.windows}:
            wanted = max(wanted, i + 1)
    return max(1, min(wanted, len(slots.days)))


def booked_window(form: Form, draft: Draft) -> availability.Window | None:
    """Return the HCP window the draft booked, or None when its time is a preference."""
    answers = draft.answers or {}
    if answers.get("_schedule_kind") != availability.BOOKED:
        return None
    for step_def in form.definition["steps"]:
        _, time_name = formdefs.booking_fields(step_def)
        if time_name:
            return availability.parse_window_id(str(answers.get(time_name) or ""))
    return None


def repeat_rows(form: Form, draft: Draft) -> list[dict[str, str]]:
    """Return the review's "Repeat this visit" row when the chosen service type may repeat."""
    frequency = formdefs.repeat_frequency(form.service_types, service_type_of(form, draft))
    if not frequency:
        return []
    chosen = bool((draft.answers or {}).get(REPEAT_ANSWER))
    label = repeat_words(frequency)
    value = gettext("Yes, %(how_often)s", how_often=label) if chosen else gettext("No")
    return [{"label": gettext("Repeat this visit"), "value": value}]
